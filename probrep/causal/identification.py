"""Identification by backdoor adjustment (Pearl 1993): which observed variables to adjust for so that
``P(Y | do(X = x)) = sum_z P(Y | x, z) P(z)``, read from the graph alone.

A set ``Z`` satisfies the backdoor criterion for ``(X, Y)`` when no member of ``Z`` is a descendant of ``X`` and
``Z`` d-separates ``X`` from ``Y`` in the graph with ``X``'s outgoing edges removed (so only the "backdoor" paths,
those entering ``X``, are left to block). The set returned is a minimal one among the observed non-descendants
(networkx's minimal d-separator); when none exists, the effect is not identifiable by backdoor adjustment (it
may still be by the front-door criterion or do-calculus, which this module does not attempt) and the error names
an open backdoor path.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import networkx as nx


class NotIdentifiableError(ValueError):
    """No observed set satisfies the backdoor criterion."""


def _check(graph: nx.DiGraph, treatment: str, outcome: str, observed: Iterable[str] | None) -> set[str]:
    if not isinstance(graph, nx.DiGraph) or not nx.is_directed_acyclic_graph(graph):
        raise ValueError("the graph must be a networkx DiGraph without cycles")
    for role, name in (("treatment", treatment), ("outcome", outcome)):
        if name not in graph:
            raise ValueError(f"{role} {name!r} is not a node; nodes are {sorted(graph)}")
    if treatment == outcome:
        raise ValueError(f"treatment and outcome are the same node {treatment!r}")
    seen = set(graph) if observed is None else set(observed)
    unknown = sorted(seen - set(graph))
    if unknown:
        raise ValueError(f"observed names {unknown} are not nodes; nodes are {sorted(graph)}")
    for role, name in (("treatment", treatment), ("outcome", outcome)):
        if name not in seen:
            raise ValueError(f"the {role} {name!r} must be observed")
    return seen


def _backdoor_graph(graph: nx.DiGraph, treatment: str) -> nx.DiGraph:
    cut = graph.copy()
    cut.remove_edges_from(list(graph.out_edges(treatment)))
    return cut


def satisfies_backdoor(graph: nx.DiGraph, treatment: str, outcome: str, adjustment: Collection[str]) -> bool:
    """Whether ``adjustment`` satisfies the backdoor criterion for ``(treatment, outcome)``."""
    _check(graph, treatment, outcome, None)
    z = set(adjustment)
    if z & (nx.descendants(graph, treatment) | {treatment, outcome}):
        return False
    return nx.is_d_separator(_backdoor_graph(graph, treatment), {treatment}, {outcome}, z)


def adjustment_set(graph: nx.DiGraph, treatment: str, outcome: str, observed: Iterable[str] | None = None) -> set[str]:
    """A minimal backdoor adjustment set among the ``observed`` nodes (default: all), or
    :class:`NotIdentifiableError` naming an open backdoor path through unobserved nodes."""
    seen = _check(graph, treatment, outcome, observed)
    allowed = seen - nx.descendants(graph, treatment) - {treatment, outcome}
    cut = _backdoor_graph(graph, treatment)
    found = nx.find_minimal_d_separator(cut, {treatment}, {outcome}, restricted=allowed)
    if found is not None:
        return set(found)
    path = _open_backdoor_path(cut, treatment, outcome, allowed)
    raise NotIdentifiableError(
        f"the effect of {treatment!r} on {outcome!r} is not identifiable by backdoor adjustment with the observed "
        f"nodes: the backdoor path {' - '.join(path)} cannot be blocked (it runs through unobserved "
        f"{sorted(set(path[1:-1]) - seen)}); observe a node on it, or use another identification strategy"
    )


def _open_backdoor_path(cut: nx.DiGraph, treatment: str, outcome: str, allowed: set[str]) -> list[str]:
    """A backdoor path no allowed set can block: no colliders on it (so it is open unless adjusted) and no allowed
    node to adjust for (shortest first; the first 10,000 paths are searched)."""
    skeleton = cut.to_undirected()
    for i, path in enumerate(nx.shortest_simple_paths(skeleton, treatment, outcome)):
        colliders = any(cut.has_edge(a, b) and cut.has_edge(c, b) for a, b, c in zip(path, path[1:], path[2:]))
        if not colliders and not any(n in allowed for n in path[1:-1]):
            return path
        if i >= 10_000:
            break
    return [treatment, "...", outcome]
