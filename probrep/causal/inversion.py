"""Exact inversion of a mechanism in one of its noise terms: ``noise = g^-1(x, parents, other noise)`` and the
log Jacobian of that map, solved symbolically once per node. Conditioning a program on a node (the change of
variables ``log p_U(g^-1(x)) + log |d g^-1 / dx|``) and exact abduction of counterfactuals both rest on it.

A discrete outcome written through a uniform noise (``Bernoulli(p) = where(U < p, 1, 0)``) cannot be inverted:
its value confines the noise to an interval instead (:class:`Region`), whose width is the outcome's probability."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from probrep.causal.distributions import Noise
from probrep.causal.functions import sigmoid, softplus


@dataclass(frozen=True)
class Inversion:
    """``noise = solution(x, parents, other noises)`` with ``log |d noise / d x|``, x the node's value."""

    noise: Noise
    solution: sp.Expr
    log_abs_jacobian: sp.Expr


@dataclass(frozen=True)
class Region:
    """Observing the node confines the uniform ``noise`` to ``[lower, upper)`` (functions of the parents): the
    outcome's probability is ``upper - lower`` and, given it, the noise is uniform on the interval.
    ``log_width`` is that probability's logarithm written to stay finite in float32 (``log sigmoid(z) =
    -softplus(-z)``, ``log(1 - sigmoid(z)) = -softplus(z)``) for a two-outcome node, valid at its two
    ``outcomes`` only; ``None`` otherwise."""

    noise: Noise
    lower: sp.Expr
    upper: sp.Expr
    log_width: sp.Expr | None = None
    outcomes: tuple[float, ...] = ()


def _additive(x: sp.Symbol, expr: sp.Expr, u: sp.Symbol) -> Inversion | None:
    """``expr = rest + a * u`` with neither ``rest`` nor ``a`` depending on ``u`` (``rest`` may be any function
    of the parents, thresholds and maxima included): ``u = (x - rest) / a``."""
    a = sp.diff(expr, u)
    if a.has(u) or a.is_zero or a.has(sp.Piecewise, sp.Min, sp.Max):
        return None
    rest = sp.expand(expr - a * u)
    if rest.has(u):
        return None
    return sp.simplify((x - rest) / a), sp.log(sp.Abs(1 / a))


def invert(node: str, expr: sp.Expr, noises: tuple[Noise, ...]) -> Inversion | None:
    """Solve ``node = expr`` for one of its noise terms (the last one that has a unique real solution).

    Returns ``None`` when the mechanism is not invertible in any of its noise terms (e.g. a threshold).
    """
    x = sp.Symbol(node, real=True)
    for noise in reversed(noises):
        u = sp.Symbol(noise.name, real=True)
        if not expr.has(u):
            continue
        additive = _additive(x, expr, u)
        if additive is not None:
            return Inversion(noise, *additive)
        if expr.has(sp.Piecewise, sp.Min, sp.Max):
            continue
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


def region(node: str, expr: sp.Expr, noises: tuple[Noise, ...]) -> Region | None:
    """The interval of a Uniform(0, 1) noise term on which the piecewise-constant ``expr`` (pieces ``u < t_k``, the
    last ``True``, values distinct numbers) takes the node's value ``x``: bounds that are piecewise in ``x``, an
    empty interval for a value no piece takes. ``None`` when ``expr`` is not of that form."""
    if not isinstance(expr, sp.Piecewise):
        return None
    x = sp.Symbol(node, real=True)
    for noise in noises:
        u = sp.Symbol(noise.name, real=True)
        if noise.dist != "Uniform" or tuple(noise.params) != (0.0, 1.0) or not expr.has(u):
            continue
        thresholds, lower, upper, values = [], [], [], set()
        for piece_value, cond in expr.args:
            if not piece_value.is_number or float(piece_value) in values:
                return None
            if cond is sp.true:
                bound = sp.Integer(1)
            elif isinstance(cond, sp.StrictLessThan) and cond.lhs == u and not cond.rhs.has(u):
                bound = cond.rhs
            else:
                return None
            values.add(float(piece_value))
            lower.append((sp.Max(0, *thresholds), sp.Eq(x, piece_value)))
            upper.append((sp.Max(sp.Min(1, bound), *lower[-1][:1]), sp.Eq(x, piece_value)))
            thresholds.append(bound)
        logs = _binary_log_width(x, expr) if len(expr.args) == 2 else None
        lo, hi = sp.Piecewise(*lower, (0, True)), sp.Piecewise(*upper, (0, True))
        return Region(noise, lo, hi, logs, tuple(sorted(values)) if logs is not None else ())
    return None


def _binary_log_width(x: sp.Symbol, expr: sp.Piecewise) -> sp.Expr | None:
    """``log P(x)`` of a two-outcome node ``Piecewise((a, u < p), (b, True))`` when ``p`` is a logistic
    ``sigmoid(z)``: ``-softplus(-z)`` at ``a``, ``-softplus(z)`` at ``b``. (``1 - sigmoid(z)`` is 0 in float32 once
    z > 17, so ``log(upper - lower)`` would be -inf where the model gives a finite likelihood.)"""
    (a, cond), (b, _) = expr.args
    p = cond.rhs
    if not isinstance(p, sigmoid):
        return None
    z = p.args[0]
    return sp.Piecewise((-softplus(-z), sp.Eq(x, a)), (-softplus(z), True))
