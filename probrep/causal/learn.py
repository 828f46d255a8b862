"""Mechanisms learned from a graph and data: ``SCM.from_graph(graph, data, mechanisms=...)``.

Each node gets a mechanism of one family (:mod:`probrep.causal.learners`), fitted to its parents' columns:

    "linear"          X = c + b . parents + U,           U ~ Normal(0, sigma)   (least squares)
    "mlp"             X = f(parents) + U,                U ~ Normal(0, sigma)   (f an MLP, mean squared error)
    "flow"            X = loc(parents) + scale(parents) * U,  U ~ Normal(0, 1)  (an affine conditional flow)
    "classifier"      the category whose cumulative-softmax interval holds U ~ Uniform(0, 1) (linear logits)
    "mlp_classifier"  the same with MLP logits

``mechanisms`` is one name for every node, ``"auto"``, or ``{node: name}`` (nodes left out get "auto"). A root
node's continuous mechanism is its mean plus Gaussian noise whichever continuous family is named (they coincide
without parents); with one name for every node, "mlp" and "flow" leave discrete nodes (integer values, at most
``max_classes`` of them) to "auto". ``"auto"`` fits every family that applies (continuous: linear, mlp and flow;
discrete: the two classifiers) and keeps the simplest whose mean held-out log-likelihood per row is within two
standard errors (of the paired per-row differences) of the best: a network is chosen only where it predicts
held-out rows measurably better. ``scm.fit_report[node]`` gives the family, every family's score, the held-out
log-likelihood per row and the fit's statistics (sigma and R^2 for additive noise, epochs for networks).

The result is an ordinary SCM: its equations call the fitted networks by name (:mod:`probrep.causal.networks`), so
``do``, ``sample`` and ``counterfactual`` (exact abduction: ``U = X - f``, ``U = (X - loc) / scale``, an interval of
U for a category), the Pyro and NumPyro programs and ``save``/``load`` work as for written equations; the file is
JSON, its weights plain numbers. A linear SCM's equations hold only numbers, so ``gaussian()`` applies to it too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np

from probrep import _checks
from probrep.causal.functions import named_functions
from probrep.causal.learners import FAMILIES, Fit, Options, Task

logger = logging.getLogger(__name__)

MECHANISMS = (*FAMILIES, "auto")
CONTINUOUS = ("linear", "mlp", "flow")
DISCRETE = ("classifier", "mlp_classifier")


def as_graph(graph: Any) -> nx.DiGraph:
    """A networkx DiGraph from a DiGraph or an edge list ``[(parent, child), ...]``, acyclic."""
    if not isinstance(graph, nx.DiGraph):
        try:
            graph = nx.DiGraph(list(graph))
        except (TypeError, ValueError, nx.NetworkXError):
            raise TypeError("graph must be a networkx DiGraph or a list of (parent, child) edges") from None
    if not nx.is_directed_acyclic_graph(graph):
        cycle = " -> ".join(str(u) for u, _ in nx.find_cycle(graph))
        raise ValueError(f"the graph has a cycle ({cycle}): an SCM's graph must be acyclic")
    return graph


def _is_discrete(x: np.ndarray, max_classes: int) -> bool:
    return bool(np.all(x == np.round(x))) and 2 <= len(np.unique(x)) <= max_classes


def _requested(names: list[str], mechanisms: Any) -> dict[str, str]:
    """Each node's requested family (or "auto"), checked before any work."""
    if isinstance(mechanisms, str):
        requested = dict.fromkeys(names, mechanisms)
    elif isinstance(mechanisms, Mapping):
        unknown = sorted(str(k) for k in set(mechanisms) - set(names))
        if unknown:
            raise ValueError(f"mechanisms given for {unknown}, which are not nodes of the graph")
        requested = {n: mechanisms.get(n, "auto") for n in names}
    else:
        raise TypeError(f"mechanisms must be a family name or {{node: family}}, got {type(mechanisms).__name__}")
    for node, kind in requested.items():
        if kind not in MECHANISMS:
            raise ValueError(f"mechanism {kind!r} for node {node!r} is not one of {MECHANISMS}")
    return requested


def _candidates(node: str, asked: str, parents: list[str], discrete: bool, everywhere: bool) -> tuple[str, ...]:
    """The families to fit for ``node``: the one asked (resolved for roots and discrete nodes), or auto's."""
    if asked == "auto" or (everywhere and discrete and asked in ("mlp", "flow")):
        if discrete:
            return DISCRETE if parents else ("classifier",)
        return CONTINUOUS if parents else ("linear",)
    if asked in DISCRETE and not discrete:
        raise ValueError(f"mechanism {asked!r} for node {node!r}: its values are not a few integer categories")
    if asked in ("mlp", "flow") and not parents:
        return ("linear",)
    if asked == "mlp_classifier" and not parents:
        return ("classifier",)
    return (asked,)


def choose(fits: dict[str, Fit]) -> str:
    """The simplest family (in the order given) within two standard errors of the best mean held-out
    log-likelihood, the standard error of the mean paired per-row difference to the best."""
    means = {k: float(np.mean(f.heldout)) for k, f in fits.items()}
    best = max(means, key=means.get)
    for family, fit in fits.items():
        diff = fits[best].heldout - fit.heldout
        se = float(np.std(diff) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
        if means[best] - means[family] <= 2 * se:
            return family
    return best


def from_graph(cls, graph: Any, data: Any, mechanisms: str | Mapping[str, str] = "linear", holdout: float = 0.2,
               seed: int = 0, max_classes: int = 10, progress: bool = False, **training: Any):  # fmt: skip
    """Fit a mechanism per node of ``graph`` to ``data`` (every node observed); see the module docstring.

    ``holdout``: the fraction of rows held out for scoring and early stopping. ``training``: options of the
    network families (:class:`probrep.causal.learners.Options`: ``hidden``, ``activation``, ``lr``, ``batch_size``,
    ``max_epochs``, ``patience``). ``progress`` shows a bar over the nodes.
    """
    from probrep.causal.bayesian import observed_columns

    graph = as_graph(graph)
    names = [str(n) for n in graph.nodes]
    requested = _requested(names, mechanisms)
    holdout = _checks.real(holdout, "holdout")
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be a fraction in (0, 1), got {holdout}")
    unknown_options = sorted(set(training) - set(Options.__dataclass_fields__) - {"seed"})
    if unknown_options:
        raise TypeError(f"unknown training options {unknown_options}; known: {sorted(Options.__dataclass_fields__)}")
    options = Options(**{**training, "seed": _checks.seed(seed)})
    counts = (options.batch_size, options.max_epochs, options.patience, *options.hidden)
    if (
        options.activation not in ("tanh", "relu")
        or not all(isinstance(c, int) and c > 0 for c in counts)
        or not (isinstance(options.lr, (int, float)) and options.lr > 0 and isinstance(options.lr_cuts, int))
    ):
        raise ValueError(f"training options {training}: activation 'tanh' or 'relu', hidden widths, batch_size, "
                         "max_epochs and patience positive integers, lr > 0")  # fmt: skip

    columns = observed_columns(names, data)
    missing = [n for n in names if n not in columns]
    if missing:
        raise ValueError(f"nodes {missing} are missing from the data: learning a mechanism needs every node observed")
    n = len(next(iter(columns.values())))
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, int(round(holdout * n)))
    if n - cut < 2:
        raise ValueError(f"{n} rows leave too few to fit after holding out {cut}")
    held, train = np.sort(order[:cut]), np.sort(order[cut:])
    plan = []
    for node in nx.lexicographical_topological_sort(graph, key=str):
        parents = sorted(str(p) for p in graph.predecessors(node))
        discrete = _is_discrete(columns[str(node)], max_classes)
        families = _candidates(str(node), requested[str(node)], parents, discrete, isinstance(mechanisms, str))
        plan.append((str(node), parents, families))

    taken = set(names)

    def unused(base: str) -> str:  # a name no node and no network chosen so far has (a node's families differ)
        name, i = base, 2
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        return name

    equations, report, networks = {}, {}, []
    steps = plan
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(plan, desc="mechanisms")
    for node, parents, families in steps:
        design = np.column_stack([columns[p] for p in parents]) if parents else np.empty((n, 0))
        task = Task(node, columns[node], parents, design, train, held, unused)
        fits = {}
        for family in families:
            try:
                fits[family] = FAMILIES[family](task, options)
            except ValueError as exc:
                raise ValueError(f"node {node!r}, mechanism {family!r}: {exc}") from None
        chosen = choose(fits) if len(fits) > 1 else families[0]
        fit = fits[chosen]
        logger.info("node %s: %s (held-out log-likelihood %.4f per row)", node, chosen, np.mean(fit.heldout))
        equations[node] = fit.equation
        networks += fit.networks
        taken.update(network.name for network in fit.networks)
        report[node] = {"mechanism": chosen, "parents": parents,
                        "scores": {k: float(np.mean(f.heldout)) for k, f in fits.items()},
                        "heldout_loglik_per_row": float(np.mean(fit.heldout)), **fit.stats}  # fmt: skip
    with named_functions(networks):
        scm = cls.from_equations(equations)
    scm.fit_report = report
    return scm
