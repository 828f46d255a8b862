"""What every torch sampler shares: the chain state, what a transition reports, the energy's gradient and the
Metropolis decision.

``energy_fn(x)`` maps a batch of states ``x`` [chains, ...] to energies [chains] (``p(x) ~ exp(-E(x))``). Chains
are independent, so the gradient of the summed energy is each chain's own gradient; seeding the backward pass
with ones is that sum, without the sum's forward and backward nodes.

The log acceptance ratio of a transition is split as ``partial + known``: ``known`` is the part its random
numbers fix before it moves (``|xi|^2 / 2`` for Langevin, the initial kinetic energy for HMC), so a loop that
draws noise for many steps at once can fold it into the Metropolis threshold (:func:`decide`), and derive the
acceptance probability and the divergence flag from the sum only where it needs them (:func:`statistics`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from probrep.inference.mcmc.constants import MAX_ENERGY_ERROR

__all__ = ["EnergyFn", "ChainState", "TransitionInfo", "energy_and_grad", "init"]

EnergyFn = Callable[[torch.Tensor], torch.Tensor]


class ChainState(NamedTuple):
    """Positions [chains, ...], their energies [chains] and energy gradients [chains, ...]."""

    x: torch.Tensor
    energy: torch.Tensor
    grad: torch.Tensor


class TransitionInfo(NamedTuple):
    """What one batched transition reports, per chain."""

    accept_prob: torch.Tensor  # [chains], min(1, alpha); 0 for a non-finite proposal
    accepted: torch.Tensor  # [chains] bool: whether the chain moved
    diverging: torch.Tensor  # [chains] bool: log alpha NaN or below -MAX_ENERGY_ERROR


def backward_seed(energy: torch.Tensor) -> torch.Tensor:
    """Ones shaped like the chains' energies, to seed the backward pass; a loop makes it once and holds it for
    the run. An expanded scalar, so that a backward pass that wrongly wrote into its incoming gradient would
    raise instead of corrupting it."""
    return torch.ones((), device=energy.device, dtype=energy.dtype).expand(energy.shape)


def gradient(energy_fn: EnergyFn, x: torch.Tensor, seed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``E(x)`` [chains] and ``grad E(x)`` [chains, ...], detached, with gradients already enabled and the backward
    seed ``seed`` (:func:`backward_seed`)."""
    x = x.detach().requires_grad_(True)
    energy = energy_fn(x)
    (grad,) = torch.autograd.grad((energy,), (x,), (seed,))  # tuples: autograd.grad converts anything else
    return energy.detach(), grad


def energy_and_grad(energy_fn: EnergyFn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``E(x)`` [chains] and ``grad E(x)`` [chains, ...], detached."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        energy = energy_fn(x)
        (grad,) = torch.autograd.grad((energy,), (x,), (backward_seed(energy),))
    return energy.detach(), grad


def init(energy_fn: EnergyFn, x: torch.Tensor) -> ChainState:
    """The state at ``x`` [chains, ...] (the ``init`` of every torch kernel); checks that ``energy_fn`` gives one
    differentiable energy per chain, finite with a finite gradient."""
    if not callable(energy_fn):
        raise TypeError(f"energy_fn must be callable, got {type(energy_fn).__name__}")
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        energy = energy_fn(xg)
        if not torch.is_tensor(energy) or energy.shape != (x.shape[0],):
            shape = tuple(energy.shape) if torch.is_tensor(energy) else type(energy).__name__
            raise ValueError(
                f"energy_fn must return one energy per chain, shape ({x.shape[0]},) for x of shape "
                f"{tuple(x.shape)}; got {shape}"
            )
        if not energy.requires_grad:
            raise ValueError("energy_fn's output does not depend differentiably on x (no gradient)")
        (grad,) = torch.autograd.grad(energy.sum(), xg)
    bad = ~(torch.isfinite(energy) & torch.isfinite(grad).flatten(1).all(1))
    if bad.any():
        raise ValueError(
            f"the energy or its gradient is not finite at x0 for chains {bad.nonzero().flatten().tolist()}"
        )
    return ChainState(x.detach(), energy.detach(), grad)


@functools.cache  # a pure function of a small int: a view shape per number of dimensions
def _chain_shape(dim: int) -> tuple[int, ...]:
    return (-1,) + (1,) * (dim - 1)


def per_chain(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``v`` [chains] viewed to broadcast against ``x`` [chains, ...]."""
    return v.view(_chain_shape(x.dim()))


def square(v: torch.Tensor, leading: int = 1) -> torch.Tensor:
    """``|v|^2`` over the event dimensions of ``v``, which follow its ``leading`` dimensions ([chains], or
    [steps, chains] for a block of noise)."""
    flat = v if v.dim() == leading + 1 else v.flatten(leading)
    return torch.linalg.vecdot(flat, flat)


def decide(state, x_new, energy_new, grad_new, partial, threshold) -> tuple[ChainState, torch.Tensor]:
    """The Metropolis decision per chain, shared by Langevin and HMC: move where ``threshold < partial``.

    ``threshold`` [chains] is the log of a uniform minus ``known`` for MALA and HMC, and ``-inf`` for ULA, which
    always moves. A non-finite proposal never moves: ``partial`` is NaN (every comparison false) or ``-inf``
    there, because the energy enters it as ``E(x) - E(x')`` with a non-finite ``E(x')`` made ``+inf`` by the
    caller (:func:`finite_energy`), and a non-finite gradient enters it through a squared norm. Returns the new
    state and ``accepted`` [chains]."""
    accepted = threshold < partial
    mask = per_chain(accepted, state.x)
    new = ChainState(
        torch.where(mask, x_new, state.x),
        torch.where(accepted, energy_new, state.energy),
        torch.where(mask, grad_new, state.grad),
    )
    return new, accepted


def finite_energy(energy: torch.Tensor) -> torch.Tensor:
    """``energy`` with NaN and -inf made +inf, and +inf kept (``nan_to_num`` would make it the largest float): a
    proposal there has log ratio -inf, so it is never taken, not even by ULA."""
    return torch.nan_to_num(energy, math.inf, math.inf, math.inf)  # positional: keywords cost a microsecond


def statistics(log_ratio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``min(1, alpha)`` (0 for a non-finite proposal) and the divergence flag (log ratio NaN or below
    ``-MAX_ENERGY_ERROR``) from log ratios of any shape."""
    log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf, posinf=-math.inf)
    return log_ratio.clamp(max=0.0).exp_(), log_ratio < -MAX_ENERGY_ERROR


def transition_info(partial: torch.Tensor, known: torch.Tensor, accepted: torch.Tensor) -> TransitionInfo:
    accept_prob, diverging = statistics(partial + known)
    return TransitionInfo(accept_prob, accepted, diverging)


def log_uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A log-uniform per chain of ``x``, on its device and in its dtype."""
    return torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype).log_()


def always(x: torch.Tensor) -> torch.Tensor:
    """The threshold of a move that is always taken (ULA): ``-inf`` [chains]."""
    return torch.full((x.shape[0],), -math.inf, device=x.device, dtype=x.dtype)
