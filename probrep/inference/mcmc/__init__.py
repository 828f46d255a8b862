"""MCMC on NumPyro programs and JAX log densities.

- ``sample`` (NUTS, HMC, MALA, ULA -> arviz InferenceData): :mod:`.sampling`; its summaries and the checks that
  say when draws are not usable (``diagnose``, ``MCMCWarning``): :mod:`.diagnostics`;
- ``MALA`` / ``ULA``, NumPyro kernels: :mod:`.kernels`, thin adapters over the pure JAX ``init`` / ``step``
  of :mod:`.langevin`;
- ``window_adaptation``, the same warm-up without NumPyro: :mod:`.window`;
- the warm-up pieces every sampler shares, JAX and torch (dual averaging, Stan's windows, Welford, and their
  composition as init / update / final): :mod:`.adaptation`; the shared numbers: :mod:`.constants`.

The JAX modules load on first use, so ``probrep.inference.mcmc.adaptation`` and ``.constants`` import without
JAX (the torch samplers use them). No submodule shares a name with what the package exports, so importing a
submodule never hides an export.
"""

from probrep._lazy import lazy_exports

_SAMPLING = ("sample", "make_kernel", "KERNELS", "CHAIN_METHODS")
_SUMMARY = ("summary", "format_summary", "print_summary", "diagnose", "MCMCWarning")
_EXPORTS = {
    **{name: f"probrep.inference.mcmc.sampling:{name}" for name in _SAMPLING},
    **{name: f"probrep.inference.mcmc.diagnostics:{name}" for name in _SUMMARY},
    "MALA": "probrep.inference.mcmc.kernels:MALA",
    "ULA": "probrep.inference.mcmc.kernels:ULA",
    "window_adaptation": "probrep.inference.mcmc.window:window_adaptation",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
