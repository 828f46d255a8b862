"""MCMC on NumPyro programs: ``sample`` (NUTS, HMC, MALA, ULA) returning arviz InferenceData, summaries,
the MALA/ULA kernels and the warm-up adaptation they share."""

from probrep.inference.mcmc.sample import (
    CHAIN_METHODS,
    KERNELS,
    format_summary,
    make_kernel,
    print_summary,
    sample,
    summary,
)

__all__ = ["sample", "make_kernel", "summary", "format_summary", "print_summary", "KERNELS", "CHAIN_METHODS"]
