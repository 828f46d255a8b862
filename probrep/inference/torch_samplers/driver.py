"""The one loop of the torch samplers: a kernel's ``init`` and moves, warm-up adaptation, a recorder and a
progress bar, composed for any :class:`~.kernels.Kernel` (Langevin and HMC alike).

    run(kernel, energy_fn, x0, steps, ...)  ->  SamplerResult

1. check the arguments and ``init`` the chains (the energy's shape and finiteness);
2. a starting step per chain, given or searched (:func:`~.warmup.initial_step`);
3. ``num_warmup`` transitions with window adaptation (:func:`~.warmup.warm_up`);
4. ``steps`` transitions with the adapted parameters, every ``thin``-th state kept (:class:`~.recorder.Recorder`).

Randomness comes from one ``torch.Generator`` seeded with ``seed`` on the chains' device, never from torch's
global generator, and nothing outlives the call but its result.

The sampling loop is the hot one: the kernel's step factors are prepared once, and a step is a draw from the
noise blocks, the kernel's move and the recorder's two appends, with no branches but thinning and the progress
bar's. The acceptance statistics are derived from the log ratios in blocks, by the recorder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from probrep._checks import integer, probability
from probrep._checks import seed as check_seed
from probrep.device import resolve_device
from probrep.inference.mcmc import adaptation
from probrep.inference.torch_samplers.core import EnergyFn, backward_seed, init, statistics
from probrep.inference.torch_samplers.kernels import Kernel
from probrep.inference.torch_samplers.noise import NoiseBlocks
from probrep.inference.torch_samplers.recorder import Recorder
from probrep.inference.torch_samplers.warmup import initial_step, warm_up

__all__ = ["SamplerResult", "run"]

logger = logging.getLogger(__name__)


@dataclass
class SamplerResult:
    """What :func:`run` (so :func:`~.samplers.langevin` and :func:`~.samplers.hmc`) returns."""

    samples: torch.Tensor  # [kept steps, chains, ...]
    energy: torch.Tensor  # [kept steps, chains]
    accept_rate: torch.Tensor  # [chains], mean acceptance probability over the sampling steps
    divergences: torch.Tensor  # [chains], divergent transitions while sampling
    num_grad_evals: int  # energy-gradient evaluations per chain, warm-up and step-size search included
    num_warmup: int
    seconds: float
    step_size: torch.Tensor | None = None  # [chains], Langevin's adapted noise variance e (None for HMC)
    leapfrog_step: torch.Tensor | None = None  # [chains], HMC's adapted leap-frog step h (None for Langevin)
    inverse_mass_matrix: torch.Tensor | None = None  # [chains, ...], the diagonal C per chain; None: identity


def _check_x0(x0, device) -> torch.Tensor:
    if not torch.is_tensor(x0):
        raise TypeError(f"x0 must be a torch tensor [chains, ...], got {type(x0).__name__}")
    if not x0.is_floating_point():
        raise TypeError(f"x0 must be a floating-point tensor, got dtype {x0.dtype}")
    if x0.dim() < 2 or x0.numel() == 0:
        raise ValueError(
            f"x0 must have shape [chains, ...] with at least 2 dims and no empty dim, got {tuple(x0.shape)} "
            "(for a scalar target pass x0[:, None])"
        )
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0 contains NaN or infinite values")
    return x0.detach().to(resolve_device(device)) if device is not None else x0.detach()


class _Progress:
    """The bar, refreshed every 1% of the steps with the mean acceptance and step."""

    def __init__(self, total: int, enabled: bool, description: str):
        self.bar = tqdm(total=total, desc=description, disable=not enabled, dynamic_ncols=True)
        self.enabled = enabled
        self.every = max(1, total // 100)

    def show(self, done: int, partial: torch.Tensor, known: torch.Tensor, step: torch.Tensor) -> None:
        self.bar.update(done - self.bar.n)
        if self.enabled:
            accept_prob = statistics(partial + known)[0].mean().item()
            self.bar.set_postfix(acc=f"{accept_prob:.3f}", step=f"{step.mean().item():.3g}")


def run(
    kernel: Kernel,
    energy_fn: EnergyFn,
    x0: torch.Tensor,
    steps: int,
    *,
    step: float | torch.Tensor | None = None,
    num_warmup: int | None = None,
    adapt_step_size: bool = True,
    adapt_mass_matrix: bool = True,
    target_accept: float | None = None,
    thin: int = 1,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> SamplerResult:
    """Sample ``p(x) ~ exp(-energy_fn(x))`` with ``kernel`` from ``x0`` [chains, ...].

    ``step`` is the kernel's step parameter (a number or one per chain; ``None`` searches one per chain);
    ``num_warmup`` defaults to ``steps // 2`` when it is searched and to 0 when given. During warm-up each
    chain's step adapts towards ``target_accept`` (default: the kernel's) and, with ``adapt_mass_matrix``, its
    diagonal inverse mass matrix to the variance of its draws (when the warm-up has windows: 20 steps or more).
    """
    start = time.perf_counter()
    x = _check_x0(x0, device)
    steps = integer(steps, "steps")
    thin = integer(thin, "thin")
    seed = check_seed(seed)
    if num_warmup is None:
        num_warmup = steps // 2 if step is None else 0
    num_warmup = integer(num_warmup, "num_warmup", minimum=0)
    target = probability(kernel.target_accept if target_accept is None else target_accept, "target_accept")
    for name, flag in (("adapt_step_size", adapt_step_size), ("adapt_mass_matrix", adapt_mass_matrix)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
    generator = torch.Generator(device=x.device).manual_seed(seed)
    state = init(energy_fn, x)
    seed_ones = backward_seed(state.energy)  # held for the run
    noise = NoiseBlocks(x, generator, uniforms=kernel.metropolis, scale=kernel.noise_scale)
    first_step, evals = initial_step(kernel, step, state, energy_fn, generator)
    mass = adapt_mass_matrix and bool(adaptation.warmup_windows(num_warmup))
    warmup = adaptation.warmup(num_warmup, target, adapt_step_size=adapt_step_size, adapt_mass_matrix=mass)
    params = warmup.init(x, first_step, torch.ones_like(x) if mass else None)
    record = Recorder(x, steps // thin)
    total = num_warmup + steps
    progress_bar = _Progress(total, progress, kernel.name)
    show, every = progress_bar.show, progress_bar.every
    try:
        # gradients on for the energy's; the samplers' own tensors never require grad, so they record nothing
        with torch.enable_grad():
            adapting = adapt_step_size or mass
            args = (params, warmup, adapting, num_warmup, noise, seed_ones, show, every)
            state, adapted = warm_up(kernel, energy_fn, state, *args)
            factors = kernel.prepare(adapted.step_size, adapted.mass_sqrt, x)
            move, draw = kernel.move, noise.draw
            for t in range(num_warmup + 1, total + 1):
                v, known, threshold = draw()
                state, partial, _ = move(state, energy_fn, factors, v, threshold, seed_ones)
                record.step(partial, known)
                if (t - num_warmup) % thin == 0:
                    record.keep(state)
                if t % every == 0:
                    show(t, partial, known, adapted.step_size)
            show(total, partial, known, adapted.step_size)
    finally:
        progress_bar.bar.close()
    record.close()
    accept_rate, divergences = record.accept_sum / steps, record.divergences
    logger.info(
        "%s: %d chains, %d warm-up + %d steps, mean acceptance %.3f, mean %s %.4g, %d divergences",
        kernel.name,
        x.shape[0],
        num_warmup,
        steps,
        float(accept_rate.mean()),
        kernel.step_name,
        float(adapted.step_size.mean()),
        int(divergences.sum()),
    )
    return SamplerResult(
        samples=record.samples,
        energy=record.energies,
        accept_rate=accept_rate,
        divergences=divergences,
        num_grad_evals=evals + total * kernel.grads_per_step,
        num_warmup=num_warmup,
        seconds=time.perf_counter() - start,
        inverse_mass_matrix=adapted.inverse_mass_matrix,
        **{kernel.step_name: adapted.step_size},
    )
