"""Window adaptation of the pure JAX MALA / ULA step, without NumPyro: warm up, then sample with a plain scan.

    state, params, _ = window_adaptation(key_warmup, logdensity_fn, x0, num_warmup=1000)

    def one_step(state, key):
        return step(key, state, logdensity_fn, params.step_size, params.mass_sqrt)

    state, info = jax.lax.scan(one_step, state, jax.random.split(key_sampling, 2000))

Warm-up is the composition every sampler of ours shares (:func:`probrep.inference.mcmc.adaptation.warmup`): the
step size by dual averaging towards ``target_accept`` (0.574 for MALA), and the inverse mass matrix ``C`` from
Welford estimates over Stan's slow windows, after each of which the step-size adaptation restarts. Here the
warm-up steps run in one ``lax.scan`` whose per-step input is the schedule's flags, so the branches of the
adaptation are ``lax.cond``s on traced values. The NumPyro kernels (:mod:`.kernels`) run the same update inside
their ``sample``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax, random

from probrep._checks import integer, probability
from probrep.inference.mcmc import adaptation as adapt
from probrep.inference.mcmc.constants import OPTIMAL_MALA_ACCEPTANCE
from probrep.inference.mcmc.langevin import LangevinInfo, LangevinState, find_reasonable_step_size, init, step

__all__ = ["window_adaptation"]


def window_adaptation(
    rng_key: jax.Array,
    logdensity_fn: Callable[[jax.Array], jax.Array],
    position: jax.Array,
    num_warmup: int,
    *,
    adjust: bool = True,
    step_size: float | jax.Array | None = None,
    inverse_mass_matrix: Any = None,
    dense_mass: bool = False,
    target_accept: float = OPTIMAL_MALA_ACCEPTANCE,
    adapt_step_size: bool = True,
    adapt_mass_matrix: bool | None = None,
    regularize: bool = True,
) -> tuple[LangevinState, adapt.AdaptedParameters, LangevinInfo]:
    """Run ``num_warmup`` Langevin steps (MALA when ``adjust``, else ULA) from ``position`` (a flat array [d]),
    adapting as they go.

    Args:
        step_size: the starting ``e`` (noise variance); ``None`` finds one by doubling / halving.
        inverse_mass_matrix: the starting (or, without ``adapt_mass_matrix``, fixed) ``C``, [d] or [d, d];
            default the identity, dense when ``dense_mass``.
        target_accept: the acceptance rate dual averaging aims for (ULA tunes with MALA's statistic).
        adapt_mass_matrix: default (None) on for MALA, off for ULA (as the kernels: see ``MALA``).

    Returns:
        The chain's state after warm-up, the adapted ``step_size`` / ``inverse_mass_matrix`` / ``mass_sqrt``
        (the ``L`` that :func:`~probrep.inference.mcmc.langevin.step` takes) and the warm-up steps' info
        (arrays [num_warmup]).
    """
    position = jnp.asarray(position)
    if position.ndim != 1 or position.size == 0:
        raise ValueError(f"position must be a flat array [d] with d >= 1, got shape {position.shape}")
    num_warmup = integer(num_warmup, "num_warmup", minimum=0)
    target_accept = probability(target_accept, "target_accept")
    dim, dtype = position.shape[0], position.dtype
    if inverse_mass_matrix is None:
        imm = jnp.eye(dim, dtype=dtype) if dense_mass else jnp.ones(dim, dtype=dtype)
    else:
        imm = jnp.asarray(inverse_mass_matrix, dtype=dtype)
        if imm.shape not in ((dim,), (dim, dim)):
            raise ValueError(f"inverse_mass_matrix has shape {imm.shape}, expected ({dim},) or ({dim}, {dim})")
    dense = imm.ndim == 2
    if adapt_mass_matrix is None:
        adapt_mass_matrix = adjust
    warm = adapt.warmup(
        num_warmup,
        target_accept,
        adapt_step_size=adapt_step_size,
        adapt_mass_matrix=adapt_mass_matrix,
        dense=dense,
        regularize=regularize,
    )
    state = init(position, logdensity_fn)
    key_search, key_steps = random.split(rng_key)
    if step_size is None:
        step_size = find_reasonable_step_size(key_search, state, logdensity_fn, adapt.mass_matrix_sqrt(imm, dense))
    adapt_state = warm.init(position, jnp.asarray(step_size, dtype=dtype), imm)
    schedule = adapt.WarmupStage(*(jnp.asarray(flags[:num_warmup]) for flags in warm.schedule))

    def one_step(carry, inputs):
        state, adapt_state = carry
        key, stage = inputs
        state, info = step(key, state, logdensity_fn, adapt_state.step_size, adapt_state.mass_sqrt, adjust)
        adapt_state = warm.update(adapt_state, stage, state.position, info.acceptance_rate)
        return (state, adapt_state), info

    keys = random.split(key_steps, num_warmup)
    (state, adapt_state), info = lax.scan(one_step, (state, adapt_state), (keys, schedule))
    return state, warm.final(adapt_state), info
