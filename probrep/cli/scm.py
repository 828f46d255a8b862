"""``probrep scm sample`` and ``probrep scm graph``: structural causal models from a JSON file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from probrep.causal.scm import SCM
from probrep.cli.options import add_seed
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
    """The DAG, one row per topological generation, each node a box holding its name and equation.

    Arrows are clipped at the boxes, so they never cross a label; an edge that skips a generation (A -> C beside
    A -> B -> C) bends around the rows between, so a chain and a triangle look different."""
    import networkx as nx

    from probrep.io.figures import pyplot, save_figure

    plt = pyplot()
    layers = [sorted(nodes) for nodes in nx.topological_generations(scm.graph)]
    width = max(len(nodes) for nodes in layers)
    pos, layer_of = {}, {}
    for depth, nodes in enumerate(layers):
        for k, node in enumerate(nodes):
            pos[node] = ((k - (len(nodes) - 1) / 2) * 3.2, -depth * 1.6)
            layer_of[node] = depth
    fig, ax = plt.subplots(figsize=(max(4.5, 3.0 * width + 1.5), 1.2 + 1.5 * len(layers)))
    boxes = {}
    for node, (x, y) in pos.items():
        equation = scm.equations.get(node, "")
        label = f"{node}\n{equation}" if len(equation) <= 40 else f"{node}\n{equation[:37]}..."
        text = ax.text(x, y, label, ha="center", va="center", fontsize=9, zorder=3,
                       bbox={"boxstyle": "round,pad=0.45", "fc": "#cfe3f7", "ec": "#4a7fb5"})  # fmt: skip
        boxes[node] = text
    xs, ys = [x for x, _ in pos.values()], [y for _, y in pos.values()]
    ax.set_xlim(min(xs) - 2.2, max(xs) + 2.2)
    ax.set_ylim(min(ys) - 0.9, max(ys) + 0.9)
    ax.set_axis_off()
    fig.canvas.draw()  # sizes the boxes: skipping edges are routed around them
    extents = {node: box.get_bbox_patch().get_window_extent() for node, box in boxes.items()}
    for a, b in scm.graph.edges:
        (xa, ya), (xb, yb) = ax.transData.transform(pos[a]), ax.transData.transform(pos[b])
        between = [extents[n] for n, depth in layer_of.items() if layer_of[a] < depth < layer_of[b]]
        rad = 0.0
        if between:
            # arc3 puts the curve's middle at M + rad/2 (dy, -dx) (display units): pass it beside the boxes
            middle, gap = (xa + xb) / 2, 30.0
            right = max(e.x1 for e in between) + gap
            left = min(e.x0 for e in between) - gap
            target = right if abs(right - middle) <= abs(middle - left) else left
            rad = 2.0 * (target - middle) / (yb - ya)
        # drawn after the boxes (higher zorder), so each arrow is clipped at the boxes as they are drawn
        ax.annotate("", xy=pos[b], xytext=pos[a], zorder=4,
                    arrowprops={"arrowstyle": "-|>", "color": "#333", "lw": 1.3, "mutation_scale": 16,
                                "connectionstyle": f"arc3,rad={rad:.4f}", "patchA": boxes[a].get_bbox_patch(),
                                "patchB": boxes[b].get_bbox_patch(), "shrinkA": 3, "shrinkB": 3})  # fmt: skip
    return save_figure(fig, path)


def add(sub: argparse._SubParsersAction) -> None:
    scm = sub.add_parser("scm", help="structural causal models from a JSON file")
    scm_sub = scm.add_subparsers(dest="scm_command", metavar="ACTION", required=True)
    sample = scm_sub.add_parser("sample", help="sample an SCM (optionally intervened) to CSV")
    sample.add_argument("file", help='JSON: {"format": 1, "nodes": [{"name": "X", "equation": "..."}, ...]}')
    sample.add_argument("--n", type=int, default=1000, help="rows to draw")
    sample.add_argument("--do", action="append", default=[], metavar="NODE=VALUE",
                        help="a number (hard), or an equation such as 'X+1' or 'Normal(3,1)'")  # fmt: skip
    sample.add_argument("--backend", choices=["numpyro", "pyro", "numpy"], default="numpyro", help="sampling program")
    add_seed(sample)
    sample.add_argument("--out", required=True, help="CSV file to write")
    graph = scm_sub.add_parser("graph", help="draw the causal graph as PNG")
    graph.add_argument("file", help="SCM JSON file")
    graph.add_argument("--out", required=True, help="PNG file to write")
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
