"""How evidence on nodes constrains the noise: the plan that conditioning and abduction share.

Each observed node gets one :class:`Constraint`:
- a node with noise of its own, invertible in one of them (``Y = f(X) + U``, any ``f``): that noise is a function
  of the node's value and its parents, with the Jacobian of the change of variables;
- a deterministic node (``Y = 2*X``): its mechanism is expanded through its unobserved ancestors down to their
  noise (``Y = 2*U_X``) and solved for one of those noise terms, so the evidence pins an ancestor (``U_X = Y/2``)
  instead of being dropped;
- a discrete outcome through a uniform noise (``Bernoulli(sigmoid(X))``): the noise is confined to the interval
  that gives the observed value, whose width is the outcome's probability.
A node whose evidence cannot be expressed in any of these ways is refused, naming it, never ignored.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import sympy as sp

from probrep.causal.inversion import Inversion, Region, invert, region


@dataclass(frozen=True)
class Constraint:
    """What the evidence on ``node`` fixes: the noise term ``how.noise`` of node ``owner`` (``node`` itself, or an
    ancestor for a deterministic node), by inversion or by confinement to a region."""

    node: str
    owner: str
    how: Inversion | Region

    @property
    def noise(self) -> str:
        return self.how.noise.name


class EvidenceError(ValueError):
    """Evidence that the model cannot take into account: what it is and why."""


def _expanded(scm, name: str, observed) -> sp.Expr:
    """``name``'s mechanism with every unobserved parent replaced by its own mechanism, recursively: a function
    of noise terms and observed nodes only."""
    expr = scm.node(name).expr
    for parent in reversed(scm.nodes):  # reverse topological order: each substitution introduces only ancestors
        symbol = sp.Symbol(parent, real=True)
        if parent not in observed and expr.has(symbol):
            parent_expr = scm.node(parent).expr
            if parent_expr is None:
                raise EvidenceError(
                    f"evidence on deterministic node {name!r} would have to be traced through the callable "
                    f"mechanism of {parent!r}; observe a node with noise of its own instead"
                )
            expr = expr.subs(symbol, parent_expr)
    return expr


def plan(scm, evidence: Collection[str]) -> dict[str, Constraint]:
    """The constraint of every observed node that has one (a deterministic node whose value is already implied
    by the other evidence has none: :func:`implied` checks it). Raises :class:`EvidenceError` for evidence
    that can be neither inverted nor confined."""
    key = ("evidence_plan", tuple(sorted(evidence)))
    if key in scm._cache:
        return scm._cache[key]
    observed = set(evidence)
    out: dict[str, Constraint] = {}
    for name in scm.nodes:  # nodes with noise of their own first: they never compete for noise
        node = scm.node(name)
        if name not in observed or not node.noises:
            continue
        how = scm.inversion(name)
        if how is None and node.symbolic:
            how = region(name, node.expr, node.noises)
        if how is None:
            what = f"its mechanism {node.text!r}" if node.symbolic else "its callable mechanism"
            raise EvidenceError(
                f"cannot condition on node {name!r}: {what} is not invertible in any of its noise terms, nor "
                "a discrete outcome of a uniform noise (as Bernoulli(p) is)"
            )
        out[name] = Constraint(name, name, how)
    owners = {u.name: n for n in scm.nodes for u in scm.node(n).noises}
    for name in scm.nodes:
        node = scm.node(name)
        if name not in observed or node.noises:
            continue
        if not node.symbolic:
            raise EvidenceError(f"cannot condition on deterministic node {name!r}: its mechanism is a callable")
        expr = _expanded(scm, name, observed)
        taken = {c.noise for c in out.values()}
        candidates = [scm.noises[u] for u in owners if u not in taken and expr.has(sp.Symbol(u, real=True))]
        if not candidates:
            continue  # implied by the other evidence: checked, not used
        found = None
        for noise in reversed(candidates):  # the noise closest to the node first
            how = invert(name, expr, (noise,))
            if how is not None and not any(how.solution.has(sp.Symbol(u, real=True)) for u in taken):
                found = Constraint(name, owners[noise.name], how)
                break
        if found is None:
            raise EvidenceError(
                f"cannot condition on deterministic node {name!r}: {node.text!r}, written in its unobserved "
                f"ancestors' noise as {expr}, cannot be solved for any of {[u.name for u in candidates]}"
            )
        out[name] = found
    taken = {c.noise for c in out.values()}
    for c in out.values():  # a solution may use sampled noise, never noise another constraint solves
        if c.owner != c.node and isinstance(c.how, Inversion):
            clash = [u for u in taken - {c.noise} if c.how.solution.has(sp.Symbol(u, real=True))]
            if clash:
                raise EvidenceError(f"the evidence on {c.node!r} and on the nodes that fix {clash} are entangled")
    scm._cache[key] = out
    return out


def implied_nodes(scm, evidence: Collection[str]) -> list[str]:
    """Observed deterministic nodes whose value the other evidence already determines (no constraint)."""
    constraints = plan(scm, evidence)
    return [n for n in evidence if n not in constraints]
