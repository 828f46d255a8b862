"""MCMC on NumPyro programs and JAX log densities.

- ``sample`` (NUTS, HMC, MALA, ULA -> arviz InferenceData) and its summaries: :mod:`.sampling`;
- ``MALA`` / ``ULA``, NumPyro kernels: :mod:`.kernels`, thin adapters over the pure JAX ``init`` / ``step``
  of :mod:`.langevin`;
- ``window_adaptation``, the same warm-up without NumPyro: :mod:`.window`;
- the warm-up pieces every sampler shares, JAX and torch (dual averaging, Stan's windows, Welford, and their
  composition as init / update / final): :mod:`.adaptation`; the shared numbers: :mod:`.constants`.

The JAX modules load on first use, so ``probrep.inference.mcmc.adaptation`` and ``.constants`` import without
JAX (the torch samplers use them). No submodule shares a name with what the package exports, so importing a
submodule never hides an export.
"""

import importlib

_EXPORTS = {
    **{
        name: "sampling"
        for name in ("sample", "make_kernel", "summary", "format_summary", "print_summary", "KERNELS", "CHAIN_METHODS")
    },
    "MALA": "kernels",
    "ULA": "kernels",
    "window_adaptation": "window",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"probrep.inference.mcmc.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'probrep.inference.mcmc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
