"""Cost per training step of exact, sliced and denoising score matching against the score network alone.

For each dimension d, an MLP score network d -> 256 -> 256 -> d (SiLU) on a batch of 128. The reference is one
forward and backward pass of the network; each objective's step is its loss plus the backward pass. The exact
objective needs one extra backward pass per dimension, so its ratio grows linearly with d; sliced (one
projection) and denoising stay flat.

    python benchmarks/score_matching_cost.py [--dims 2 16 128 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from probrep.inference import score_matching as sm


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(d: int, batch: int) -> dict:
    net = nn.Sequential(nn.Linear(d, 256), nn.SiLU(), nn.Linear(256, 256), nn.SiLU(), nn.Linear(256, d))
    x = torch.randn(batch, d)

    def step(loss_fn):
        def run():
            net.zero_grad(set_to_none=True)
            loss_fn().backward()

        return run

    t_base = timed(step(lambda: net(x).pow(2).sum()), 20)
    row = {"dim": d, "network_ms": round(t_base * 1e3, 3)}
    objectives = {
        "exact": lambda: sm.exact(net, x),
        "sliced": lambda: sm.sliced(net, x),
        "denoising": lambda: sm.denoising(net, x, 0.1),
    }
    for name, loss_fn in objectives.items():
        t = timed(step(loss_fn), 3 if (name == "exact" and d >= 512) else 20)
        row[f"{name}_ms"] = round(t * 1e3, 3)
        row[f"{name}_ratio"] = round(t / t_base, 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 16, 128, 1024])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "score_matching_cost.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for d in args.dims:
        rows.append(measure(d, args.batch))
        print(rows[-1])
    result = {"batch": args.batch, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
