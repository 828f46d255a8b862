"""Batched Langevin (MALA / ULA) and HMC transitions in torch: pure ``init`` / ``step`` pairs, and the
:class:`Kernel` description through which the one driver (:mod:`.driver`) runs either.

Step parameters (one per chain; named differently because they are different quantities):

- Langevin's ``step_size`` is ``e``, the variance of the injected noise (the convention of Langevin dynamics,
  SGLD, annealed Langevin and our JAX MALA). With ``g = grad E(x)`` and a diagonal inverse mass matrix
  ``C = L^2`` (``L = mass_sqrt``; 1 when None),

      x' = x - (e/2) C g + sqrt(e) L xi,
      log alpha = E(x) - E(x') - 1/2 (|xi - (sqrt(e)/2) L (g + g')|^2 - |xi|^2),

  accepted with probability ``min(1, alpha)`` when ``adjust`` (MALA) and always otherwise (ULA, biased).
- HMC's ``leapfrog_step`` is ``h``, the leap-frog step: ``num_leapfrog`` steps of ``x += h C p``,
  ``p -= h g`` (half steps for ``p`` at the ends), accepted on the change of ``H = E(x) + p^T C p / 2``.
  One leap-frog step from fresh momentum is the Langevin proposal with ``e = h^2``.

Both run in whitened coordinates, so a mass matrix costs nothing per step: with ``v = L p``, HMC moves
``x += (h L) v``, ``v -= (h L) g`` and ``|v|^2 / 2`` is the kinetic energy; Langevin folds ``L`` into its two
per-chain factors. Non-finite energies or gradients at a proposal reject it and count a divergence.

Speed. At a few chains every eager op costs about as much as the arithmetic it does, so a move is the fewest
ops that move the chains: the proposal, the log ratio, one comparison and the three selections (a MALA move is
12 ops with one in-place temporary). The step-size factors are prepared once per step size (:meth:`Kernel.prepare`),
and the loop's random numbers come in blocks with the noise's share of the log ratio folded into the threshold
(:mod:`.noise`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from probrep.inference.mcmc.constants import OPTIMAL_HMC_ACCEPTANCE, OPTIMAL_MALA_ACCEPTANCE
from probrep.inference.torch_samplers.core import (
    ChainState,
    EnergyFn,
    TransitionInfo,
    always,
    backward_seed,
    decide,
    finite_energy,
    gradient,
    init,
    log_uniform,
    per_chain,
    square,
    transition_info,
)

__all__ = [
    "Kernel",
    "langevin_kernel",
    "hmc_kernel",
    "langevin_init",
    "langevin_step",
    "hmc_init",
    "hmc_step",
]

langevin_init = init
hmc_init = init

# (state, energy_fn, prepared factors, noise, threshold, backward seed) -> (state, partial, accepted)
Move = Callable[[ChainState, EnergyFn, Any, torch.Tensor, torch.Tensor, torch.Tensor], tuple]


class Kernel(NamedTuple):
    """A transition kernel as the driver runs it."""

    name: str  # "mala", "ula", "hmc": the progress bar's and the log's label
    step_name: str  # the name of its step parameter ("step_size" or "leapfrog_step")
    grads_per_step: int
    metropolis: bool  # draws uniforms for an accept test (False: every move is taken)
    noise_scale: float  # the driver's noise blocks hold noise_scale * xi
    target_accept: float  # the acceptance rate its step size is tuned to by default
    prepare: Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor], Any]  # (step [chains], L, x) -> factors
    move: Move  # one transition with prepared factors and pre-drawn noise (noise is overwritten)
    from_langevin: Callable[[torch.Tensor], torch.Tensor]  # a Langevin variance e -> this kernel's step


# -------------------------------------------------------------------------------------------- Langevin
class LangevinFactors(NamedTuple):
    """Per-chain factors broadcast against the state, for the noise ``z = xi / sqrt(2)``: ``sqrt(2 e) L`` and
    ``-sqrt(e / 8) L``."""

    root: torch.Tensor
    neg_drift: torch.Tensor


def langevin_factors(step_size: torch.Tensor, mass_sqrt: torch.Tensor | None, x: torch.Tensor) -> LangevinFactors:
    root = per_chain(step_size.mul(2.0).sqrt_(), x)
    neg_drift = per_chain(step_size.mul(0.125).sqrt_().neg_(), x)
    if mass_sqrt is not None:
        root, neg_drift = root * mass_sqrt, neg_drift * mass_sqrt
    return LangevinFactors(root, neg_drift)


def langevin_move(
    state: ChainState, energy_fn: EnergyFn, factors: LangevinFactors, z, threshold, seed
) -> tuple[ChainState, torch.Tensor, torch.Tensor]:
    """The step with ``factors``, the noise ``z = xi / sqrt(2)`` [chains, ...] (consumed: it is overwritten), the
    Metropolis ``threshold`` [chains] (see :func:`~.core.decide`, with ``known = |z|^2``) and the backward
    ``seed``; returns the new state, ``partial`` (the log ratio minus ``|z|^2``) and ``accepted``.

    With ``w = z - sqrt(e/8) L g`` the proposal ``x - (e/2) C g + sqrt(e) L xi`` is ``x + sqrt(2e) L w``, and
    ``r = w - sqrt(e/8) L g'`` is the reverse move's noise over ``sqrt(2)``, so
    ``log alpha = E(x) - E(x') - |r|^2 + |z|^2``. The scaling by ``sqrt(2)`` saves an op per step; the
    temporary is ``z`` itself, updated in place, and there is one reduction over the state."""
    x, energy, grad = state
    w = z.addcmul_(factors.neg_drift, grad)
    x_new = torch.addcmul(x, factors.root, w)
    energy_new, grad_new = gradient(energy_fn, x_new, seed)
    energy_new = finite_energy(energy_new)
    r = w.addcmul_(factors.neg_drift, grad_new)
    partial = torch.sub(energy, energy_new).sub_(square(r))
    new, accepted = decide(state, x_new, energy_new, grad_new, partial, threshold)
    return new, partial, accepted


def langevin_kernel(adjust: bool = True) -> Kernel:
    """MALA (``adjust``) or ULA; ULA tunes its step size with MALA's acceptance statistic, without applying it."""
    return Kernel(
        name="mala" if adjust else "ula",
        step_name="step_size",
        grads_per_step=1,
        metropolis=adjust,
        noise_scale=math.sqrt(0.5),
        target_accept=OPTIMAL_MALA_ACCEPTANCE,
        prepare=langevin_factors,
        move=langevin_move,
        from_langevin=lambda e: e,
    )


def langevin_step(
    state: ChainState,
    energy_fn: EnergyFn,
    step_size: torch.Tensor,
    generator: torch.Generator | None = None,
    adjust: bool = True,
    noise: torch.Tensor | None = None,
    mass_sqrt: torch.Tensor | None = None,
) -> tuple[ChainState, TransitionInfo]:
    """One batched Langevin step with per-chain ``step_size`` [chains] (the noise variance ``e``), standard normal
    ``noise`` that broadcasts against the state (drawn from ``generator`` if None; never overwritten) and an
    optional diagonal ``mass_sqrt`` ``L`` (broadcasting against the state; ``C = L^2``)."""
    x = state.x
    xi = noise if noise is not None else torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    z = xi.expand(x.shape) * math.sqrt(0.5)  # a fresh tensor: the caller's noise is not overwritten
    known = square(z)
    threshold = (log_uniform(x, generator) if adjust else always(x)) - known
    with torch.enable_grad():
        factors = langevin_factors(step_size, mass_sqrt, x)
        new, partial, accepted = langevin_move(state, energy_fn, factors, z, threshold, backward_seed(state.energy))
    return new, transition_info(partial, known, accepted)


# ------------------------------------------------------------------------------------------------- HMC
def leapfrog_factors(leapfrog_step: torch.Tensor, mass_sqrt: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """``h L`` broadcast against the state: the whitened leap-frog step."""
    h = per_chain(leapfrog_step, x)
    return h if mass_sqrt is None else h * mass_sqrt


def hmc_move(
    state: ChainState, energy_fn: EnergyFn, h, p, threshold, seed, num_leapfrog: int
) -> tuple[ChainState, torch.Tensor, torch.Tensor]:
    """Leap-frog from ``state`` with whitened momentum ``p`` and step ``h`` (``h L``, broadcast against the state),
    the Metropolis ``threshold`` (see :func:`~.core.decide`, ``known = |p|^2 / 2``) and the backward ``seed``;
    returns the new state, ``partial`` (the log ratio minus ``|p|^2 / 2``) and ``accepted``."""
    x, energy, grad = state
    p = torch.addcmul(p, h, grad, value=-0.5)
    x_new, energy_new, grad_new = x, energy, grad
    for leap in range(num_leapfrog):
        x_new = torch.addcmul(x_new, h, p)
        energy_new, grad_new = gradient(energy_fn, x_new, seed)
        p = torch.addcmul(p, h, grad_new, value=-1.0 if leap < num_leapfrog - 1 else -0.5)
    energy_new = finite_energy(energy_new)
    partial = torch.sub(energy, energy_new).sub_(square(p), alpha=0.5)
    new, accepted = decide(state, x_new, energy_new, grad_new, partial, threshold)
    return new, partial, accepted


def hmc_kernel(num_leapfrog: int) -> Kernel:
    """HMC with ``num_leapfrog`` leap-frog steps per transition."""
    return Kernel(
        name="hmc",
        step_name="leapfrog_step",
        grads_per_step=num_leapfrog,
        metropolis=True,
        noise_scale=1.0,
        target_accept=OPTIMAL_HMC_ACCEPTANCE,
        prepare=leapfrog_factors,
        move=functools.partial(hmc_move, num_leapfrog=num_leapfrog),
        # one leap-frog step of size sqrt(e) is the Langevin move with variance e
        from_langevin=torch.sqrt,
    )


def hmc_step(
    state: ChainState,
    energy_fn: EnergyFn,
    leapfrog_step: torch.Tensor,
    num_leapfrog: int,
    generator: torch.Generator | None = None,
    momentum: torch.Tensor | None = None,
    log_u: torch.Tensor | None = None,
    mass_sqrt: torch.Tensor | None = None,
) -> tuple[ChainState, TransitionInfo]:
    """One batched HMC transition: fresh whitened momentum (or ``momentum``, ``L p``), ``num_leapfrog`` leap-frog
    steps of per-chain size ``leapfrog_step`` [chains], Metropolis accept on ``H = E + p^T C p / 2`` (against
    ``log_u`` if given)."""
    x = state.x
    p = momentum if momentum is not None else torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    log_u = log_u if log_u is not None else log_uniform(x, generator)
    kinetic0 = square(p).mul_(0.5)
    with torch.enable_grad():
        h = leapfrog_factors(leapfrog_step, mass_sqrt, x)
        seed = backward_seed(state.energy)
        new, partial, accepted = hmc_move(state, energy_fn, h, p, log_u - kinetic0, seed, num_leapfrog)
    return new, transition_info(partial, kinetic0, accepted)
