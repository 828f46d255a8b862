"""Mutual-information bounds trained over a staircase of true MI (after Poole et al. 2019, Figure 2).

x ~ N(0, I_20), y = rho x + sqrt(1 - rho^2) e, with rho stepped so that I = -(d/2) log(1 - rho^2) is 2, 4, 6, 8,
10 nats for ``--steps`` steps each. One separable critic T(x, y) = g(x)' h(y) per bound (MLPs 20-128-128-32),
trained by Adam on fresh batches of 64, all bounds on the same batches:

    nwj, js_nwj (JS-trained, NWJ-read), mine (DV value, moving-average gradient), infonce, tuba and
    interpolated (alpha = 0.01), the last two with a learned baseline log a(y).

Expected picture: InfoNCE is low-variance but capped at log 64 = 4.16; NWJ/TUBA/MINE follow higher MI with a
variance that grows with it; the interpolated bound trades between them.

    python benchmarks/divergence_mi_staircase.py [--steps 3000] [--device cpu] [--seed 0]

Writes benchmarks/results/divergence_mi_staircase.png and .json (per level and bound: mean and sd of the
estimate over the second half of the level, against the true MI).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from probrep import divergences as dv
from probrep.device import resolve_device
from probrep.io.figures import save_figure
from probrep.io.json_file import write_json

LEVELS = (2.0, 4.0, 6.0, 8.0, 10.0)
DIM, BATCH = 20, 64
BOUNDS = ("nwj", "js_nwj", "mine", "infonce", "tuba", "interpolated")


def mlp(sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class SeparableCritic(nn.Module):
    """T(x_i, y_j) = g(x_i) . h(y_j) for all pairs of a batch; optionally a baseline log a(y_j)."""

    def __init__(self, baseline: bool):
        super().__init__()
        self.g, self.h = mlp((DIM, 128, 128, 32)), mlp((DIM, 128, 128, 32))
        self.baseline = mlp((DIM, 64, 1)) if baseline else None

    def forward(self, x, y):
        scores = self.g(x) @ self.h(y).T
        log_a = self.baseline(y).squeeze(-1) if self.baseline is not None else None
        return scores, log_a


def objective(name, scores, log_a, state):
    """(loss to minimise, the bound's value to report)."""
    if name == "mine":
        value, state["log_ema"] = dv.mine_lower_bound(scores, state.get("log_ema"), momentum=0.99)
        return -value, value.item()
    if name == "tuba":
        value = dv.tuba_lower_bound(scores, log_a)
    elif name == "interpolated":
        value = dv.interpolated_lower_bound(scores, 0.01, log_a)
    else:
        value = dv.mi_lower_bound(scores, name)
    return -value, value.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="steps per MI level")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (small networks run best on one)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "divergence_mi_staircase"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    critics = {b: SeparableCritic(baseline=b in ("tuba", "interpolated")).to(device) for b in BOUNDS}
    opts = {b: torch.optim.Adam(c.parameters(), lr=args.lr) for b, c in critics.items()}
    states: dict[str, dict] = {b: {} for b in BOUNDS}
    estimates = {b: np.zeros(len(LEVELS) * args.steps) for b in BOUNDS}
    truth = np.repeat(LEVELS, args.steps)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for step in tqdm(range(len(truth)), desc="MI staircase"):
        x, y, _ = dv.correlated_gaussians(float(truth[step]), DIM, BATCH, gen)
        x, y = x.to(device), y.to(device)
        for name in BOUNDS:
            scores, log_a = critics[name](x, y)
            loss, value = objective(name, scores, log_a, states[name])
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            opts[name].step()
            estimates[name][step] = value
    seconds = time.perf_counter() - start

    summary = {}
    for name in BOUNDS:
        rows = {}
        for k, mi in enumerate(LEVELS):
            tail = estimates[name][k * args.steps + args.steps // 2 : (k + 1) * args.steps]
            tail = tail[np.isfinite(tail)]
            rows[f"{mi:g}"] = {
                "mean": round(float(tail.mean()), 3),
                "median": round(float(np.median(tail)), 3),
                "sd": round(float(tail.std()), 3),
                "bias": round(float(tail.mean() - mi), 3),
            }
        summary[name] = rows
    print(f"{len(truth)} steps x {len(BOUNDS)} critics in {seconds:.0f} s on {device}")
    print("median over the second half of each level")
    print("true MI:    " + "  ".join(f"{mi:6.1f}" for mi in LEVELS))
    for name in BOUNDS:
        print(f"{name:12s}" + "  ".join(f"{summary[name][f'{mi:g}']['median']:6.2f}" for mi in LEVELS))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True, sharey=True)
    steps = np.arange(len(truth))
    for ax, name in zip(axes.ravel(), BOUNDS):
        est = np.clip(estimates[name], -2, 14)
        window = max(1, args.steps // 20)
        csum = np.cumsum(np.insert(est, 0, 0.0))
        smooth = (csum[window:] - csum[:-window]) / window  # trailing mean: no edge effect at level changes
        smooth = np.concatenate([np.full(window - 1, np.nan), smooth])
        ax.plot(steps, est, lw=0.4, alpha=0.35, color="C0")
        ax.plot(steps, smooth, lw=1.3, color="C0", label="estimate (running mean)")
        ax.plot(steps, truth, lw=1.5, color="k", label="true MI")
        if name in ("infonce", "interpolated"):
            ax.axhline(math.log(BATCH), ls="--", color="C3", lw=1, label="log B")
        ax.set_title(name)
        ax.set_ylim(-1, 13)
        ax.set_xticks(np.arange(0, len(truth) + 1, args.steps))
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("training step")
    for ax in axes[:, 0]:
        ax.set_ylabel("nats")
    fig.suptitle(f"MI lower bounds, d = {DIM}, batch {BATCH}, separable critics ({args.steps} steps per level)")
    png = save_figure(fig, Path(args.out).with_suffix(".png"))
    write_json(
        {
            "dim": DIM,
            "batch": BATCH,
            "steps_per_level": args.steps,
            "lr": args.lr,
            "seed": args.seed,
            "device": str(device),
            "seconds": round(seconds, 1),
            "second_half_of_each_level": summary,
        },
        Path(args.out).with_suffix(".json"),
    )
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
