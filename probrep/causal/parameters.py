"""Unknown parameters of an SCM: constants the equations use, each with a prior, one value shared by every row.

A parameter is stored like a node made of its own noise only (its prior reparameterised through a standard noise,
``Normal(0, 10) = 10 * U_a``), so that every backend samples it with the machinery nodes use, and a fitted
parameter's posterior lives on the standard scale, which suits NUTS (a non-centred parameterisation).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace

import sympy as sp

from probrep import _checks
from probrep.causal.parse import EquationError, check_node_name, normal_name


def parameters_from(priors: Mapping[str, str], items: list, node_from: Callable) -> dict:
    """Each parameter as a node of its own noise only (its prior reparameterised through a standard noise)."""
    if not isinstance(priors, Mapping):
        raise TypeError(f"parameters must be a mapping {{name: prior}}, got {type(priors).__name__}")
    nodes = {normal_name(name) for name, _ in items if isinstance(name, str)}
    out = {}
    for written, prior in priors.items():
        name = check_node_name(written)
        if name in nodes:
            raise EquationError(f"parameter {name!r} is also a node: a parameter is a constant to learn")
        if not isinstance(prior, str):
            raise EquationError(f"parameter {name!r}: its prior must be text such as 'Normal(0, 10)'")
        node = node_from(name, prior, noise_prefix=f"U_{name}")
        if node.parents or not node.noises or any(u.family.discrete for u in node.noises):
            raise EquationError(f"parameter {name!r}: its prior {prior!r} must be one continuous distribution "
                                "with constant arguments")  # fmt: skip
        out[name] = node
    return out


def with_parameters(scm, values: Mapping[str, float]):
    """``scm`` with every parameter fixed to a number: the equations' text gets the numbers in place of the names
    (so the result writes to JSON and reads back), the expressions get them substituted."""
    missing = sorted(set(scm._parameters) - set(values))
    unknown = sorted(set(values) - set(scm._parameters))
    if missing or unknown:
        raise ValueError(f"with_parameters: missing {missing}, unknown {unknown}; parameters are "
                         f"{sorted(scm._parameters)}")  # fmt: skip
    subs = {sp.Symbol(k, real=True): sp.Float(_checks.real(v, f"parameter {k!r}")) for k, v in values.items()}
    items = []
    for name, node in scm._nodes.items():
        if not node.symbolic or not node.expr.free_symbols & set(subs):
            items.append((name, node))
            continue
        text = node.text
        for k, v in values.items():
            text = re.sub(rf"(?<![\w.]){re.escape(k)}(?!\w)", f"({float(v)!r})", text)
        parents = tuple(p for p in node.parents if p not in values)
        items.append((name, replace(node, parents=parents, expr=node.expr.subs(subs), text=text)))
    return type(scm).from_equations(items)
