"""Safe parsing of structural-equation text into sympy, without evaluating any code.

The text is parsed by Python's ``ast`` module (which only builds a syntax tree) and translated node by node
into sympy; only numbers, names, arithmetic, comparisons and calls of whitelisted functions and distributions
are accepted. Attribute access, subscripts, lambdas, dunder names, strings, keyword tricks and unknown
functions are rejected with an :class:`EquationError` that names the node and the offending token.

Each distribution call in a node's equation is one exogenous noise term of that node, named ``U_<node>``,
``U_<node>_2``, ...; a distribution whose parameters depend on parents is reparameterised through a standard
noise (``Normal(m, s) = m + s * U``, ``Bernoulli(p) = where(U < p, 1, 0)`` with ``U ~ Uniform(0, 1)``, ...),
so that every node is a deterministic function of its parents and its noise. What each distribution takes and
how it is reparameterised is declared once, in :mod:`probrep.causal.distributions`.
"""

from __future__ import annotations

import ast
import difflib
import math
from dataclasses import dataclass

import sympy as sp

from probrep.causal.distributions import FAMILIES, Noise


class EquationError(ValueError):
    """An equation that cannot be accepted; the message names the node and the offending part."""


class sigmoid(sp.Function):  # noqa: N801 - the name users write
    """Logistic function 1 / (1 + exp(-x)), kept as one symbol so backends can use their stable version."""

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sp.exp(-x))


class softplus(sp.Function):  # noqa: N801
    """log(1 + exp(x)), kept as one symbol so backends can use their overflow-safe version."""

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))


#: functions an equation may call, by the name users write
FUNCTIONS = {
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "abs": sp.Abs,
    "sin": sp.sin,
    "cos": sp.cos,
    "tanh": sp.tanh,
    "sigmoid": sigmoid,
    "softplus": softplus,
    "min": sp.Min,
    "max": sp.Max,
}

_CONSTANTS = {"pi": sp.pi}  # not E: a node called E is common
_RESERVED = set(FUNCTIONS) | set(FAMILIES) | {"where"} | set(_CONSTANTS)

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_COMPARE = {ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge, ast.Eq: sp.Eq, ast.NotEq: sp.Ne}


@dataclass(frozen=True)
class ParsedEquation:
    """A node's mechanism: sympy expression over parent symbols and noise symbols."""

    node: str
    expr: sp.Expr
    parents: tuple[str, ...]
    noises: tuple[Noise, ...]
    text: str


def check_node_name(name: object) -> str:
    """A node name must be a plain identifier, not reserved, not private/dunder, not a noise name."""
    if not isinstance(name, str) or not name.isidentifier():
        raise EquationError(f"node name {name!r} is not a valid identifier")
    if name.startswith("_"):
        raise EquationError(f"node name {name!r}: names starting with '_' are not allowed")
    if name in _RESERVED:
        raise EquationError(f"node name {name!r} is reserved (a function, distribution or constant)")
    if name.startswith("U_"):
        raise EquationError(f"node name {name!r}: names starting with 'U_' are reserved for noise terms")
    return name


class _Translator:
    def __init__(self, node: str, text: str, noise_prefix: str | None = None):
        self.node, self.text = node, text
        self.prefix = noise_prefix or f"U_{node}"
        self.noises: list[Noise] = []
        self.parents: list[str] = []

    def fail(self, what: str, tree: ast.AST | None = None) -> EquationError:
        where = ""
        if tree is not None and hasattr(tree, "col_offset"):
            segment = ast.get_source_segment(self.text, tree)
            where = f" at {segment!r}" if segment else ""
        return EquationError(f"equation of node {self.node!r}: {what}{where}")

    # -- noise
    def new_noise(self, dist: str, params) -> sp.Symbol:
        name = self.prefix if not self.noises else f"{self.prefix}_{len(self.noises) + 1}"
        self.noises.append(Noise(name, dist, params))
        return sp.Symbol(name, real=True)

    def constant(self, expr: sp.Expr, tree: ast.AST) -> float | None:
        if expr.free_symbols:
            return None
        value = float(expr)
        if not math.isfinite(value):
            raise self.fail(f"distribution parameter is not finite ({value})", tree)
        return value

    def distribution(self, name: str, args: list[ast.AST], tree: ast.Call) -> sp.Expr:
        family = FAMILIES[name]
        count, names = len(family.params), family.param_names
        if family.defaults and len(args) == count - len(family.defaults):
            args = [*args, *(ast.Constant(v) for v in family.defaults)]
        if len(args) != count:
            raise self.fail(f"{name} takes {count} argument(s) ({', '.join(names)}), got {len(args)}", tree)
        exprs, consts = [], []
        for param, arg in zip(family.params, args):
            if param.vector:
                values = self.constant_list(name, arg, tree)
                exprs.append(None)
                consts.append(values)
            else:
                exprs.append(self.visit(arg))
                consts.append(self.constant(exprs[-1], arg))
        if all(c is not None for c in consts):
            problem = family.violation(consts)
            if problem:
                raise self.fail(f"{name}: {problem}", tree)
            return self.new_noise(name, tuple(consts))
        # parameters depend on parents: reparameterise through a standard noise, where the family has one
        if family.standardise is None:
            raise self.fail(f"the parameters of {name} must be constants (they may not depend on parents)", tree)
        for param, const in zip(family.params, consts):
            if param.name in family.constant and const is None:
                raise self.fail(f"{name}'s {param.name} must be a constant", tree)
        return family.standardise(exprs, self.new_noise)

    def constant_list(self, name: str, arg: ast.AST, tree: ast.AST) -> tuple[float, ...]:
        """A list parameter (Categorical's probabilities): a non-empty list of constants."""
        if not isinstance(arg, (ast.List, ast.Tuple)) or not arg.elts:
            raise self.fail(f"{name} takes a list of probabilities, e.g. {name}([0.2, 0.8])", tree)
        values = [self.constant(self.visit(e), e) for e in arg.elts]
        if any(v is None for v in values):
            raise self.fail(f"{name} probabilities must be constants (they may not depend on parents)", tree)
        return tuple(values)

    # -- expressions
    def visit(self, tree: ast.AST) -> sp.Expr:
        if isinstance(tree, ast.Expression):
            return self.visit(tree.body)
        if isinstance(tree, ast.Constant):
            value = tree.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.fail(f"only numbers are allowed as constants, got {type(value).__name__}", tree)
            if not math.isfinite(value):
                raise self.fail(f"constant {value} is not finite", tree)
            return sp.Integer(value) if isinstance(value, int) else sp.Float(value)
        if isinstance(tree, ast.Name):
            return self.name(tree)
        if isinstance(tree, ast.BinOp):
            op = _BINOPS.get(type(tree.op))
            if op is None:
                raise self.fail(f"operator {type(tree.op).__name__} is not allowed", tree)
            return op(self.visit(tree.left), self.visit(tree.right))
        if isinstance(tree, ast.UnaryOp):
            if isinstance(tree.op, ast.USub):
                return -self.visit(tree.operand)
            if isinstance(tree.op, ast.UAdd):
                return self.visit(tree.operand)
            if isinstance(tree.op, ast.Not):
                return sp.Not(self.visit(tree.operand))
            raise self.fail(f"operator {type(tree.op).__name__} is not allowed", tree)
        if isinstance(tree, ast.Compare):
            if len(tree.ops) != 1:
                raise self.fail("chained comparisons are not allowed; use 'and'", tree)
            op = _COMPARE.get(type(tree.ops[0]))
            if op is None:
                raise self.fail(f"comparison {type(tree.ops[0]).__name__} is not allowed", tree)
            return op(self.visit(tree.left), self.visit(tree.comparators[0]))
        if isinstance(tree, ast.BoolOp):
            parts = [self.visit(v) for v in tree.values]
            return sp.And(*parts) if isinstance(tree.op, ast.And) else sp.Or(*parts)
        if isinstance(tree, ast.Call):
            return self.call(tree)
        raise self.fail(f"{type(tree).__name__} is not allowed", tree)

    def name(self, tree: ast.Name) -> sp.Expr:
        ident = tree.id
        if ident.startswith("_"):
            raise self.fail(f"name {ident!r} is not allowed (private or dunder)", tree)
        if ident in _CONSTANTS:
            return _CONSTANTS[ident]
        if ident in FUNCTIONS or ident in FAMILIES or ident == "where":
            raise self.fail(f"{ident!r} is a function; call it", tree)
        if ident.startswith("U_"):
            raise self.fail(f"name {ident!r}: noise terms are written as distributions, e.g. Normal(0, 1)", tree)
        if ident == self.node:
            raise self.fail("a node cannot be its own parent (self-loop)", tree)
        if ident not in self.parents:
            self.parents.append(ident)
        return sp.Symbol(ident, real=True)

    def call(self, tree: ast.Call) -> sp.Expr:
        if not isinstance(tree.func, ast.Name):
            raise self.fail("only plain function names can be called (no attributes or expressions)", tree.func)
        fname = tree.func.id
        if fname.startswith("_"):
            raise self.fail(f"name {fname!r} is not allowed (private or dunder)", tree.func)
        if tree.keywords:
            raise self.fail(f"keyword arguments are not allowed in {fname}(...); pass them by position", tree)
        if any(isinstance(a, ast.Starred) for a in tree.args):
            raise self.fail("star-arguments are not allowed", tree)
        if fname in FAMILIES:
            return self.distribution(fname, list(tree.args), tree)
        if fname == "where":
            if len(tree.args) != 3:
                raise self.fail("where takes 3 arguments: where(condition, if_true, if_false)", tree)
            cond, a, b = (self.visit(x) for x in tree.args)
            return sp.Piecewise((a, cond), (b, True))
        if fname not in FUNCTIONS:
            known = [*sorted(FUNCTIONS), "where"]
            near = difflib.get_close_matches(fname, [*known, *FAMILIES], n=1, cutoff=0.6)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise self.fail(
                f"unknown function {fname!r}; {hint}functions: {', '.join(known)}; "
                f"distributions: {', '.join(sorted(FAMILIES))}",
                tree,
            )
        args = [self.visit(a) for a in tree.args]
        if fname in ("min", "max"):
            if len(args) < 2:
                raise self.fail(f"{fname} takes at least 2 arguments", tree)
        elif len(args) != 1:
            raise self.fail(f"{fname} takes 1 argument, got {len(args)}", tree)
        return FUNCTIONS[fname](*args)


def parse_equation(node: str, text: str | sp.Expr, noise_prefix: str | None = None) -> ParsedEquation:
    """Parse one node's equation (text, or a sympy expression, printed and re-parsed) without running code."""
    check_node_name(node)
    if isinstance(text, sp.Basic):
        text = sp.sstr(text)
    if not isinstance(text, str):
        raise EquationError(f"equation of node {node!r} must be text or a sympy expression, got {type(text).__name__}")
    if not text.strip():
        raise EquationError(f"equation of node {node!r} is empty")
    if len(text) > 10_000:
        raise EquationError(f"equation of node {node!r} is too long ({len(text)} characters)")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise EquationError(f"equation of node {node!r} is not a valid expression: {exc.msg} in {text!r}") from None
    translator = _Translator(node, text.strip(), noise_prefix)
    # name the most telling token first: private/dunder names anywhere, then any attribute access
    for sub in ast.walk(tree):
        if isinstance(sub, ast.Name) and sub.id.startswith("_"):
            raise translator.fail(f"name {sub.id!r} is not allowed (private or dunder)", sub)
    for sub in ast.walk(tree):
        if isinstance(sub, ast.Attribute):
            raise translator.fail(f"attribute access '.{sub.attr}' is not allowed", sub)
    expr = translator.visit(tree)
    if isinstance(expr, sp.logic.boolalg.Boolean) and not isinstance(expr, sp.Expr):
        raise EquationError(f"equation of node {node!r} is a condition, not a value; wrap it in where(...)")
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise EquationError(f"equation of node {node!r} has a non-finite constant (it simplifies to infinity or NaN)")
    return ParsedEquation(node, expr, tuple(translator.parents), tuple(translator.noises), text.strip())
