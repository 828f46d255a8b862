"""Exogenous noise terms: their distributions on each backend, and exact inversion of mechanisms in them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from probrep.causal.parse import Noise


def numpy_draw(noise: Noise, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Draw ``noise`` with numpy (parameterisations as in NumPyro/Pyro)."""
    p = noise.params
    d = noise.dist
    if d == "Normal":
        return rng.normal(p[0], p[1], shape)
    if d == "Uniform":
        return rng.uniform(p[0], p[1], shape)
    if d == "Laplace":
        return rng.laplace(p[0], p[1], shape)
    if d == "Exponential":
        return rng.exponential(1.0 / p[0], shape)
    if d == "Gamma":
        return rng.gamma(p[0], 1.0 / p[1], shape)
    if d == "Beta":
        return rng.beta(p[0], p[1], shape)
    if d == "StudentT":
        return p[1] + p[2] * rng.standard_t(p[0], shape)
    if d == "Cauchy":
        return p[0] + p[1] * rng.standard_cauchy(shape)
    if d == "Bernoulli":
        return (rng.random(shape) < p[0]).astype(float)
    if d == "Categorical":
        return rng.choice(len(p[0]), size=shape, p=np.asarray(p[0])).astype(float)
    raise ValueError(f"unknown distribution {d!r} of noise {noise.name!r}")


def make_distribution(noise: Noise, backend: str, device=None):
    """The noise's distribution from NumPyro (``backend="numpyro"``) or Pyro (``"pyro"``, on ``device``)."""
    if backend == "numpyro":
        import numpyro.distributions as dist

        params = (np.asarray(noise.params[0], dtype=float),) if noise.dist == "Categorical" else noise.params
        return getattr(dist, noise.dist)(*params)
    import pyro.distributions as dist
    import torch

    dtype = torch.get_default_dtype()
    if noise.dist == "Categorical":
        return dist.Categorical(probs=torch.tensor(noise.params[0], dtype=dtype, device=device))
    return getattr(dist, noise.dist)(*(torch.tensor(float(v), dtype=dtype, device=device) for v in noise.params))


@dataclass(frozen=True)
class Inversion:
    """``noise = solution(x, parents, other noises)`` with ``log |d noise / d x|``, x the node's value."""

    noise: Noise
    solution: sp.Expr
    log_abs_jacobian: sp.Expr


def invert(node: str, expr: sp.Expr, noises: tuple[Noise, ...]) -> Inversion | None:
    """Solve ``node = expr`` for one of its noise terms (the last one that has a unique real solution).

    Returns ``None`` when the mechanism is not invertible in any of its noise terms (e.g. a threshold).
    """
    x = sp.Symbol(node, real=True)
    for noise in reversed(noises):
        u = sp.Symbol(noise.name, real=True)
        if expr.has(sp.Piecewise, sp.Min, sp.Max):
            return None
        try:
            solutions = sp.solve(sp.Eq(x, expr), u, dict=False)
        except (NotImplementedError, ValueError, TypeError):
            continue
        if len(solutions) != 1:
            continue
        solution = sp.simplify(solutions[0])
        if solution.has(sp.I) or solution.has(x) is False:
            continue
        derivative = sp.simplify(sp.diff(solution, x))
        if derivative == 0:
            continue
        return Inversion(noise, solution, sp.log(sp.Abs(derivative)))
    return None
