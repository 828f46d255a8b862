"""Mechanisms learned from a graph and data: ``SCM.from_graph(graph, data)``.

Each node gets an additive-noise mechanism ``X = f(parents) + U``, ``U ~ Normal(0, sigma)``, with ``f`` linear and
fitted by least squares (sigma the residuals' maximum-likelihood scale). The result is an ordinary symbolic SCM:
its equations print the fitted numbers, so ``do``, ``sample``, exact counterfactual abduction (``U = X - f``),
``gaussian()`` and JSON all apply unchanged, and nothing about it needs pickle. Per-node fit statistics (the
residual scale, R^2 and the held-out Gaussian log-likelihood per row) come back in ``scm.fit_report``.

Neural, flow and classifier mechanisms (issue 17, section 2) are not here yet: ask for them and the error says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np

MECHANISMS = ("linear",)


def as_graph(graph: Any) -> nx.DiGraph:
    """A networkx DiGraph from a DiGraph or an edge list ``[(parent, child), ...]``, acyclic."""
    if not isinstance(graph, nx.DiGraph):
        try:
            graph = nx.DiGraph(list(graph))
        except (TypeError, ValueError, nx.NetworkXError):
            raise TypeError("graph must be a networkx DiGraph or a list of (parent, child) edges") from None
    if not nx.is_directed_acyclic_graph(graph):
        cycle = " -> ".join(u for u, _ in nx.find_cycle(graph))
        raise ValueError(f"the graph has a cycle ({cycle}): an SCM's graph must be acyclic")
    return graph


def _number(value: float) -> str:
    return repr(float(value))


def fit_linear(x: np.ndarray, parents: np.ndarray, holdout: float, rng: np.random.Generator) -> dict[str, Any]:
    """Least squares of ``x`` on ``[1, parents]``; the held-out log-likelihood is from a fit on the other rows."""
    n = len(x)
    design = np.column_stack([np.ones(n), parents])
    if n <= design.shape[1]:
        raise ValueError(f"{n} rows cannot fit {design.shape[1]} coefficients")
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    residual = x - design @ coef
    sigma = float(np.sqrt(np.mean(residual**2)))
    if not sigma > 0:
        raise ValueError("the node is an exact linear function of its parents (zero residual): no noise to fit")
    held = rng.permutation(n)[: max(1, int(round(holdout * n)))]
    kept = np.setdiff1d(np.arange(n), held)
    c_kept, *_ = np.linalg.lstsq(design[kept], x[kept], rcond=None)
    s_kept = float(np.sqrt(np.mean((x[kept] - design[kept] @ c_kept) ** 2)))
    r = x[held] - design[held] @ c_kept
    loglik = float(np.mean(-0.5 * (r / s_kept) ** 2 - np.log(s_kept) - 0.5 * np.log(2 * np.pi)))
    r2 = 1.0 - float(np.var(residual) / np.var(x)) if np.var(x) > 0 else 0.0
    return {"coef": coef, "sigma": sigma, "r2": r2, "heldout_loglik_per_row": loglik}


def equation(parents: list[str], fit: dict[str, Any]) -> str:
    terms = [_number(fit["coef"][0])] + [f"{_number(c)}*{p}" for c, p in zip(fit["coef"][1:], parents)]
    return " + ".join(terms) + f" + Normal(0, {_number(fit['sigma'])})"


def from_graph(cls, graph: Any, data: Any, mechanisms: str | Mapping[str, str] = "linear",
               holdout: float = 0.2, seed: int = 0):  # fmt: skip
    """Fit an additive-noise mechanism per node of ``graph`` to ``data`` (every node observed); see the module."""
    from probrep.causal.bayesian import observed_columns

    graph = as_graph(graph)
    names = [str(n) for n in graph.nodes]
    if isinstance(mechanisms, str):
        mechanisms = dict.fromkeys(names, mechanisms)
    unknown = sorted(set(mechanisms) - set(names))
    if unknown:
        raise ValueError(f"mechanisms given for {unknown}, which are not nodes of the graph")
    for node, kind in mechanisms.items():
        if kind not in MECHANISMS:
            raise ValueError(f"mechanism {kind!r} for node {node!r}: available {MECHANISMS} (neural, flow and "
                             "classifier mechanisms are not implemented yet)")  # fmt: skip

    columns = observed_columns(names, data)
    missing = [n for n in names if n not in columns]
    if missing:
        raise ValueError(f"nodes {missing} are missing from the data: learning a mechanism needs every node observed")
    rng = np.random.default_rng(seed)
    equations, report = {}, {}
    for node in nx.lexicographical_topological_sort(graph, key=str):
        parents = sorted(str(p) for p in graph.predecessors(node))
        design = np.column_stack([columns[p] for p in parents]) if parents else np.empty((len(columns[node]), 0))
        try:
            fit = fit_linear(columns[node], design, holdout, rng)
        except ValueError as exc:
            raise ValueError(f"node {node!r}: {exc}") from None
        equations[str(node)] = equation(parents, fit)
        report[str(node)] = {"mechanism": mechanisms.get(str(node), "linear"), "parents": parents,
                             "sigma": fit["sigma"], "r2": fit["r2"],
                             "heldout_loglik_per_row": fit["heldout_loglik_per_row"]}  # fmt: skip
    scm = cls.from_equations(equations)
    scm.fit_report = report
    return scm
