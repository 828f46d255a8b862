"""Inference: SVI (``svi.fit``), MCMC on NumPyro programs (``mcmc``), batched torch samplers
(``torch_samplers``, with ``langevin`` the user-facing module of both Langevin families) and score matching.
``divergences`` is re-exported from :mod:`probrep.divergences`. Submodules load on first use, so
``import probrep.inference`` pulls in neither Pyro nor JAX."""

from probrep._lazy import lazy_exports

_SUBMODULES = ("svi", "mcmc", "langevin", "torch_samplers", "score_matching")
_EXPORTS = {**{name: f"probrep.inference.{name}" for name in _SUBMODULES}, "divergences": "probrep.divergences"}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
