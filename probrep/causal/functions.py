"""The functions an equation may call beyond sympy's own: the logistic and softplus, and named functions that an SCM
holds (learned networks, :class:`probrep.causal.networks.Network`).

A named function reaches the parser through :func:`named_functions`, a context that lasts while an SCM parses its
equations (``SCM.from_dict`` and ``SCM.from_graph`` open it); outside one, a name is a named function of no SCM and
the parser refuses it as an unknown function. The context is local to the thread or task that opened it and is
restored on exit, so nothing leaks to other SCMs or other callers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import sympy as sp


class sigmoid(sp.Function):  # noqa: N801 - the name users write
    """Logistic function 1 / (1 + exp(-x)), kept as one symbol so backends can use their stable version."""

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0]) * (1 - sigmoid(self.args[0]))

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sp.exp(-x))


class softplus(sp.Function):  # noqa: N801
    """log(1 + exp(x)), kept as one symbol so backends can use their overflow-safe version."""

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))

    def _eval_evalf(self, prec):  # mpmath has no softplus: sympy could not compare max(softplus(1), 2)
        return self.rewrite(sp.exp)._eval_evalf(prec)


_NAMED: ContextVar[dict[str, Any] | None] = ContextVar("probrep_named_functions", default=None)


@contextmanager
def named_functions(functions: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """Make ``functions`` (objects with ``name`` and ``apply(args, noises, fail)``) callable by name in the equations
    parsed inside the ``with`` block, beside those of any enclosing block."""
    table = dict(_NAMED.get() or {})
    for fn in functions:
        if fn.name in table and table[fn.name] != fn:
            raise ValueError(f"two different functions are named {fn.name!r}")
        table[fn.name] = fn
    token = _NAMED.set(table)
    try:
        yield table
    finally:
        _NAMED.reset(token)


def named_function(name: str) -> Any | None:
    """The named function ``name`` of the SCM being parsed, or None."""
    return (_NAMED.get() or {}).get(name)
