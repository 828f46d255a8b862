"""Warm-up adaptation shared by every sampler: dual-averaging step size, Stan's warm-up windows, Welford moments.

Dual averaging (Nesterov 2009; Hoffman and Gelman 2014, algorithm 5) drives the mean acceptance statistic
``a_t`` of a sampler to a target ``delta`` by running, with ``t`` counting the updates since the last restart,

    H_t         = (1 - 1/(t + t0)) H_{t-1} + (delta - a_t) / (t + t0)
    log e_t     = mu - sqrt(t) / gamma * H_t
    log ebar_t  = t^-kappa log e_t + (1 - t^-kappa) log ebar_{t-1}

with ``mu = log(10 e_0)``. The sampler uses ``e_t`` during warm-up and the averaged ``ebar`` afterwards. The
update uses only arithmetic operators, so the same functions run on JAX arrays (the NumPyro kernels) and on
torch tensors (the batched torch samplers, one step size per chain): one concept, one place.

Stan's windows split warm-up into a fast initial buffer (step size only), slow windows of doubling length in
which the inverse mass matrix is estimated from the draws (then the step size adaptation restarts), and a fast
terminal buffer. :func:`warmup_windows` computes them; :func:`welford_init` / :func:`welford_update` /
:func:`welford_covariance` estimate the (diagonal or dense) covariance in one pass, in JAX.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "DualAveragingState",
    "dual_averaging_init",
    "dual_averaging_update",
    "dual_averaging_restart",
    "warmup_windows",
    "warmup_schedule",
    "WelfordState",
    "welford_init",
    "welford_update",
    "welford_covariance",
]

LOG_10 = math.log(10.0)


class DualAveragingState(NamedTuple):
    """Dual-averaging state; every field has the batch shape of the step size (``()`` or ``[chains]``)."""

    log_step_size: Any  # log e_t, used while adapting
    log_step_size_avg: Any  # log ebar_t, used after warm-up
    gradient_avg: Any  # H_t
    mu: Any  # log(10 e_0): the point the iterates shrink towards
    count: Any  # t, updates since the last (re)start


def dual_averaging_init(log_step_size: Any) -> DualAveragingState:
    """Start adapting from ``exp(log_step_size)`` (a JAX array or a torch tensor; no copy is made)."""
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


def warmup_schedule(num_warmup: int, **window_kwargs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per warm-up step: ``in_window[i]`` (step i's draw feeds the covariance estimate) and ``window_end[i]``
    (after step i the inverse mass matrix is updated and step-size adaptation restarts)."""
    in_window = np.zeros(max(num_warmup, 1), dtype=bool)
    window_end = np.zeros(max(num_warmup, 1), dtype=bool)
    for start, end in warmup_windows(num_warmup, **window_kwargs):
        in_window[start:end] = True
        window_end[end - 1] = True
    return in_window, window_end


# ------------------------------------------------------------------------------------------- Welford (JAX)
class WelfordState(NamedTuple):
    """Running mean and sum of squared deviations (a vector for diagonal, a matrix for dense)."""

    count: Any
    mean: Any
    m2: Any


def welford_init(dim: int, dense: bool, dtype: Any = None) -> WelfordState:
    import jax.numpy as jnp

    m2 = jnp.zeros((dim, dim) if dense else (dim,), dtype=dtype)
    return WelfordState(jnp.zeros((), dtype=dtype), jnp.zeros(dim, dtype=dtype), m2)


def welford_update(state: WelfordState, x: Any) -> WelfordState:
    """Add one draw: ``mean += (x - mean) / n``, ``m2 += (x - mean_old) (x - mean_new)`` (outer for dense)."""
    import jax.numpy as jnp

    count = state.count + 1
    delta = x - state.mean
    mean = state.mean + delta / count
    if state.m2.ndim == 2:
        m2 = state.m2 + jnp.outer(delta, x - mean)
    else:
        m2 = state.m2 + delta * (x - mean)
    return WelfordState(count, mean, m2)


def welford_covariance(state: WelfordState, regularize: bool = True) -> Any:
    """The sample covariance ``m2 / (n - 1)``, shrunk as Stan does: ``n/(n+5) C + 1e-3 * 5/(n+5) I``."""
    import jax.numpy as jnp

    n = state.count
    cov = state.m2 / jnp.maximum(n - 1, 1)
    if regularize:
        shrink = n / (n + 5.0)
        jitter = 1e-3 * 5.0 / (n + 5.0)
        if cov.ndim == 2:
            cov = shrink * cov + jitter * jnp.eye(cov.shape[0], dtype=cov.dtype)
        else:
            cov = shrink * cov + jitter
    return cov
