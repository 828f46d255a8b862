"""MALA and ULA in JAX as a pure ``init`` / ``step`` pair (BlackJAX style): state in, state and info out.

Parameterisation. With step size ``e`` (the variance of the injected noise, not its scale: the convention of
Langevin dynamics, SGLD and annealed Langevin, and of the torch :func:`~probrep.inference.langevin.langevin`),
inverse mass matrix ``C = L L^T`` and ``g = grad log p(x)``, one step proposes

    x' = x + (e/2) C g + sqrt(e) L xi,        xi ~ N(0, I),

which is one leap-frog step of HMC with step ``h = sqrt(e)``. MALA accepts it with probability
``min(1, p(x') q(x | x') / (p(x) q(x' | x)))``; the exact asymmetric correction reduces to

    log q(x | x') - log q(x' | x) = -1/2 (|xi + (sqrt(e)/2) L^T (g + g')|^2 - |xi|^2),

so no linear solve is needed for a dense ``C``. ULA always moves and is biased: on ``N(0, 1)`` with ``C = 1``
its chain is ``x' = (1 - e/2) x + sqrt(e) xi``, whose stationary variance is ``1 / (1 - e/4)`` (not 1).
A proposal with a non-finite log density or gradient is rejected and counted as a divergence (the chain goes
on); MALA also counts proposals whose log acceptance ratio is below ``-MAX_ENERGY_ERROR``, as Stan does for HMC.

Tuning is built on top, not inside: :func:`find_reasonable_step_size` here, window adaptation in
:mod:`.window` (a ``lax.scan`` over :func:`step`) and the NumPyro kernels in :mod:`.kernels`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax, random

from probrep.inference.mcmc.constants import MAX_ENERGY_ERROR

__all__ = ["LangevinState", "LangevinInfo", "init", "step", "find_reasonable_step_size"]


class LangevinState(NamedTuple):
    """Position (flat), its log density and the gradient of the log density."""

    position: jax.Array
    logdensity: jax.Array
    logdensity_grad: jax.Array


class LangevinInfo(NamedTuple):
    acceptance_rate: jax.Array  # min(1, exp(log ratio)); 0 for a non-finite proposal
    is_accepted: jax.Array  # whether the chain moved
    diverging: jax.Array


def init(position: jax.Array, logdensity_fn: Callable[[jax.Array], jax.Array]) -> LangevinState:
    """The sampler state at ``position`` (a flat array)."""
    logdensity, grad = jax.value_and_grad(logdensity_fn)(position)
    return LangevinState(position, logdensity, grad)


def _factor_times(mass_sqrt: jax.Array, v: jax.Array) -> jax.Array:  # L v
    return mass_sqrt * v if mass_sqrt.ndim == 1 else mass_sqrt @ v


def _factor_t_times(mass_sqrt: jax.Array, v: jax.Array) -> jax.Array:  # L^T v
    return mass_sqrt * v if mass_sqrt.ndim == 1 else v @ mass_sqrt


def step(
    rng_key: jax.Array,
    state: LangevinState,
    logdensity_fn: Callable[[jax.Array], jax.Array],
    step_size: jax.Array | float,
    mass_sqrt: jax.Array | None = None,
    adjust: bool = True,
) -> tuple[LangevinState, LangevinInfo]:
    """One Langevin step ``x' = x + (e/2) C grad log p(x) + sqrt(e) L xi`` (``C = L L^T``, identity if
    ``mass_sqrt`` is None: a vector for diagonal ``C``, a lower-triangular matrix for dense), Metropolis-adjusted
    when ``adjust`` (MALA), always moving otherwise (ULA). Pure: state in, state and info out."""
    key_noise, key_accept = random.split(rng_key)
    x, logp, grad = state
    xi = random.normal(key_noise, jnp.shape(x), dtype=jnp.result_type(x))
    root = jnp.sqrt(step_size)
    if mass_sqrt is None:
        x_new = x + 0.5 * step_size * grad + root * xi
    else:
        x_new = x + _factor_times(mass_sqrt, 0.5 * step_size * _factor_t_times(mass_sqrt, grad) + root * xi)
    logp_new, grad_new = jax.value_and_grad(logdensity_fn)(x_new)
    grad_sum = grad + grad_new
    if mass_sqrt is not None:
        grad_sum = _factor_t_times(mass_sqrt, grad_sum)
    momentum_new = xi + 0.5 * root * grad_sum
    log_ratio = logp_new - logp - 0.5 * (jnp.sum(momentum_new**2) - jnp.sum(xi**2))
    finite = jnp.isfinite(logp_new) & jnp.all(jnp.isfinite(grad_new))
    log_ratio = jnp.where(finite & ~jnp.isnan(log_ratio), log_ratio, -jnp.inf)
    acceptance = jnp.exp(jnp.minimum(log_ratio, 0.0))
    if adjust:
        accepted = finite & (jnp.log(random.uniform(key_accept, dtype=jnp.result_type(logp))) < log_ratio)
        diverging = ~finite | (log_ratio < -MAX_ENERGY_ERROR)
    else:
        accepted, diverging = finite, ~finite
    new_state = LangevinState(
        jnp.where(accepted, x_new, x), jnp.where(accepted, logp_new, logp), jnp.where(accepted, grad_new, grad)
    )
    return new_state, LangevinInfo(acceptance, accepted, diverging)


def find_reasonable_step_size(
    rng_key: jax.Array,
    state: LangevinState,
    logdensity_fn: Callable[[jax.Array], jax.Array],
    mass_sqrt: jax.Array | None = None,
    initial: float = 1.0,
    threshold: float = 0.5,
    max_doublings: int = 60,
) -> jax.Array:
    """Double (or halve) the step size from ``initial`` until the one-step MALA acceptance, at fixed noise,
    crosses ``threshold``; return the first step size on the far side. A rough start for dual averaging."""
    dtype = jnp.result_type(state.position)

    def log_accept(step_size):
        _, info = step(rng_key, state, logdensity_fn, step_size, mass_sqrt, adjust=True)
        return jnp.log(info.acceptance_rate)

    log_threshold = np.log(threshold)
    step0 = jnp.asarray(initial, dtype=dtype)
    direction = jnp.where(log_accept(step0) > log_threshold, 2.0, 0.5).astype(dtype)

    def keep_going(carry):
        step_size, count, above = carry
        return (count < max_doublings) & (above == (direction > 1))

    def body(carry):
        step_size, count, _ = carry
        step_size = step_size * direction
        return step_size, count + 1, log_accept(step_size) > log_threshold

    step_size, _, _ = lax.while_loop(keep_going, body, (step0, 0, direction > 1))
    return step_size
