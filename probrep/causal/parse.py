"""Safe parsing of structural-equation text into sympy, without evaluating any code.

The text is parsed by Python's ``ast`` module (which only builds a syntax tree) and translated node by node
into sympy; only numbers, names, arithmetic, comparisons and calls of whitelisted functions and distributions
are accepted. Attribute access, subscripts, lambdas, dunder names, strings, keyword tricks and unknown
functions are rejected with an :class:`EquationError` that names the node and the offending token.

Hostile input is bounded: a long sum or product is split at its top-level operators and built in one sympy call
(thousands of parents parse in linear time, without recursing once per term), other nesting deeper than
:data:`MAX_DEPTH` is refused, and each constant is valued in floats as it is formed, so a complex, infinite or
out-of-range one (``9**9**9``, which sympy would compute exactly) is refused before it reaches sympy or a backend.
Node names are NFKC-normalised, as Python's parser normalises the names inside equations.

Each distribution call in a node's equation is one exogenous noise term of that node, named ``U_<node>``,
``U_<node>_2``, ...; a distribution whose parameters depend on parents is reparameterised through a standard
noise (``Normal(m, s) = m + s * U``, ``Bernoulli(p) = where(U < p, 1, 0)`` with ``U ~ Uniform(0, 1)``, ...),
so that every node is a deterministic function of its parents and its noise. What each distribution takes and
how it is reparameterised is declared once, in :mod:`probrep.causal.distributions`. Named functions an SCM holds
(learned networks, :mod:`probrep.causal.networks`) are called like the built-in ones, inside the SCM's own parsing.
"""

from __future__ import annotations

import ast
import difflib
import io
import keyword
import math
import operator
import sys
import tokenize
import unicodedata
from dataclasses import dataclass

import sympy as sp

from probrep.causal.distributions import FAMILIES, Noise
from probrep.causal.functions import named_function, sigmoid, softplus


class EquationError(ValueError):
    """An equation that cannot be accepted; the message names the node and the offending part."""


#: functions an equation may call, by the name users write
FUNCTIONS = {
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs, "sin": sp.sin, "cos": sp.cos, "tanh": sp.tanh,
    "sigmoid": sigmoid, "softplus": softplus, "min": sp.Min, "max": sp.Max,
}  # fmt: skip

_CONSTANTS = {"pi": sp.pi}  # not E: a node called E is common
_RESERVED = set(FUNCTIONS) | set(FAMILIES) | {"where"} | set(_CONSTANTS)

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}  # fmt: skip
_COMPARE = {ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge, ast.Eq: sp.Eq, ast.NotEq: sp.Ne}

#: nesting allowed once long sums and products are split; translating recurses a few frames per level
MAX_DEPTH = 100
#: a constant power beyond 2**(+-4096) is no float, and sympy would compute it exactly (for ever, for 9**9**9)
_MAX_POWER_BITS = 4096
#: top-level tokens that bind at least as tightly as + and -: splitting a sum at + and - (and a term at * and /)
#: keeps its meaning only where there are no others (comparisons, keywords...)
_TIGHTER = {"+", "-", "*", "/", "**", "~", ".", "(", ")", "[", "]", "{", "}"}
_OPEN, _CLOSE = {"(", "[", "{"}, {")", "]", "}"}


class _BadConstant(ValueError):
    """A constant that is not a finite real float; the message says what it is instead."""


def _pow(base: float, exponent: float) -> float:
    if base == 0 and exponent < 0:
        raise _BadConstant("divides by zero")
    if base != 0 and abs(exponent * math.log2(abs(base))) > _MAX_POWER_BITS:
        raise _BadConstant(f"is beyond 2**(+-{_MAX_POWER_BITS}), out of the floating-point range")
    try:
        value = base**exponent
    except OverflowError:
        raise _BadConstant("overflows a float") from None
    if isinstance(value, complex):
        raise _BadConstant("is complex (a negative number to a fractional power)")
    return value


def _log(x: float) -> float:
    if x < 0:
        raise _BadConstant("is complex (the log of a negative number)")
    return math.log(x) if x > 0 else -math.inf


#: float versions of the functions (by sympy function), to value a constant before sympy is asked to evaluate it
_FLOAT_FUNCTIONS = {
    sp.exp: math.exp, sp.log: _log, sp.sin: math.sin, sp.cos: math.cos, sp.tanh: math.tanh, sp.Abs: abs,
    sigmoid: lambda x: 0.5 * (1.0 + math.tanh(0.5 * x)),
    softplus: lambda x: max(x, 0.0) + math.log1p(math.exp(-abs(x))),
}  # fmt: skip


def constant_value(expr: sp.Expr, memo: dict) -> float:
    """The float value of a constant (symbol-free) expression, computed bottom-up in floats (``memo`` holds the
    values found so far); raises :class:`_BadConstant` where it is complex, infinite, NaN or out of range."""
    if expr in memo:
        return memo[expr]
    try:
        if expr.is_Number or expr.is_NumberSymbol:
            value = float(expr)
        elif expr is sp.I:
            raise _BadConstant("is complex (the square root of a negative number)")
        elif isinstance(expr, (sp.Add, sp.Mul, sp.Min, sp.Max)):
            values = [constant_value(a, memo) for a in expr.args]
            value = {sp.Add: math.fsum, sp.Mul: math.prod, sp.Min: min, sp.Max: max}[expr.func](values)
        elif isinstance(expr, sp.Pow):
            value = _pow(*(constant_value(a, memo) for a in expr.args))
        elif expr.func in _FLOAT_FUNCTIONS:
            value = _FLOAT_FUNCTIONS[expr.func](constant_value(expr.args[0], memo))
        else:  # a form sympy made of the above; its parts are finite, so evaluating it is cheap
            number = complex(sp.N(expr, 17))
            if number.imag:
                raise _BadConstant("is complex")
            value = number.real
    except OverflowError:
        raise _BadConstant("overflows a float") from None
    except (TypeError, ValueError) as exc:  # sympy could not make a number of it, or math found it undefined
        raise exc if isinstance(exc, _BadConstant) else _BadConstant(f"cannot be evaluated ({exc})") from None
    if not math.isfinite(value):
        raise _BadConstant(f"is not finite ({value})")
    memo[expr] = value
    return value


def normal_name(name: object) -> object:
    """``name`` NFKC-normalised like the names in equations (``ｘ`` is ``x``); a non-string is left to refuse."""
    return unicodedata.normalize("NFKC", name) if isinstance(name, str) else name


@dataclass(frozen=True)
class ParsedEquation:
    """A node's mechanism: sympy expression over parent symbols and noise symbols."""

    node: str
    expr: sp.Expr
    parents: tuple[str, ...]
    noises: tuple[Noise, ...]
    text: str


def check_node_name(name: object) -> str:
    """A plain identifier, not reserved, private or a noise name; returned NFKC-normalised, as equations reach it."""
    name = normal_name(name)
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
        self.parents: dict[str, None] = {}  # an ordered set: thousands of parents stay linear
        self.values: dict[sp.Expr, float] = {}  # the float value of every constant formed so far

    def fail(self, what: str, tree: ast.AST | None = None) -> EquationError:
        where = ""
        if tree is not None and hasattr(tree, "col_offset"):
            segment = ast.get_source_segment(self.text, tree)
            shown = segment if len(segment or "") <= 80 else f"{segment[:77]}..."
            where = f" at {shown!r}" if segment else ""
        return EquationError(f"equation of node {self.node!r}: {what}{where}")

    # -- noise
    def new_noise(self, dist: str, params) -> sp.Symbol:
        name = self.prefix if not self.noises else f"{self.prefix}_{len(self.noises) + 1}"
        self.noises.append(Noise(name, dist, params))
        return sp.Symbol(name, real=True)

    def constant(self, expr: sp.Expr, tree: ast.AST) -> float | None:
        return None if expr.free_symbols else self.value(expr, tree)

    def value(self, expr: sp.Expr, tree: ast.AST | None) -> float:
        """The float value of a constant, or an error naming it (every constant is checked as it is formed)."""
        try:
            return constant_value(expr, self.values)
        except _BadConstant as exc:
            shown = "" if tree is not None else f" {sp.sstr(expr)[:80]}"
            raise self.fail(f"the constant{shown} {exc}", tree) from None

    def number(self, expr: sp.Basic, tree: ast.AST, condition: bool = False) -> sp.Basic:
        if isinstance(expr, sp.Expr) == condition:  # sympy would raise a bare TypeError, or compile nonsense
            what = "a number is not a condition; compare it, e.g. x > 0" if condition else "a condition is not a number"
            raise self.fail(f"{what}; write where(condition, 1, 0)" if not condition else what, tree)
        return expr

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
                exprs.append(self.number(self.visit(arg), arg))
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
    def sum_of_products(self, terms: list[tuple[str, list[tuple[str, ast.Expression, str]]]]) -> sp.Basic:
        """The sympy expression of :func:`_syntax`'s split, each sum and product built in one sympy call."""
        if len(terms) == 1 and len(terms[0][1]) == 1:  # nothing was split: the tree is the whole equation
            [(_, [(_, tree, self.text)])] = terms
            return self.visit(tree)
        summands = []
        for sign, factors in terms:
            parts = []
            for op, tree, self.text in factors:
                part = self.number(self.visit(tree), tree)
                parts.append(self.reciprocal(part, tree) if op == "/" else part)
            term = sp.Mul(*parts)
            summands.append(-term if sign == "-" else term)
        return sp.Add(*summands)

    def reciprocal(self, expr: sp.Expr, tree: ast.AST) -> sp.Expr:
        if not expr.free_symbols:  # 1/0 would be sympy's zoo
            self.value(sp.Pow(expr, -1, evaluate=False), tree)
        return 1 / expr

    def visit(self, tree: ast.AST) -> sp.Basic:
        expr = self.translate(tree)
        if isinstance(expr, sp.Expr) and not expr.free_symbols:
            self.value(expr, tree)  # refuse a complex, infinite or out-of-range constant where it is formed
        return expr

    def translate(self, tree: ast.AST) -> sp.Basic:
        if isinstance(tree, ast.Expression):
            return self.visit(tree.body)
        if isinstance(tree, ast.Constant):
            value = tree.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.fail(f"only numbers are allowed as constants, got {type(value).__name__}", tree)
            if not abs(value) <= sys.float_info.max:  # inf, nan, or an integer literal beyond the float range
                raise self.fail("constant is not finite (beyond the floating-point range)", tree)
            return sp.Integer(value) if isinstance(value, int) else sp.Float(value)
        if isinstance(tree, ast.Name):
            return self.name(tree)
        if isinstance(tree, ast.BinOp):
            op = _BINOPS.get(type(tree.op))
            if op is None:
                raise self.fail(f"operator {type(tree.op).__name__} is not allowed", tree)
            left = self.number(self.visit(tree.left), tree.left)
            right = self.number(self.visit(tree.right), tree.right)
            if isinstance(tree.op, ast.Div):
                return left * self.reciprocal(right, tree)
            if isinstance(tree.op, ast.Pow) and not (left.free_symbols or right.free_symbols):
                self.value(sp.Pow(left, right, evaluate=False), tree)  # in floats, before sympy computes it exactly
            return op(left, right)
        if isinstance(tree, ast.UnaryOp):
            if isinstance(tree.op, ast.USub):
                return -self.number(self.visit(tree.operand), tree.operand)
            if isinstance(tree.op, ast.UAdd):
                return self.number(self.visit(tree.operand), tree.operand)
            if isinstance(tree.op, ast.Not):
                return sp.Not(self.number(self.visit(tree.operand), tree.operand, True))
            raise self.fail(f"operator {type(tree.op).__name__} is not allowed", tree)
        if isinstance(tree, ast.Compare):
            if len(tree.ops) != 1:
                raise self.fail("chained comparisons are not allowed; use 'and'", tree)
            op = _COMPARE.get(type(tree.ops[0]))
            if op is None:
                raise self.fail(f"comparison {type(tree.ops[0]).__name__} is not allowed", tree)
            left, right = tree.left, tree.comparators[0]
            return op(self.number(self.visit(left), left), self.number(self.visit(right), right))
        if isinstance(tree, ast.BoolOp):
            parts = [self.number(self.visit(v), v, True) for v in tree.values]
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
        self.parents.setdefault(ident)
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
            cond = self.number(self.visit(tree.args[0]), tree.args[0], True)
            a, b = (self.number(self.visit(x), x) for x in tree.args[1:])
            return sp.Piecewise((a, cond), (b, True))
        if fname not in FUNCTIONS and named_function(fname) is not None:  # a network the SCM holds (functions.py)
            args = [self.number(self.visit(a), a) for a in tree.args]
            return named_function(fname).apply(args, self.noises, lambda what: self.fail(what, tree))
        if fname not in FUNCTIONS:
            known = [*sorted(FUNCTIONS), "where"]
            near = difflib.get_close_matches(fname, [*known, *FAMILIES], n=1, cutoff=0.6)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise self.fail(
                f"unknown function {fname!r}; {hint}functions: {', '.join(known)}; "
                f"distributions: {', '.join(sorted(FAMILIES))}",
                tree,
            )
        args = [self.number(self.visit(a), a) for a in tree.args]
        if fname in ("min", "max"):
            if len(args) < 2:
                raise self.fail(f"{fname} takes at least 2 arguments", tree)
        elif len(args) != 1:
            raise self.fail(f"{fname} takes 1 argument, got {len(args)}", tree)
        if not any(a.free_symbols for a in args):  # in floats first: sympy would evaluate exp(1e300) exactly
            self.value(FUNCTIONS[fname](*args, evaluate=False), tree)
        return FUNCTIONS[fname](*args)


def _split(tokens: list[tokenize.TokenInfo], ops: set[str]) -> list[tuple[str, list]] | None:
    """``tokens`` split at the binary operators ``ops`` outside brackets: ``[(operator before, tokens)]``, or
    None where a token there binds more loosely than ``ops`` (a comparison, a keyword...)."""
    parts: list[tuple[str, list]] = [("", [])]
    depth, prev = 0, None
    for tok in tokens:
        text, is_op = tok.string, tok.type == tokenize.OP
        depth += ((text in _OPEN) - (text in _CLOSE)) if is_op else 0
        if depth == 0 and ((tok.type == tokenize.NAME and keyword.iskeyword(text)) or (is_op and text not in _TIGHTER)):
            return None
        after_operand = prev is not None and (
            prev.type in (tokenize.NAME, tokenize.NUMBER, tokenize.STRING) or prev.string in _CLOSE
        )
        if depth == 0 and is_op and text in ops and after_operand:  # binary, not a sign
            parts.append((text, []))
        else:
            parts[-1][1].append(tok)
        prev = tok
    return parts


def _sum_of_products(text: str) -> list[tuple[str, list[tuple[str, str]]]] | None:
    """``text`` (one line) as ``[(sign, [(operator, factor text)])]`` split at its top-level + - and * /, or
    None where it cannot be split without changing its meaning (the whole text is then parsed as one)."""
    if any(c in text for c in "\n\r\\"):
        return None
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT}
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type not in skip]
    except (tokenize.TokenError, SyntaxError):
        return None
    terms = _split(tokens, {"+", "-"})
    if terms is None or any(t.type == tokenize.ERRORTOKEN or t.start[0] != 1 for t in tokens):
        return None
    out = []
    for sign, term in terms:
        factors = _split(term, {"*", "/"}) or [("", term)]
        if not all(part for _, part in factors):
            return None
        out.append((sign or "+", [(op or "*", text[part[0].start[1] : part[-1].end[1]]) for op, part in factors]))
    return out


def _too_deep(tree: ast.AST) -> bool:
    """Whether ``tree`` nests deeper than :data:`MAX_DEPTH` (walked without recursion, unlike the translation)."""
    stack = [(tree, 1)]
    while stack:
        sub, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(sub))
    return False


def _syntax(node: str, text: str) -> list[tuple[str, list[tuple[str, ast.Expression, str]]]]:
    """The syntax trees of ``text``: one per factor of each term of a long sum, or one for the whole text."""
    split = _sum_of_products(text)
    terms = None
    if split is not None and (len(split) > 1 or len(split[0][1]) > 1):
        try:
            terms = [(sign, [(op, ast.parse(src, mode="eval"), src) for op, src in factors]) for sign, factors in split]
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            terms = None  # parsing the whole text names the error as Python sees it
    if terms is None:
        try:
            terms = [("+", [("*", ast.parse(text, mode="eval"), text)])]
        except (SyntaxError, ValueError) as exc:  # ValueError: null bytes
            why = exc.msg if isinstance(exc, SyntaxError) else exc
            raise EquationError(f"equation of node {node!r} is not a valid expression: {why} in {text!r}") from None
        except (RecursionError, MemoryError):  # Python's parser gives up on deep nesting
            raise EquationError(f"equation of node {node!r} is nested too deeply (over {MAX_DEPTH} levels)") from None
    deep = [src for _, factors in terms for _, tree, src in factors if _too_deep(tree)]
    if deep:
        raise EquationError(
            f"equation of node {node!r} is nested too deeply (over {MAX_DEPTH} levels): {deep[0][:80]!r}"
        )
    return terms


def parse_equation(node: str, text: str | sp.Expr, noise_prefix: str | None = None) -> ParsedEquation:
    """Parse one node's equation (text, or a sympy expression, printed and re-parsed) without running code."""
    node = check_node_name(node)
    if isinstance(text, sp.Basic):
        text = sp.sstr(text)
    if not isinstance(text, str):
        raise EquationError(f"equation of node {node!r} must be text or a sympy expression, got {type(text).__name__}")
    if not text.strip():
        raise EquationError(f"equation of node {node!r} is empty")
    if len(text) > 10_000:
        raise EquationError(f"equation of node {node!r} is too long ({len(text)} characters)")
    text = text.strip()
    terms = _syntax(node, text)
    translator = _Translator(node, text, noise_prefix)
    # name the most telling token first: private/dunder names anywhere, then any attribute access
    trees = [(tree, src) for _, factors in terms for _, tree, src in factors]
    for tree, translator.text in trees:
        for sub in ast.walk(tree):
            if isinstance(sub, ast.Name) and sub.id.startswith("_"):
                raise translator.fail(f"name {sub.id!r} is not allowed (private or dunder)", sub)
    for tree, translator.text in trees:
        for sub in ast.walk(tree):
            if isinstance(sub, ast.Attribute):
                raise translator.fail(f"attribute access '.{sub.attr}' is not allowed", sub)
    expr = translator.sum_of_products(terms)
    if isinstance(expr, sp.logic.boolalg.Boolean) and not isinstance(expr, sp.Expr):
        raise EquationError(f"equation of node {node!r} is a condition, not a value; wrap it in where(...)")
    translator.text = text
    stack = [expr]  # sympy gathers constants across the tree (x*1e308*10 is 1e309*x): check each it formed
    while stack:
        sub = stack.pop()
        if isinstance(sub, sp.Expr) and not sub.free_symbols:
            translator.value(sub, None)
        else:
            stack.extend(sub.args)
    return ParsedEquation(node, expr, tuple(translator.parents), tuple(translator.noises), text)
