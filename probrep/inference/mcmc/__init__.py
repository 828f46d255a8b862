"""MCMC on NumPyro programs: ``sample`` (NUTS, HMC, MALA, ULA) returning arviz InferenceData, summaries, the
MALA/ULA kernels, and the warm-up adaptation pieces (``adaptation``: backend-neutral, shared with the torch
samplers). The JAX modules load on first use, so ``probrep.inference.mcmc.adaptation`` imports without JAX.
The runner lives in ``sampling``, not ``sample``: importing a submodule sets it as an attribute of the package,
and a submodule named ``sample`` replaced the function ``mcmc.sample`` after its first call."""

import importlib

_FROM_SAMPLE = ("sample", "make_kernel", "summary", "format_summary", "print_summary", "KERNELS", "CHAIN_METHODS")
__all__ = list(_FROM_SAMPLE)


def __getattr__(name: str):
    if name in _FROM_SAMPLE:
        return getattr(importlib.import_module("probrep.inference.mcmc.sampling"), name)
    raise AttributeError(f"module 'probrep.inference.mcmc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_FROM_SAMPLE])
