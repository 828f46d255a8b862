"""Exact inversion of a mechanism in one of its noise terms: ``noise = g^-1(x, parents, other noise)`` and the
log Jacobian of that map, solved symbolically once per node. Conditioning a program on a node (the change of
variables ``log p_U(g^-1(x)) + log |d g^-1 / dx|``) and exact abduction of counterfactuals both rest on it."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from probrep.causal.distributions import Noise


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
