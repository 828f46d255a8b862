"""Rows per second sampling a 20-node SCM, NumPyro and Pyro backends against a plain numpy ancestral sampler.

The SCM: node j has up to two earlier parents, x_j = w1 x_a + w2 tanh(x_b) + Normal(0, s_j). The numpy
reference is the loop a user writes by hand over a weight table. Each figure is the best of 5 timed calls
after one untimed call (which, for NumPyro, compiles).

    python benchmarks/scm_sampling.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from probrep.causal import SCM


def make_table(num_nodes: int, seed: int = 0) -> list[tuple[int, float, int, float, float]]:
    rng = np.random.default_rng(seed)
    table = []
    for j in range(num_nodes):
        a = int(rng.integers(0, j)) if j else -1
        b = int(rng.integers(0, j)) if j else -1
        table.append((a, float(rng.uniform(-1, 1)), b, float(rng.uniform(-1, 1)), float(rng.uniform(0.5, 1.5))))
    return table


def scm_from_table(table) -> SCM:
    equations = {}
    for j, (a, w1, b, w2, s) in enumerate(table):
        terms = [f"{w1:.4f}*X{a}", f"{w2:.4f}*tanh(X{b})"] if a >= 0 else []
        equations[f"X{j}"] = " + ".join([*terms, f"Normal(0, {s:.4f})"])
    return SCM.from_equations(equations)


def numpy_sampler(table, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for a, w1, b, w2, s in table:
        x = rng.normal(0.0, s, n)
        if a >= 0:
            x += w1 * out[a] + w2 * np.tanh(out[b])
        out.append(x)
    return {f"X{j}": x for j, x in enumerate(out)}


def best_time(fn, repeats: int = 5) -> float:
    fn()  # compile / warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "scm_sampling.json"))
    args = parser.parse_args()
    table = make_table(args.nodes)
    scm = scm_from_table(table)
    n = args.rows

    def run_numpyro():
        out = scm.sample(n, seed=1, backend="numpyro")
        out[scm.nodes[-1]].block_until_ready()

    timings = {
        "numpy_loop": best_time(lambda: numpy_sampler(table, n, 1)),
        "probrep_numpyro": best_time(run_numpyro),
        "probrep_pyro_cpu": best_time(lambda: scm.sample(n, seed=1, backend="pyro", device="cpu")),
        "probrep_numpy": best_time(lambda: scm.sample(n, seed=1, backend="numpy")),
    }
    rows_per_s = {k: n / v for k, v in timings.items()}
    result = {
        "rows": n,
        "nodes": args.nodes,
        "cores": os.cpu_count(),
        "rows_per_second": {k: round(v) for k, v in rows_per_s.items()},
        "ratio_vs_numpy_loop": {k: round(v / rows_per_s["numpy_loop"], 3) for k, v in rows_per_s.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
