"""Inference: SVI (``svi.fit``), MCMC on NumPyro programs (``mcmc``), batched torch samplers
(``torch_samplers``, with ``langevin`` the user-facing module of both Langevin families) and score matching.
``divergences`` is re-exported from :mod:`probrep.divergences`. Submodules load on first use, so
``import probrep.inference`` pulls in neither Pyro nor JAX."""

import importlib

_LAZY = ("svi", "mcmc", "langevin", "torch_samplers", "score_matching")
__all__ = [*_LAZY, "divergences"]


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f"probrep.inference.{name}")
    if name == "divergences":
        return importlib.import_module("probrep.divergences")
    raise AttributeError(f"module 'probrep.inference' has no attribute {name!r}")
