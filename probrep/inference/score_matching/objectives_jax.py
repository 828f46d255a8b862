"""The score-matching objectives of :mod:`probrep.inference.score_matching.objectives` in JAX, for NumPyro users.

Same definitions and conventions: ``score_fn`` maps a batch ``[N, D]`` to ``[N, D]``; each function returns
the batch mean, or per-example values with ``reduction="none"``; randomness comes from an explicit ``key``.
Derivatives use forward mode per example (``jax.jacfwd`` for the exact trace, ``jax.jvp`` for projections).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

ScoreFn = Callable[..., jnp.ndarray]


def _reduce(values: jnp.ndarray, reduction: str) -> jnp.ndarray:
    if reduction == "mean":
        return values.mean()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _check(x) -> jnp.ndarray:
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x must have shape [N, D] with N > 0, got {x.shape}")
    return x


def _single(score_fn: ScoreFn) -> Callable[[jnp.ndarray], jnp.ndarray]:
    return lambda xi: score_fn(xi[None])[0]


def exact(score_fn: ScoreFn, x, reduction: str = "mean") -> jnp.ndarray:
    """``1/2 ||s(x)||^2 + tr grad_x s(x)``, the trace from the per-example Jacobian."""
    x = _check(x)
    s = score_fn(x)
    if s.shape != x.shape:
        raise ValueError(f"score_fn must return the input's shape {x.shape}, got {s.shape}")
    jac = jax.vmap(jax.jacfwd(_single(score_fn)))(x)
    return _reduce(0.5 * (s**2).sum(1) + jnp.trace(jac, axis1=1, axis2=2), reduction)


def sliced(
    score_fn: ScoreFn,
    x,
    key: jax.Array,
    n_projections: int = 1,
    variance_reduction: bool = False,
    projection: str = "gaussian",
    reduction: str = "mean",
) -> jnp.ndarray:
    """SSM / SSM-VR with unnormalised projections: ``v^T J v + 1/2 (v^T s)^2`` (or ``1/2 ||s||^2``)."""
    x = _check(x)
    if int(n_projections) < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    shape = (int(n_projections), *x.shape)
    if projection == "gaussian":
        v = jax.random.normal(key, shape, dtype=x.dtype)
    elif projection == "rademacher":
        v = jax.random.rademacher(key, shape, dtype=x.dtype)
    else:
        raise ValueError(f"projection must be 'gaussian' or 'rademacher', got {projection!r}")
    single = _single(score_fn)

    def per_example(xi, vi):  # vi: [P, D]
        def one(v1):
            s, jv = jax.jvp(single, (xi,), (v1,))
            quadratic = 0.5 * (s**2).sum() if variance_reduction else 0.5 * (v1 @ s) ** 2
            return v1 @ jv + quadratic

        return jax.vmap(one)(vi).mean()

    values = jax.vmap(per_example)(x, jnp.swapaxes(v, 0, 1))
    return _reduce(values, reduction)


def denoising(score_fn: ScoreFn, x, sigma, key: jax.Array, reduction: str = "mean") -> jnp.ndarray:
    """``1/2 ||s(x + sigma e) + e / sigma||^2``; several sigmas: level per example, ``score_fn(x~, sigma_i)``,
    weight ``sigma_i^2``."""
    x = _check(x)
    sigmas = jnp.atleast_1d(jnp.asarray(sigma, dtype=x.dtype))
    key_noise, key_level = jax.random.split(key)
    e = jax.random.normal(key_noise, x.shape, dtype=x.dtype)
    if sigmas.shape[0] == 1:
        s = sigmas[0]
        return _reduce(0.5 * ((score_fn(x + s * e) + e / s) ** 2).sum(1), reduction)
    level = jax.random.randint(key_level, (x.shape[0],), 0, sigmas.shape[0])
    s = sigmas[level][:, None]
    values = 0.5 * s[:, 0] ** 2 * ((score_fn(x + s * e, s) + e / s) ** 2).sum(1)
    return _reduce(values, reduction)
