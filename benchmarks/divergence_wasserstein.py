"""Wasserstein distances against scipy and POT: the same numbers, and the time each takes.

* 1-D W1 and W2 between 1,000,000 and 700,000 points (float64): ``probrep wasserstein_1d`` against
  ``scipy.stats.wasserstein_distance`` (W1 only) and ``ot.wasserstein_1d`` (POT).
* Sliced W2 between 100,000 and 100,000 points in 16 dimensions with the same 128 directions (float64):
  ``probrep sliced_wasserstein(directions=...)`` against ``ot.sliced_wasserstein_distance(projections=...)``.

Medians of ``--repeats`` runs, methods interleaved. POT is optional (``pip install pot``); without it its rows
say so.

    python benchmarks/divergence_wasserstein.py [--repeats 5]

Writes benchmarks/results/divergence_wasserstein.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.stats
import torch
from _machine import cpu_name  # noqa: E402  (benchmarks run as scripts from this folder)

from probrep import divergences as dv


def timed(fn):
    t0 = time.perf_counter()
    value = float(fn())
    return time.perf_counter() - t0, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "divergence_wasserstein.json"))
    args = parser.parse_args()
    try:
        import ot
    except ImportError:
        ot = None
        print("POT is not installed (pip install pot): its rows are skipped")

    rng = np.random.default_rng(0)
    u, v = rng.normal(size=1_000_000), 0.3 + 1.5 * rng.normal(size=700_000)
    tu, tv = torch.from_numpy(u), torch.from_numpy(v)
    xs, xt = rng.normal(size=(100_000, 16)), 0.1 + rng.normal(size=(100_000, 16))
    theta = rng.normal(size=(128, 16))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    txs, txt, ttheta = torch.from_numpy(xs), torch.from_numpy(xt), torch.from_numpy(theta)

    cases = {
        "w1_1d": {
            "probrep": lambda: dv.wasserstein_1d(tu, tv, p=1),
            "scipy": lambda: scipy.stats.wasserstein_distance(u, v),
        },
        "w2_1d": {"probrep": lambda: dv.wasserstein_1d(tu, tv, p=2)},
        "sliced_w2": {"probrep": lambda: dv.sliced_wasserstein(txs, txt, p=2, directions=ttheta)},
    }
    if ot is not None:
        cases["w1_1d"]["pot"] = lambda: ot.wasserstein_1d(u, v, p=1)
        cases["w2_1d"]["pot"] = lambda: ot.wasserstein_1d(u, v, p=2) ** 0.5  # POT returns W_p^p
        cases["sliced_w2"]["pot"] = lambda: ot.sliced_wasserstein_distance(xs, xt, p=2, projections=theta.T)

    results = {}
    for case, methods in cases.items():
        runs = {m: [] for m in methods}
        for _ in range(args.repeats):
            for name, fn in methods.items():
                runs[name].append(timed(fn))
        row = {}
        for name, rs in runs.items():
            row[name] = {"seconds_median": statistics.median(r[0] for r in rs), "value": rs[0][1]}
        ref = row["probrep"]["value"]
        for name in row:
            row[name]["relative_difference_to_probrep"] = abs(row[name]["value"] - ref) / abs(ref)
            if name != "probrep":
                row[name]["time_ratio_probrep_over_this"] = round(
                    row["probrep"]["seconds_median"] / row[name]["seconds_median"], 3
                )
        results[case] = row
        print(case, json.dumps(row, indent=1))
    result = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "pot": getattr(ot, "__version__", None),
        "scipy": scipy.__version__,
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
