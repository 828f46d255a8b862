"""Structural causal models: a networkx DAG whose nodes carry sympy mechanisms of their parents and noise.

    scm = SCM.from_equations({"Z": "Normal(0, 1)", "X": "2*Z + Normal(0, 0.5)", "Y": "X - Z + Normal(0, 1)"})
    scm.sample(1000, seed=0)                      # dict node -> array [1000], topological order
    scm.do({"X": 1.0}).sample(1000)               # a new SCM with X's mechanism replaced
    scm.counterfactual({"Z": 0.1, "X": 1.0, "Y": 0.3}, do={"X": 0.0}, n=100)
    scm.gaussian()                                # exact (mean, cov) of a linear-Gaussian SCM

Equations are parsed safely (:mod:`probrep.causal.parse`) and compiled once per array library
(:mod:`probrep.causal.compile`). Programs for NumPyro and Pyro (:mod:`probrep.causal.programs`) have one sample
site per noise term and per node, so ``handlers.do`` / ``poutine.do`` and any inference apply to them.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import sympy as sp

from probrep import _checks
from probrep.causal.compile import compile_expr
from probrep.causal.distributions import Noise
from probrep.causal.inversion import Inversion, invert
from probrep.causal.networks import functions_entry, reading_functions
from probrep.causal.parameters import parameters_from
from probrep.causal.parse import EquationError, ParsedEquation, check_node_name, normal_name, parse_equation

FORMAT = 1
BACKENDS = ("numpyro", "pyro", "numpy")


@dataclass(frozen=True, init=False)
class Mechanism:
    """A mechanism given as a Python callable ``fn(*parent_values, *noise_values)`` (e.g. a neural network).

    ``parents`` names the parent nodes in the order ``fn`` takes them; ``noise`` lists distribution texts
    (``"Normal(0, 1)"``), one per noise argument. ``arrays`` says which arrays ``fn`` accepts ("torch" for
    the Pyro backend, "jax" for NumPyro, "numpy"). Symbolic features (``gaussian()``, exact abduction, JSON)
    do not apply to such nodes and say so. ``backend=`` is the deprecated name of ``arrays`` (the sampling
    ``backend`` of :meth:`SCM.sample` is the program, "numpyro" or "pyro", not the array library).
    """

    fn: Callable[..., Any]
    parents: Sequence[str] = ()
    noise: Sequence[str] = ("Normal(0, 1)",)
    arrays: str = "torch"

    def __init__(
        self,
        fn: Callable[..., Any],
        parents: Sequence[str] = (),
        noise: Sequence[str] = ("Normal(0, 1)",),
        arrays: str = "torch",
        *,
        backend: str | None = None,
    ):
        if backend is not None:
            warnings.warn("Mechanism(backend=...) is deprecated: use arrays=", DeprecationWarning, stacklevel=2)
            arrays = backend
        for name, value in (("fn", fn), ("parents", parents), ("noise", noise), ("arrays", arrays)):
            object.__setattr__(self, name, value)


@dataclass(frozen=True)
class Node:
    """One node: its mechanism (symbolic or callable), parents and noise terms."""

    name: str
    parents: tuple[str, ...]
    noises: tuple[Noise, ...]
    expr: sp.Expr | None = None  # None for callable mechanisms
    text: str | None = None
    mechanism: Mechanism | None = None

    @property
    def symbolic(self) -> bool:
        return self.expr is not None


def _node_from(name: str, spec: Any, noise_prefix: str | None = None) -> Node:
    if isinstance(spec, Mechanism):
        name = check_node_name(name)
        noises = []
        for i, text in enumerate(spec.noise):
            parsed = parse_equation(name, text, noise_prefix)
            if parsed.parents or len(parsed.noises) != 1 or parsed.expr != sp.Symbol(parsed.noises[0].name, real=True):
                raise EquationError(f"node {name!r}: Mechanism noise {text!r} must be a single constant distribution")
            suffix = "" if i == 0 else f"_{i + 1}"
            noises.append(replace(parsed.noises[0], name=f"{noise_prefix or 'U_' + name}{suffix}"))
        return Node(name, tuple(normal_name(p) for p in spec.parents), tuple(noises), mechanism=spec)
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        if isinstance(spec, float) and not math.isfinite(spec):  # JSON's Infinity and NaN, float("inf")
            raise EquationError(f"equation of node {name!r} is the non-finite number {spec}")
        try:
            spec = repr(float(spec))
        except OverflowError:  # an int beyond the float range: the parser refuses its text, naming the node
            spec = repr(spec)
    parsed: ParsedEquation = parse_equation(name, spec, noise_prefix)
    return Node(name, parsed.parents, parsed.noises, expr=parsed.expr, text=parsed.text)


class SCM:
    """A structural causal model over ``graph`` (a networkx DiGraph whose nodes carry ``equation``)."""

    def __init__(self, graph: nx.DiGraph):
        if not isinstance(graph, nx.DiGraph):
            raise TypeError(f"SCM(graph) needs a networkx DiGraph, got {type(graph).__name__}")
        specs = {}
        for name, attrs in graph.nodes(data=True):
            if "equation" not in attrs and "node" not in attrs:
                raise EquationError(f"node {name!r} has no 'equation' attribute")
            specs[name] = attrs.get("node") or attrs["equation"]
        edges = {(normal_name(u), normal_name(v)) for u, v in graph.edges()}
        self._parameters = {}
        self._build([(n, s) for n, s in specs.items()], declared_edges=edges)

    @classmethod
    def from_equations(
        cls, equations: Mapping[str, Any] | Sequence[tuple[str, Any]], parameters: Mapping[str, str] | None = None
    ) -> SCM:
        """Build from ``{node: equation}`` (text, sympy expression, number or :class:`Mechanism`).

        ``parameters`` names unknown constants the equations use, each with its prior (``{"a": "Normal(0, 10)",
        "s": "HalfNormal(5)"}``): a parameter is neither a node nor a noise term, has one value shared by every
        row, and is learned from data by :meth:`fit`. Unfitted, sampling draws it once from its prior.
        """
        items = list(equations.items()) if isinstance(equations, Mapping) else list(equations)
        scm = cls.__new__(cls)
        scm._parameters = parameters_from(parameters or {}, items, _node_from)
        scm._build(items, declared_edges=None)
        return scm

    @classmethod
    def from_graph(cls, graph: Any, data: Any, mechanisms: str | Mapping[str, str] = "linear", **kwargs: Any) -> SCM:
        """Learn a mechanism per node of ``graph`` (a DiGraph or edge list) from ``data`` (a mapping or DataFrame of
        every node): "linear", "mlp", "flow", "classifier", "mlp_classifier", "auto" or ``{node: family}`` (see
        :mod:`probrep.causal.learn`); ``scm.fit_report`` gives each node's family, scores and fit."""
        from probrep.causal.learn import from_graph

        return from_graph(cls, graph, data, mechanisms, **kwargs)

    def _build(self, items: list[tuple[str, Any]], declared_edges: set | None) -> None:
        if not items:
            raise EquationError("an SCM needs at least one node")
        nodes: dict[str, Node] = {}
        given: dict[str, Any] = {}  # each node's name as written, to name both sides of a collision
        for item in items:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise TypeError(f"expected (node, equation) pairs, got {item!r}")
            written, spec = item
            # equations reach a node by its NFKC form (Python's parser normalises identifiers), so 'ｘ' is 'x';
            # checked before it is hashed, so a JSON list or object as a name is an EquationError, not a TypeError
            name = check_node_name(written)
            if name in nodes:
                if given[name] != written:
                    raise EquationError(
                        f"node names {given[name]!r} and {written!r} are the same name {name!r} once "
                        "Unicode-normalised (NFKC), as Python reads the names in equations: rename one"
                    )
                raise EquationError(f"duplicate node {name!r}")
            given[name] = written
            nodes[name] = spec if isinstance(spec, Node) else _node_from(name, spec)
        order = {name: i for i, name in enumerate(nodes)}
        graph = nx.DiGraph()
        for name, node in nodes.items():
            graph.add_node(name, equation=node.text if node.symbolic else node.mechanism, node=node)
        for name, node in nodes.items():
            for parent in node.parents:
                if parent in self._parameters:
                    continue
                if parent not in nodes:
                    raise EquationError(
                        f"equation of node {name!r} uses unknown name {parent!r} (nodes: {', '.join(nodes)})"
                    )
                graph.add_edge(parent, name)
        if declared_edges is not None:
            extra = declared_edges - set(graph.edges())
            if extra:
                raise EquationError(f"graph edges {sorted(extra)} are not used by the equations of their targets")
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle:
            path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
            raise EquationError(f"the equations form a cycle: {path}")
        topo = list(nx.lexicographical_topological_sort(graph, key=order.__getitem__))
        self.graph = graph
        self._nodes = {name: nodes[name] for name in topo}
        self._cache = {}

    # ------------------------------------------------------------------------------------------ description
    @property
    def nodes(self) -> list[str]:
        """Node names in topological order."""
        return list(self._nodes)

    @property
    def equations(self) -> dict[str, str]:
        """Equation text of every symbolic node (callables shown by name)."""
        return {n: (v.text if v.symbolic else f"<callable {getattr(v.mechanism.fn, '__name__', 'fn')}>")
                for n, v in self._nodes.items()}  # fmt: skip

    @property
    def noises(self) -> dict[str, Noise]:
        """Every noise term by name, in topological order of their nodes."""
        return {u.name: u for node in self._nodes.values() for u in node.noises}

    @property
    def parameters(self) -> dict[str, str]:
        """Each unknown parameter's prior, as written (empty for an SCM without parameters)."""
        return {name: node.text for name, node in self._parameters.items()}

    def with_parameters(self, values: Mapping[str, float]) -> SCM:
        """The SCM with every parameter fixed to a number: an ordinary SCM (exact abduction, JSON, ...)."""
        from probrep.causal.parameters import with_parameters

        return with_parameters(self, values)

    def _require_fixed_parameters(self, what: str) -> None:
        if self._parameters:
            raise ValueError(f"{what}() needs the parameters {sorted(self._parameters)} fixed: fit the SCM "
                             "(scm.fit(data)) or give values (scm.with_parameters({...}))")  # fmt: skip

    def node(self, name: str) -> Node:
        self._check_names([name], "node")
        return self._nodes[name]

    def __repr__(self) -> str:
        body = "; ".join(f"{n} := {e}" for n, e in self.equations.items())
        return f"SCM({body})"

    def _check_names(self, names, what: str) -> None:
        unknown = [n for n in names if n not in self._nodes]
        if unknown:
            raise ValueError(f"unknown {what}(s) {unknown}; the nodes are {self.nodes}")

    # ------------------------------------------------------------------------------------------- compiling
    def compiled(self, arrays: str) -> dict[str, Callable[[Mapping[str, Any]], Any]]:
        """Each node's mechanism as ``f(columns) -> values`` on "numpy", "jax" or "torch" arrays (compiled once)."""
        key = ("compiled", arrays)
        if key not in self._cache:
            fns = {}
            for name, node in self._nodes.items():
                if node.symbolic:
                    fns[name] = compile_expr(node.expr, arrays)
                else:
                    fns[name] = _callable_mechanism(node)
            self._cache[key] = fns
        return self._cache[key]

    def inversion(self, name: str) -> Inversion | None:
        """How to recover one noise term of ``name`` from its value (symbolic nodes only), or None."""
        key = ("inversion", name)
        if key not in self._cache:
            node = self.node(name)
            self._cache[key] = invert(name, node.expr, node.noises) if node.symbolic else None
        return self._cache[key]

    # -------------------------------------------------------------------------------------------- sampling
    def sample(self, n: int, seed: int = 0, backend: str = "numpyro", device: Any = None) -> dict[str, Any]:
        """Draw ``n`` rows by ancestral sampling: ``{node: array [n]}`` in topological order.

        ``backend="numpyro"`` (JAX arrays, jit-compiled once per ``n``), ``"pyro"`` (torch tensors on
        ``device``) or ``"numpy"``.
        """
        n, seed = _checks.integer(n, "n"), _checks.seed(seed)
        if backend == "numpyro":
            from probrep.causal.programs import numpyro_sampler

            return numpyro_sampler(self, n)(seed)
        if backend == "pyro":
            from probrep.causal.programs import pyro_sample

            return pyro_sample(self, n, seed, device)
        if backend == "numpy":
            return self.propagate({}, n, np.random.default_rng(seed))
        raise ValueError(f"unknown backend {backend!r}: expected one of {BACKENDS}")

    def propagate(self, noise_values: Mapping[str, Any], n: int, rng: np.random.Generator | None = None) -> dict:
        """Node values (numpy) from given noise values; noise terms not given are drawn from ``rng``."""
        rng = rng if rng is not None else np.random.default_rng(0)
        env: dict[str, Any] = {}
        fns = self.compiled("numpy")
        out = {}
        for name, node in self._parameters.items():  # unfitted parameters: one draw from the prior for all rows
            for u in node.noises:
                env[u.name] = u.draw((1,), rng)[0]
            env[name] = float(compile_expr(node.expr, "numpy")(env))
        for name, node in self._nodes.items():
            for u in node.noises:
                value = noise_values.get(u.name)
                env[u.name] = u.draw((n,), rng) if value is None else np.broadcast_to(value, (n,)).astype(float)
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                value = np.broadcast_to(np.asarray(fns[name](env), dtype=float), (n,))
            env[name] = out[name] = value
        return out

    def to_numpyro(self) -> Callable:
        """A NumPyro model ``model(n)`` with a site per noise term and per node (nodes as Delta sites)."""
        from probrep.causal.programs import make_program

        return make_program(self, "numpyro")

    def to_pyro(self, device: Any = None) -> Callable:
        """A Pyro model ``model(n)``, the same program as :meth:`to_numpyro` for torch."""
        from probrep.causal.programs import make_program

        return make_program(self, "pyro", device=device)

    def condition(self, data: Mapping[str, Any], backend: str = "numpyro", device: Any = None) -> Callable:
        """The program conditioned on observed nodes ``data`` (arrays [m]), ready for MCMC or SVI.

        Each observed node contributes ``log p_U(g^-1(x)) + log|d g^-1 / dx|`` for the noise term its
        mechanism is solved for; its other noise terms (and all noise of unobserved nodes) stay latent.
        """
        from probrep.causal.programs import make_program

        self._check_names(list(data), "observed node")
        return make_program(self, backend, observed=data, device=device)

    # ----------------------------------------------------------------------------------------- interventions
    def do(self, interventions: Mapping[str, Any]) -> SCM:
        """A new SCM with mechanisms replaced.

        Values: a number (hard), text using the node's own name (a shift, e.g. ``"X + 1"``: a function of the
        node's natural value), or text with a distribution and no parents (stochastic, e.g.
        ``"Normal(3, 1)"``). Hard and stochastic interventions cut the node's incoming edges.
        """
        if not isinstance(interventions, Mapping) or not interventions:
            raise ValueError("do() takes a non-empty mapping {node: value or equation}")
        self._check_names(list(interventions), "intervened node")
        items = []
        for name, node in self._nodes.items():
            if name not in interventions:
                items.append((name, node))
                continue
            spec = interventions[name]
            if isinstance(spec, (int, float, np.number)) and not isinstance(spec, bool):
                value = _checks.real(spec, f"the value of do({name}=...)")
                items.append((name, Node(name, (), (), expr=sp.Float(value), text=repr(value))))
                continue
            if not isinstance(spec, str):
                raise TypeError(f"do({name}=...): expected a number or equation text, got {type(spec).__name__}")
            items.append((name, self._intervened_node(name, node, spec)))
        scm = SCM.__new__(SCM)
        scm._parameters = self._parameters
        scm._build(items, declared_edges=None)
        return scm

    def _intervened_node(self, name: str, node: Node, text: str) -> Node:
        # the node's own name means its natural value; new noise is named U_<node>_do (a fresh exogenous term)
        parsed = parse_equation(f"{name}_do", text, noise_prefix=f"U_{name}_do")
        if f"{name}_do" in parsed.parents:
            raise EquationError(f"do({name}={text!r}): write the node's natural value as {name!r}")
        uses_self = name in parsed.parents
        if uses_self:
            if not node.symbolic:
                raise EquationError(f"do({name}={text!r}): shift interventions need a symbolic mechanism")
            expr = parsed.expr.subs(sp.Symbol(name, real=True), node.expr)
            parents = tuple(dict.fromkeys([p for p in parsed.parents if p != name] + list(node.parents)))
            return Node(name, parents, node.noises + parsed.noises, expr=expr, text=sp.sstr(expr))
        return Node(name, parsed.parents, parsed.noises, expr=parsed.expr, text=text)

    # ------------------------------------------------------------------------------- learning and effects
    def fit(self, data: Any, method: str = "nuts", **kwargs: Any):
        """Infer the parameters from observed columns ``data``: a :class:`~probrep.causal.bayesian.FittedSCM`
        (see :func:`probrep.causal.bayesian.fit` for the methods and options)."""
        from probrep.causal.bayesian import fit

        return fit(self, data, method, **kwargs)

    def effect(self, treatment: str, outcome: str, values=(0.0, 1.0), n: int = 10_000, seed: int = 0):
        """``E[outcome | do(treatment = values[1])] - E[outcome | do(treatment = values[0])]`` by sampling (the
        same noise in both arms); on a fitted SCM, :meth:`FittedSCM.effect` adds the parameters' uncertainty."""
        from probrep.causal.bayesian import effect_of

        self._require_fixed_parameters("effect")
        return effect_of(lambda i: self, [0], self, treatment, outcome, values, n, seed, 0.9)

    def adjustment_set(self, treatment: str, outcome: str, observed=None) -> set[str]:
        """A minimal backdoor adjustment set from the graph (:mod:`probrep.causal.identification`)."""
        from probrep.causal.identification import adjustment_set

        return adjustment_set(self.graph, treatment, outcome, observed)

    # ---------------------------------------------------------------------------------------- counterfactuals
    def counterfactual(
        self,
        evidence: Mapping[str, float],
        do: Mapping[str, Any],
        n: int = 1000,
        seed: int = 0,
        num_warmup: int = 1000,
        progress: bool = False,
    ) -> dict[str, dict[str, np.ndarray]]:
        """Twin-world counterfactuals: abduction of the noise given ``evidence``, action ``do``, prediction.

        Noise terms are recovered exactly where the observed mechanisms are invertible in them and the rest of
        the noise is pinned down; otherwise their posterior is sampled with NumPyro's NUTS (``n`` draws after
        ``num_warmup``). Returns ``{"factual": {node: [n]}, "counterfactual": {node: [n]}, "noise": {term: [n]}}``
        (the abducted noise draws shared by both worlds).
        """
        from probrep.causal.counterfactual import abduct

        self._require_fixed_parameters("counterfactual")
        n, seed = _checks.integer(n, "n"), _checks.seed(seed)
        num_warmup = _checks.integer(num_warmup, "num_warmup", 0)
        twin = self.do(do)
        noise = abduct(self, evidence, n=n, seed=seed, num_warmup=num_warmup, progress=progress)
        rng = np.random.default_rng(seed + 1)
        factual = self.propagate(noise, n, rng)
        counterfactual = twin.propagate(noise, n, rng)
        return {"factual": factual, "counterfactual": counterfactual, "noise": noise}

    # -------------------------------------------------------------------------------------- linear Gaussian
    def gaussian(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact ``(mean, cov)`` over ``self.nodes`` of a linear-Gaussian SCM (derived symbolically)."""
        from probrep.causal.gaussian import linear_gaussian

        self._require_fixed_parameters("gaussian")

        return linear_gaussian(self).moments()

    # ----------------------------------------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: ``{"format": 1, "nodes": [{"name", "equation"}, ...]}`` (and "functions")."""
        callables = [n for n, v in self._nodes.items() if not v.symbolic]
        if callables:
            raise ValueError(f"nodes {callables} have callable mechanisms, which cannot be written as JSON")
        out = {"format": FORMAT, "nodes": [{"name": n, "equation": v.text} for n, v in self._nodes.items()]}
        if self._parameters:
            out["parameters"] = [{"name": n, "prior": prior} for n, prior in self.parameters.items()]
        out.update(functions_entry(self))  # learned networks the equations call, as plain numbers
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SCM:
        """Build from :meth:`to_dict`'s description (``format`` must be the integer 1, not ``true`` or ``1.0``)."""
        version = data.get("format") if isinstance(data, Mapping) else None
        if type(version) is not int or version != FORMAT or not isinstance(data.get("nodes"), list):
            raise ValueError(f"not an SCM description (expected {{'format': {FORMAT}, 'nodes': [...]}})")
        items = []
        for i, entry in enumerate(data["nodes"]):
            if not isinstance(entry, Mapping) or set(entry) != {"name", "equation"}:
                raise ValueError(f"nodes[{i}] must be {{'name': ..., 'equation': ...}}, got {repr(entry)[:200]}")
            items.append((entry["name"], entry["equation"]))
        priors = data.get("parameters", [])
        if not isinstance(priors, list) or not all(isinstance(e, Mapping) and set(e) == {"name", "prior"}
                                                   for e in priors):  # fmt: skip
            raise ValueError("'parameters' must be a list of {'name': ..., 'prior': ...}")
        with reading_functions(data):  # the networks named in "functions" become callable in the equations
            return cls.from_equations(items, parameters={e["name"]: e["prior"] for e in priors} or None)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON description atomically."""
        from probrep.io.json_file import write_json

        return write_json(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SCM:
        """Read a JSON file written by :meth:`save` (or by hand). JSON can carry no code."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"SCM file {path} does not exist") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"SCM file {path} is not UTF-8 text: byte {exc.object[exc.start]:#04x} at offset "
                             f"{exc.start} ({exc.reason})") from None  # fmt: skip
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"SCM file {path} is not valid JSON: {exc}") from None
        except RecursionError:  # json recurses once per bracket: 100,000 of them exhaust the stack
            raise ValueError(f"SCM file {path} is not an SCM description: its JSON is nested too deeply") from None
        try:
            return cls.from_dict(data)
        except ValueError as exc:  # EquationError included: say which file the equation came from
            raise type(exc)(f"SCM file {path}: {exc}") from None


def _callable_mechanism(node: Node) -> Callable[[Mapping[str, Any]], Any]:
    fn, parents, noises = node.mechanism.fn, node.parents, [u.name for u in node.noises]
    return lambda env: fn(*(env[p] for p in parents), *(env[u] for u in noises))
