"""Before the torch samplers sample: a starting step size per chain, then warm-up with the shared window
adaptation (:func:`probrep.inference.mcmc.adaptation.warmup`), for any :class:`~.kernels.Kernel`.

Each chain adapts on its own, as if it ran alone: its step size by dual averaging towards the kernel's target
acceptance, and, with ``adapt_mass_matrix``, its diagonal inverse mass matrix ``C`` [chains, ...] from the
Welford variance of its own draws in Stan's slow windows. Per chain, so that the chains stay independent
samplers (their R-hat and ESS mean what they say) and a chain started in another mode keeps its own scale.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from probrep.inference.mcmc import adaptation
from probrep.inference.torch_samplers.core import ChainState, EnergyFn, statistics
from probrep.inference.torch_samplers.kernels import Kernel, langevin_step
from probrep.inference.torch_samplers.noise import NoiseBlocks

__all__ = ["find_step_size", "initial_step", "warm_up"]


def find_step_size(
    state: ChainState,
    energy_fn: EnergyFn,
    generator: torch.Generator,
    initial: float = 1.0,
    threshold: float = 0.5,
    max_iter: int = 40,
) -> tuple[torch.Tensor, int]:
    """Per chain, double (halve) the Langevin variance ``e`` from ``initial`` until the one-step MALA acceptance
    at fixed noise crosses ``threshold``: a rough start for dual averaging (every kernel converts it with its
    ``from_langevin``). Returns the step sizes [chains] and the number of (batched) gradient evaluations spent."""
    chains = state.x.shape[0]
    noise = torch.randn(state.x.shape, generator=generator, device=state.x.device, dtype=state.x.dtype)

    def accept(e):
        return langevin_step(state, energy_fn, e, generator, adjust=False, noise=noise)[1].accept_prob

    e = torch.full((chains,), float(initial), device=state.x.device, dtype=state.x.dtype)
    above = accept(e) > threshold
    direction = torch.where(above, 2.0, 0.5).to(e.dtype)
    active = torch.ones_like(above)
    evals = 1
    for _ in range(max_iter):
        e = torch.where(active, e * direction, e)
        crossed = (accept(e) > threshold) != above
        evals += 1
        active = active & ~crossed
        if not bool(active.any()):
            break
    return e, evals


def initial_step(
    kernel: Kernel, step, state: ChainState, energy_fn: EnergyFn, generator: torch.Generator
) -> tuple[torch.Tensor, int]:
    """The kernel's step parameter [chains] to start from: ``step`` (a number or one per chain) checked, or a
    search when it is None; and the gradient evaluations the search spent."""
    chains, x = state.x.shape[0], state.x
    if step is None:
        e, evals = find_step_size(state, energy_fn, generator)
        return kernel.from_langevin(e), evals
    value = torch.as_tensor(step, dtype=x.dtype).detach().to(x.device)
    if value.dim() == 0:
        value = value.expand(chains).clone()
    if value.shape != (chains,) or not bool(torch.isfinite(value).all() and (value > 0).all()):
        raise ValueError(
            f"{kernel.step_name} must be a number or a tensor [{chains}] of finite values > 0, got {step!r}"
        )
    return value, 0


def warm_up(
    kernel: Kernel,
    energy_fn: EnergyFn,
    state: ChainState,
    params: adaptation.WarmupState,
    warmup: adaptation.Warmup,
    adapting: bool,
    num_warmup: int,
    noise: NoiseBlocks,
    seed: torch.Tensor,
    show: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None],
    every: int,
) -> tuple[ChainState, adaptation.AdaptedParameters]:
    """``num_warmup`` transitions of ``kernel`` from ``state`` with the step size and metric of ``params`` (from
    ``warmup.init``), noise from ``noise`` and the backward ``seed``; after each, ``warmup.update`` when
    ``adapting`` and, every ``every`` steps, ``show(done, partial, known, step)``.
    Returns the state and the parameters to sample with. Call with gradients enabled."""
    factors, factors_for = None, (None, None)
    for t in range(num_warmup):
        if factors_for[0] is not params.step_size or factors_for[1] is not params.mass_sqrt:
            factors_for = (params.step_size, params.mass_sqrt)  # prepared again only when they change
            factors = kernel.prepare(params.step_size, params.mass_sqrt, state.x)
        v, known, threshold = noise.draw()
        state, partial, _ = kernel.move(state, energy_fn, factors, v, threshold, seed)
        if adapting:
            params = warmup.update(params, warmup.schedule.at(t), state.x, statistics(partial + known)[0])
        if (t + 1) % every == 0:
            show(t + 1, partial, known, params.step_size)
    return state, warmup.final(params)
