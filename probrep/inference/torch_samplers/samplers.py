"""The torch samplers as users call them: a kernel (:mod:`.kernels`) run by the one driver (:mod:`.driver`).

``langevin`` and ``hmc`` take the same arguments in the same order, apart from their step parameter, which
names what it is: Langevin's ``step_size`` is the noise variance ``e`` of one step, HMC's ``leapfrog_step`` is
the leap-frog step ``h`` (one leap-frog step of size ``h`` is the Langevin move with ``e = h^2``). Everything
after ``steps`` is keyword-only, so no positional call can mistake one for the other.
"""

from __future__ import annotations

import torch

from probrep._checks import integer
from probrep.inference.mcmc.constants import OPTIMAL_HMC_ACCEPTANCE, OPTIMAL_MALA_ACCEPTANCE
from probrep.inference.torch_samplers.core import EnergyFn
from probrep.inference.torch_samplers.driver import SamplerResult, run
from probrep.inference.torch_samplers.kernels import hmc_kernel, langevin_kernel

__all__ = ["langevin", "hmc"]


def langevin(
    energy_fn: EnergyFn,
    x0: torch.Tensor,
    steps: int,
    *,
    step_size: float | torch.Tensor | None = None,
    adjust: bool = True,
    target_accept: float = OPTIMAL_MALA_ACCEPTANCE,
    num_warmup: int | None = None,
    adapt_step_size: bool = True,
    adapt_mass_matrix: bool | None = None,
    thin: int = 1,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> SamplerResult:
    """Batched Langevin sampling of ``p(x) ~ exp(-energy_fn(x))``: MALA when ``adjust``, else ULA.

    Args:
        energy_fn: ``x`` [chains, ...] -> energies [chains].
        x0: initial states [chains, ...]; all work stays on its device (or on ``device`` if given).
        steps: sampling steps after warm-up; ``samples`` keeps every ``thin``-th.
        step_size: the noise variance ``e`` of ``x' = x - (e/2) C grad E + sqrt(e) L xi`` (a number or one per
            chain); ``None`` finds one per chain.
        target_accept: dual averaging drives each chain's acceptance to this (0.574, Roberts and Rosenthal)
            during ``num_warmup`` steps (default: ``steps // 2`` when ``step_size`` is None, else 0). ULA
            tunes with the same Metropolis statistic without applying it.
        adapt_mass_matrix: also adapt each chain's diagonal inverse mass matrix ``C = L^2`` to the variance of
            its warm-up draws (Stan's windows; needs 20 or more warm-up steps). Default (None): on for MALA,
            which stays exact with any ``C`` and mixes far better when the target's scales differ; off for
            ULA, which has no accept step to stop a bad metric from feeding on itself (an excursion inflates
            the variance, the larger ``C`` makes the next excursion larger) and whose bias depends on ``C``.
        seed: seeds a ``torch.Generator`` on the device: the same seed gives the same chains.

    Returns:
        :class:`~.driver.SamplerResult` with ``samples`` [steps // thin, chains, ...], ``accept_rate`` [chains],
        the adapted ``step_size`` [chains] and ``inverse_mass_matrix`` [chains, ...] (None if not adapted).
    """
    if not isinstance(adjust, bool):
        raise TypeError(f"adjust must be a bool, got {type(adjust).__name__}")
    if adapt_mass_matrix is None:
        adapt_mass_matrix = adjust
    return run(
        langevin_kernel(adjust),
        energy_fn,
        x0,
        steps,
        step=step_size,
        num_warmup=num_warmup,
        adapt_step_size=adapt_step_size,
        adapt_mass_matrix=adapt_mass_matrix,
        target_accept=target_accept,
        thin=thin,
        seed=seed,
        progress=progress,
        device=device,
    )


def hmc(
    energy_fn: EnergyFn,
    x0: torch.Tensor,
    steps: int,
    *,
    leapfrog_step: float | torch.Tensor | None = None,
    num_leapfrog: int = 10,
    target_accept: float = OPTIMAL_HMC_ACCEPTANCE,
    num_warmup: int | None = None,
    adapt_step_size: bool = True,
    adapt_mass_matrix: bool = True,
    thin: int = 1,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> SamplerResult:
    """Batched HMC of ``p(x) ~ exp(-energy_fn(x))`` with ``num_leapfrog`` leap-frog steps of per-chain size
    ``leapfrog_step`` (``h``; ``None`` finds one), adapted during warm-up to ``target_accept`` (0.65, optimal for
    fixed-length HMC by Beskos et al. 2013), and with ``adapt_mass_matrix`` a diagonal inverse mass matrix per
    chain. Other arguments and the result as for :func:`langevin`; the result's ``leapfrog_step`` is the adapted
    ``h`` [chains]."""
    num_leapfrog = integer(num_leapfrog, "num_leapfrog")
    return run(
        hmc_kernel(num_leapfrog),
        energy_fn,
        x0,
        steps,
        step=leapfrog_step,
        num_warmup=num_warmup,
        adapt_step_size=adapt_step_size,
        adapt_mass_matrix=adapt_mass_matrix,
        target_accept=target_accept,
        thin=thin,
        seed=seed,
        progress=progress,
        device=device,
    )
