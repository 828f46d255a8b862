"""``probrep scm sample`` and ``probrep scm graph``: structural causal models from a JSON file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from probrep.causal.scm import SCM
from probrep.io.files import atomic_open


def parse_interventions(items: list[str]) -> dict[str, float | str]:
    """``["X=1", "Y=Y+1"]`` -> ``{"X": 1.0, "Y": "Y+1"}`` (numbers become hard interventions)."""
    out: dict[str, float | str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"--do {item!r}: expected NODE=VALUE, e.g. X=1 or 'X=X+1'")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            out[name.strip()] = value.strip()
    return out


def write_csv(columns: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Write columns as CSV atomically (header = node names)."""
    table = np.stack([np.asarray(v, dtype=float).reshape(-1) for v in columns.values()], 1)
    with atomic_open(path, "w") as handle:
        np.savetxt(handle, table, delimiter=",", header=",".join(columns), comments="", fmt="%.8g")
    return Path(path)


def draw_graph(scm: SCM, path: str | os.PathLike) -> Path:
    """The DAG with each node's equation, laid out by topological generation."""
    import networkx as nx

    from probrep.io.figures import pyplot, save_figure

    plt = pyplot()

    graph = scm.graph.copy()  # layout attributes must not leak into the model's graph
    for layer, nodes in enumerate(nx.topological_generations(graph)):
        for node in nodes:
            graph.nodes[node]["layer"] = layer
    pos = nx.multipartite_layout(graph, subset_key="layer", align="horizontal", scale=-1)
    fig, ax = plt.subplots(figsize=(max(4, 1.8 * len(scm.nodes)), 3 + 0.6 * len(scm.nodes)))
    nx.draw_networkx(graph, pos, ax=ax, node_color="#cfe3f7", node_size=1400, arrowsize=18, font_size=11)
    for name, (x, y) in pos.items():
        ax.annotate(scm.equations[name], (x, y), xytext=(0, -28), textcoords="offset points", ha="center",
                    fontsize=8, color="#333")  # fmt: skip
    ax.set_axis_off()
    ax.margins(0.25)
    return save_figure(fig, path)


def add(sub: argparse._SubParsersAction) -> None:
    scm = sub.add_parser("scm", help="structural causal models from a JSON file")
    scm_sub = scm.add_subparsers(dest="scm_command", metavar="ACTION", required=True)
    sample = scm_sub.add_parser("sample", help="sample an SCM (optionally intervened) to CSV")
    sample.add_argument("file", help='JSON: {"format": 1, "nodes": [{"name": "X", "equation": "..."}, ...]}')
    sample.add_argument("--n", type=int, default=1000)
    sample.add_argument("--do", action="append", default=[], metavar="NODE=VALUE",
                        help="a number (hard), or an equation such as 'X+1' or 'Normal(3,1)'")  # fmt: skip
    sample.add_argument("--backend", choices=["numpyro", "pyro", "numpy"], default="numpyro")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", required=True, help="CSV file to write")
    graph = scm_sub.add_parser("graph", help="draw the causal graph as PNG")
    graph.add_argument("file")
    graph.add_argument("--out", required=True)
    scm.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    scm = SCM.load(args.file)
    if args.scm_command == "sample":
        if args.do:
            scm = scm.do(parse_interventions(args.do))
        draws = scm.sample(args.n, seed=args.seed, backend=args.backend)
        path = write_csv({k: np.asarray(v.cpu() if hasattr(v, "cpu") else v) for k, v in draws.items()}, args.out)
        print(f"wrote {args.n} rows of {', '.join(scm.nodes)} to {path}")
        return 0
    path = draw_graph(scm, args.out)
    print(f"wrote the graph of {len(scm.nodes)} nodes to {path}")
    return 0
