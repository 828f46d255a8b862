"""Compile sympy mechanisms into functions of arrays for numpy, JAX and torch.

One tree walk builds a closure per expression node, looking operations up in a table of the array library
(``arrays``: "numpy", "jax" or "torch"; not to be confused with the sampling ``backend`` of :class:`SCM`, which
is "numpyro", "pyro" or "numpy"); the walk runs once per equation, and the closures then run on whole columns of
samples (and trace once under ``jax.jit``). The same expression therefore means the same thing on every array
library, Piecewise included. Constant subexpressions are folded to floats at compile time, so every library
sees the same value and none is asked to apply its functions to a Python number.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import sympy as sp

from probrep.causal.functions import sigmoid, softplus
from probrep.causal.parse import constant_value

Columns = Mapping[str, Any]


def _numpy_ops():
    import numpy as np
    from scipy.special import expit

    return SimpleNamespace(
        lib=np, where=np.where, minimum=np.minimum, maximum=np.maximum, sigmoid=expit,
        softplus=lambda x: np.logaddexp(0.0, x), abs=np.abs, logical_and=np.logical_and,
        logical_or=np.logical_or, logical_not=np.logical_not, asarray=lambda v, like: np.asarray(v, dtype=float),
    )  # fmt: skip


def _jax_ops():
    import jax
    import jax.numpy as jnp

    return SimpleNamespace(
        lib=jnp, where=jnp.where, minimum=jnp.minimum, maximum=jnp.maximum, sigmoid=jax.nn.sigmoid,
        softplus=jax.nn.softplus, abs=jnp.abs, logical_and=jnp.logical_and, logical_or=jnp.logical_or,
        logical_not=jnp.logical_not, asarray=lambda v, like: jnp.asarray(v, dtype=jnp.result_type(float)),
    )  # fmt: skip


def _torch_ops():
    import torch
    import torch.nn.functional as F

    def as_tensor(v, like):
        device = like.device if torch.is_tensor(like) else None
        dtype = like.dtype if torch.is_tensor(like) and like.is_floating_point() else torch.get_default_dtype()
        return torch.as_tensor(v, dtype=dtype, device=device)

    def where(c, a, b):
        like = next((t for t in (a, b, c) if torch.is_tensor(t)), None)
        return torch.where(as_tensor(c, like).bool() if not torch.is_tensor(c) else c, as_tensor(a, like),
                           as_tensor(b, like))  # fmt: skip

    return SimpleNamespace(
        lib=torch, where=where, minimum=torch.minimum, maximum=torch.maximum, sigmoid=torch.sigmoid,
        softplus=F.softplus, abs=torch.abs, logical_and=torch.logical_and, logical_or=torch.logical_or,
        logical_not=torch.logical_not, asarray=as_tensor,
    )  # fmt: skip


ARRAY_LIBRARIES: dict[str, Callable[[], SimpleNamespace]] = {"numpy": _numpy_ops, "jax": _jax_ops, "torch": _torch_ops}
# one table per array library, built on first use (so that numpy-only use never imports JAX or torch); it holds at
# most len(ARRAY_LIBRARIES) entries and only library functions, so sharing it across SCMs and threads is harmless
_OPS_CACHE: dict[str, SimpleNamespace] = {}


def array_ops(arrays: str) -> SimpleNamespace:
    """The operations table of the array library ``arrays`` ("numpy", "jax" or "torch")."""
    if arrays not in ARRAY_LIBRARIES:
        raise ValueError(f"unknown array library {arrays!r}: expected one of {sorted(ARRAY_LIBRARIES)}")
    if arrays not in _OPS_CACHE:
        _OPS_CACHE[arrays] = ARRAY_LIBRARIES[arrays]()
    return _OPS_CACHE[arrays]


def compile_expr(expr: sp.Basic, arrays: str) -> Callable[[Columns], Any]:
    """``expr`` -> ``f(columns)`` where ``columns`` maps symbol names to arrays of the library ``arrays``."""
    ops = array_ops(arrays)
    lib = ops.lib
    constants: dict[sp.Expr, float] = {}

    def unary(fn, arg):
        return lambda env: fn(arg(env))

    def build(e: sp.Basic) -> Callable[[Columns], Any]:
        if isinstance(e, sp.Symbol):
            name = e.name
            return lambda env: env[name]
        if e is sp.true or e is sp.false:
            value = bool(e)
            return lambda env: value
        if getattr(e.func, "network", None) is not None:  # a named learned function: its network computes it
            return e.func.network.compile(arrays, e.func.column, [build(a) for a in e.args])
        if isinstance(e, sp.Expr) and not e.free_symbols:
            # a constant (sqrt(2), exp(2), sigmoid(1)) is folded to a Python float here, once: torch's functions
            # take tensors only, and one value for every library keeps the backends in agreement
            try:
                value = constant_value(e, constants)  # sigmoid and softplus included, which float() cannot value
            except ValueError:  # not a finite real: left to the operations below, which say what they cannot compile
                pass
            else:
                return lambda env: value
        if isinstance(e, sp.Piecewise):
            pieces = [(build(value), build(cond)) for value, cond in e.args]

            def piecewise(env):
                value, _ = pieces[-1]
                out = value(env)
                for val, cond in reversed(pieces[:-1]):
                    out = ops.where(cond(env), val(env), out)
                return out

            return piecewise
        args = [build(a) for a in e.args]
        if isinstance(e, sp.Add):

            def add(env, args=args):
                total = args[0](env)
                for a in args[1:]:
                    total = total + a(env)
                return total

            return add
        if isinstance(e, sp.Mul):

            def mul(env, args=args):
                total = args[0](env)
                for a in args[1:]:
                    total = total * a(env)
                return total

            return mul
        if isinstance(e, sp.Pow):
            base, exponent = args
            if e.exp == sp.Rational(1, 2):
                return unary(lib.sqrt, base)
            if e.exp == -1:
                return lambda env: 1.0 / base(env)
            return lambda env: base(env) ** exponent(env)
        simple = {sp.exp: lib.exp, sp.log: lib.log, sp.sin: lib.sin, sp.cos: lib.cos, sp.tanh: lib.tanh,
                  sp.Abs: ops.abs, sigmoid: ops.sigmoid, softplus: ops.softplus}  # fmt: skip
        if e.func in simple:
            return unary(simple[e.func], args[0])
        if isinstance(e, (sp.Min, sp.Max)):
            pair = ops.minimum if isinstance(e, sp.Min) else ops.maximum

            def fold(env, args=args):
                first = args[0](env)
                out = first
                for a in args[1:]:
                    out = pair(ops.asarray(out, first), ops.asarray(a(env), first))
                return out

            return fold
        relational = {sp.StrictLessThan: operator.lt, sp.LessThan: operator.le, sp.StrictGreaterThan: operator.gt,
                      sp.GreaterThan: operator.ge, sp.Equality: operator.eq, sp.Unequality: operator.ne}  # fmt: skip
        if e.func in relational:
            compare = relational[e.func]
            left, right = args
            return lambda env: _compare(ops, left(env), right(env), compare)
        if isinstance(e, sp.And):
            return lambda env: _fold_logic(ops.logical_and, [a(env) for a in args])
        if isinstance(e, sp.Or):
            return lambda env: _fold_logic(ops.logical_or, [a(env) for a in args])
        if isinstance(e, sp.Not):
            return unary(ops.logical_not, args[0])
        raise ValueError(f"cannot compile {e.func.__name__} in {expr} for {arrays} arrays")

    return build(expr)


def _compare(ops, a, b, compare):
    # the operator, not a's dunder method: a numpy array beside a JAX array (a program conditioned on numpy noise)
    # answers NotImplemented there, and only the operator goes on to the JAX array's reflected method
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return compare(float(a), float(b))
    if isinstance(a, (int, float)):
        a = ops.asarray(a, b)
    return compare(a, b)


def _fold_logic(fn, values):
    out = values[0]
    for v in values[1:]:
        out = fn(out, v)
    return out
