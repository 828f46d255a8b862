"""Warm-up adaptation shared by every sampler, on numpy arrays, JAX arrays and torch tensors alike.

Three primitives and one composition of them, each written once:

**Dual averaging** (Nesterov 2009; Hoffman and Gelman 2014, algorithm 5) drives the mean acceptance statistic
``a_t`` of a sampler to a target ``delta`` by running, with ``t`` counting the updates since the last restart,

    H_t         = (1 - 1/(t + t0)) H_{t-1} + (delta - a_t) / (t + t0)
    log e_t     = mu - sqrt(t) / gamma * H_t
    log ebar_t  = t^-kappa log e_t + (1 - t^-kappa) log ebar_{t-1}

with ``mu = log(10 e_0)``. The sampler uses ``e_t`` during warm-up and the averaged ``ebar`` afterwards.

**Stan's windows** split warm-up into a fast initial buffer (step size only), slow windows of doubling length in
which the inverse mass matrix is estimated from the draws (after each, the step-size adaptation restarts), and a
fast terminal buffer (:func:`warmup_windows`).

**Welford's** one-pass mean and (diagonal or dense) covariance of the draws in a window, shrunk towards a small
multiple of the identity as Stan does (:func:`welford_covariance`).

**The composition**, :func:`warmup`, returns BlackJAX-style pieces ``init`` / ``update`` / ``final`` and the
per-step schedule; a sampler's loop calls ``update`` after each warm-up step. The JAX samplers run it inside
``jax.lax.scan`` or a NumPyro kernel, the torch samplers in a Python loop, one step size per chain.

Why it runs everywhere: the updates are arithmetic operators on the arrays they are given (so one step size or
one per chain broadcast the same way), the few functions that are not (``exp``, ``log``, ``sqrt``, Cholesky) are
taken from the arrays' own library, and a branch on a schedule flag is a Python ``if`` for Python and numpy
booleans and ``jax.lax.cond`` for a JAX value (so it stays a branch inside a compiled loop). Neither JAX nor
torch is imported until an array of theirs arrives.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "DualAveragingState",
    "dual_averaging_init",
    "dual_averaging_update",
    "dual_averaging_restart",
    "warmup_windows",
    "WelfordState",
    "welford_init",
    "welford_update",
    "welford_covariance",
    "mass_matrix_sqrt",
    "WarmupStage",
    "warmup_schedule",
    "WarmupState",
    "AdaptedParameters",
    "Warmup",
    "warmup",
]

LOG_10 = math.log(10.0)


def _namespace(x: Any):
    """The array library ``x`` belongs to: torch, jax.numpy or numpy (also for Python numbers)."""
    library = type(x).__module__.partition(".")[0]
    if library == "torch":
        import torch

        return torch
    if library in ("jax", "jaxlib"):  # arrays live in jaxlib, tracers in jax
        import jax.numpy as jnp

        return jnp
    return np


def _cond(pred: Any, true_fn: Callable, false_fn: Callable, operand: Any) -> Any:
    """``true_fn(operand)`` if ``pred`` else ``false_fn(operand)``: a Python branch for a Python or numpy bool, and
    ``jax.lax.cond`` for a JAX value (a traced flag inside ``jit`` / ``scan``, where Python cannot branch)."""
    if isinstance(pred, (bool, np.bool_)):
        return true_fn(operand) if pred else false_fn(operand)
    from jax import lax

    return lax.cond(pred, true_fn, false_fn, operand)


def _same(operand: Any) -> Any:
    return operand


# ------------------------------------------------------------------------------------------ dual averaging
class DualAveragingState(NamedTuple):
    """Dual-averaging state; every field has the batch shape of the step size (``()`` or ``[chains]``)."""

    log_step_size: Any  # log e_t, used while adapting
    log_step_size_avg: Any  # log ebar_t, used after warm-up
    gradient_avg: Any  # H_t
    mu: Any  # log(10 e_0): the point the iterates shrink towards
    count: Any  # t, updates since the last (re)start


def dual_averaging_init(log_step_size: Any) -> DualAveragingState:
    """Start adapting from ``exp(log_step_size)`` (any array type; no copy is made)."""
    zero = log_step_size * 0
    return DualAveragingState(log_step_size, zero, zero, log_step_size + LOG_10, zero)


def dual_averaging_restart(state: DualAveragingState) -> DualAveragingState:
    """Restart from the current step size, as Stan does after each mass-matrix update."""
    return dual_averaging_init(state.log_step_size)


def dual_averaging_update(
    state: DualAveragingState,
    accept_stat: Any,
    target: float,
    gamma: float = 0.05,
    t0: float = 10.0,
    kappa: float = 0.75,
) -> DualAveragingState:
    """One dual-averaging update from the acceptance statistic ``accept_stat`` (in [0, 1], finite)."""
    count = state.count + 1
    weight = 1.0 / (count + t0)
    gradient_avg = (1.0 - weight) * state.gradient_avg + weight * (target - accept_stat)
    log_step_size = state.mu - count**0.5 / gamma * gradient_avg
    avg_weight = count ** (-kappa)
    log_step_size_avg = avg_weight * log_step_size + (1.0 - avg_weight) * state.log_step_size_avg
    return DualAveragingState(log_step_size, log_step_size_avg, gradient_avg, state.mu, count)


# --------------------------------------------------------------------------------------------- windows
def warmup_windows(
    num_warmup: int, init_buffer: int = 75, term_buffer: int = 50, base_window: int = 25
) -> list[tuple[int, int]]:
    """Stan's slow adaptation windows ``[(start, end), ...]`` (end exclusive) for ``num_warmup`` steps.

    Windows start after ``init_buffer`` steps, begin ``base_window`` long and double; the last one stretches
    to ``num_warmup - term_buffer`` when the next doubling would not fit. Short warm-ups (where the three
    pieces do not fit) use Stan's 15% / 75% / 10% split; below 20 steps there are no windows.
    """
    num_warmup = int(num_warmup)
    if num_warmup < 20:
        return []
    if init_buffer + base_window + term_buffer > num_warmup:
        init_buffer = int(0.15 * num_warmup)
        term_buffer = int(0.1 * num_warmup)
        base_window = num_warmup - init_buffer - term_buffer
    end_slow = num_warmup - term_buffer
    windows, start, size = [], init_buffer, base_window
    while start < end_slow:
        end = start + size
        if end + 2 * size > end_slow:
            end = end_slow
        windows.append((start, end))
        start, size = end, 2 * size
    return windows


# --------------------------------------------------------------------------------------------- Welford
class WelfordState(NamedTuple):
    """Running count, mean and sum of squared deviations of the draws (``m2`` shaped like a draw for a diagonal
    estimate, ``[..., d, d]`` for a dense one)."""

    count: Any  # n, a 0-d array
    mean: Any
    m2: Any


def welford_init(like: Any, dense: bool = False) -> WelfordState:
    """An empty estimate for draws shaped like ``like`` (flat [d] for ``dense``; any shape, batch dimensions
    included, for a diagonal one: each element is estimated on its own)."""
    zero = like * 0
    m2 = zero[..., :, None] * zero[..., None, :] if dense else zero
    return WelfordState(zero.sum(), zero, m2)


def welford_update(state: WelfordState, x: Any) -> WelfordState:
    """Add one draw: ``mean += (x - mean) / n``, ``m2 += (x - mean_old) (x - mean_new)`` (outer for dense)."""
    count = state.count + 1
    delta = x - state.mean
    mean = state.mean + delta / count
    after = x - mean
    dense = state.m2.ndim == state.mean.ndim + 1
    m2 = state.m2 + (delta[..., :, None] * after[..., None, :] if dense else delta * after)
    return WelfordState(count, mean, m2)


def welford_covariance(state: WelfordState, regularize: bool = True) -> Any:
    """The sample covariance ``C = m2 / (n - 1)``, shrunk as Stan does: ``n/(n+5) C + 1e-3 * 5/(n+5) I`` (so a
    window in which a chain hardly moved still gives a positive definite, if small, metric)."""
    n = state.count
    cov = state.m2 / (n - 1).clip(min=1)
    if not regularize:
        return cov
    shrink = n / (n + 5.0)
    jitter = 1e-3 * 5.0 / (n + 5.0)
    if cov.ndim == state.mean.ndim + 1:
        return shrink * cov + jitter * _identity_like(cov)
    return shrink * cov + jitter


def _identity_like(matrix: Any) -> Any:
    """The identity [d, d] in ``matrix``'s library, dtype (and torch device)."""
    xp, size = _namespace(matrix), matrix.shape[-1]
    if xp is np:
        return np.eye(size, dtype=matrix.dtype)
    if xp.__name__ == "torch":
        return xp.eye(size, dtype=matrix.dtype, device=matrix.device)
    return xp.eye(size, dtype=matrix.dtype)


def mass_matrix_sqrt(inverse_mass_matrix: Any, dense: bool = False) -> Any:
    """``L`` with ``C = L L^T`` for the inverse mass matrix ``C``: the elementwise square root of a diagonal (any
    shape) or the lower Cholesky factor of a dense [d, d] matrix. The samplers move with ``L`` (noise ``L xi``)."""
    xp = _namespace(inverse_mass_matrix)
    return xp.linalg.cholesky(inverse_mass_matrix) if dense else xp.sqrt(inverse_mass_matrix)


# ---------------------------------------------------------------------------------------- composition
class WarmupStage(NamedTuple):
    """What the warm-up schedule says about one step (or, as the schedule, about every step: arrays [num_warmup])."""

    collect: Any  # the draw after this step feeds the variance estimate (inside a slow window)
    window_end: Any  # after this step the inverse mass matrix is replaced and dual averaging restarts
    last: Any  # the last warm-up step: switch to the averaged step size

    def at(self, t: Any) -> WarmupStage:
        """Step ``t``'s flags (``t`` a Python int for numpy schedules, or a traced index for JAX arrays)."""
        return WarmupStage(self.collect[t], self.window_end[t], self.last[t])


def warmup_schedule(num_warmup: int, **window_kwargs: int) -> WarmupStage:
    """The per-step flags of a warm-up of ``num_warmup`` steps, as numpy bool arrays [max(num_warmup, 1)] (never
    empty, so a compiled loop may index it at any step)."""
    size = max(int(num_warmup), 1)
    collect, window_end, last = np.zeros(size, bool), np.zeros(size, bool), np.zeros(size, bool)
    for start, end in warmup_windows(num_warmup, **window_kwargs):
        collect[start:end] = True
        window_end[end - 1] = True
    if num_warmup > 0:
        last[num_warmup - 1] = True
    return WarmupStage(collect, window_end, last)


class WarmupState(NamedTuple):
    """The sampler parameters being adapted and the estimators adapting them."""

    step_size: Any  # the step size for the next step ([] or [chains])
    inverse_mass_matrix: Any  # C (diagonal, any shape, or [d, d]); None when there is none (the identity)
    mass_sqrt: Any  # L with C = L L^T (see mass_matrix_sqrt); None with C
    dual: DualAveragingState
    welford: WelfordState | None  # None unless the mass matrix is adapted


class AdaptedParameters(NamedTuple):
    """What warm-up hands to sampling."""

    step_size: Any
    inverse_mass_matrix: Any
    mass_sqrt: Any


class Warmup(NamedTuple):
    """Window adaptation as pieces (see :func:`warmup`)."""

    schedule: WarmupStage  # numpy bool arrays [max(num_warmup, 1)]
    init: Callable[[Any, Any, Any], WarmupState]  # (position, step_size, inverse_mass_matrix) -> state
    update: Callable[[WarmupState, WarmupStage, Any, Any], WarmupState]  # (state, stage, position, accept_stat)
    final: Callable[[WarmupState], AdaptedParameters]


def warmup(
    num_warmup: int,
    target_accept: float,
    *,
    adapt_step_size: bool = True,
    adapt_mass_matrix: bool = True,
    dense: bool = False,
    regularize: bool = True,
    **window_kwargs: int,
) -> Warmup:
    """Stan-style window adaptation of the step size (dual averaging to ``target_accept``) and of the inverse mass
    matrix (Welford over the slow windows; diagonal, or ``dense`` for flat positions), as ``init`` / ``update`` /
    ``final`` pieces with the schedule they follow.

    A loop runs, for ``t`` in ``range(num_warmup)``: one sampler step with ``state.step_size`` and
    ``state.mass_sqrt``, then ``state = update(state, schedule.at(t), position, accept_stat)``; after warm-up,
    ``final(state)`` gives the parameters to sample with. ``update`` does, in this order: a dual-averaging step;
    the draw into the variance estimate if ``stage.collect``; at ``stage.window_end`` the new inverse mass matrix,
    a fresh estimate and a dual-averaging restart from the current step size; then the step size for the next
    step, ``e_t`` (``ebar`` after the last step). The position and the acceptance statistic may carry a chain
    dimension: every chain then adapts on its own.
    """
    target = float(target_accept)

    def init(position: Any, step_size: Any, inverse_mass_matrix: Any = None) -> WarmupState:
        """``inverse_mass_matrix`` is the starting metric (required when adapting it)."""
        if adapt_mass_matrix and inverse_mass_matrix is None:
            raise ValueError("warmup: adapting the mass matrix needs a starting inverse_mass_matrix")
        sqrt = None if inverse_mass_matrix is None else mass_matrix_sqrt(inverse_mass_matrix, dense)
        dual = dual_averaging_init(_namespace(step_size).log(step_size))
        welford = welford_init(position, dense) if adapt_mass_matrix else None
        return WarmupState(step_size, inverse_mass_matrix, sqrt, dual, welford)

    def end_window(carry: tuple) -> tuple:
        _, _, welford, dual = carry
        cov = welford_covariance(welford, regularize)
        return cov, mass_matrix_sqrt(cov, dense), welford_init(welford.mean, dense), dual_averaging_restart(dual)

    def update(state: WarmupState, stage: WarmupStage, position: Any, accept_stat: Any) -> WarmupState:
        step_size, imm, sqrt, dual, welford = state
        if adapt_step_size:
            dual = dual_averaging_update(dual, accept_stat, target)
        if adapt_mass_matrix:
            welford = _cond(stage.collect, lambda w: welford_update(w, position), _same, welford)
            imm, sqrt, welford, dual = _cond(stage.window_end, end_window, _same, (imm, sqrt, welford, dual))
        if adapt_step_size:
            log_step = _cond(stage.last, lambda d: d.log_step_size_avg, lambda d: d.log_step_size, dual)
            step_size = _namespace(log_step).exp(log_step)
        return WarmupState(step_size, imm, sqrt, dual, welford)

    def final(state: WarmupState) -> AdaptedParameters:
        return AdaptedParameters(state.step_size, state.inverse_mass_matrix, state.mass_sqrt)

    return Warmup(warmup_schedule(num_warmup, **window_kwargs), init, update, final)
