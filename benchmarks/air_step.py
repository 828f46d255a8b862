"""Training-step time of probrep's AIR against a plain-Pyro AIR of the same architecture, written the
straightforward way (Pyro's AIR example and tutorial: an ``nn.LSTMCell`` on ``[image, z_where, z_what,
z_pres]`` every step, one decode/write per step, masking with ``poutine.scale``, ``pyro.infer.SVI`` with
``TraceGraph_ELBO`` and ``pyro.optim.Adam`` with a per-parameter learning rate for the baselines).

Reference configuration (Pyro's example with the tutorial's recipe): batch 64, 50x50 scenes, 3 steps, LSTM 256,
encoder and decoder 200 hidden, z_what 50, 28x28 windows, 200-unit predict and baseline heads, Adam 1e-4 with
baseline learning rate 1e-3. Both train on the same procedural scenes (probrep.data.objects), batches in the
same order. Blocks of steps alternate between the two so that drift on a shared machine hits both alike; the
figure is the median step time after warm-up.

``--guide-input residual`` (probrep's default, Difference AIR) times both guides reading, at each step, the image
minus what earlier steps drew: one extra decode/write per step for both, and for probrep the image projection
of the guide and baseline LSTMs at every step instead of once (the plain ``nn.LSTMCell`` projects its whole
input at every step either way). ``--guide-input image`` times the original AIR guide.

    python benchmarks/air_step.py [--guide-input residual] [--blocks 8] [--steps 15] [--threads 1]

Writes benchmarks/results/air_step.json (residual) or air_step_image_guide.json and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import pyro.optim
import torch
import torch.nn.functional as F
from _machine import cpu_name  # noqa: E402  (benchmarks run as scripts from this folder)
from pyro import poutine
from pyro.infer import SVI, TraceGraph_ELBO
from torch import nn

from probrep.data.objects import MultiObjects
from probrep.inference import svi
from probrep.inference.svi import TraceGraphELBO
from probrep.models.air.model import AIR, GUIDE_INPUTS
from probrep.training.loop import _BatchPlan

BATCH, SIZE, WINDOW, STEPS, Z_WHAT, RNN, HIDDEN = 64, 50, 28, 3, 50, 256, 200
LR, BASELINE_LR, SEED = 1e-4, 1e-3, 0
SCALE_PRIOR = (2.3, 0.2)


def batch_order(size: int):
    """The batches svi.fit draws with SEED, so the Pyro loop sees exactly the same ones."""
    plan = _BatchPlan(size, BATCH, SEED, shuffle=True, rank=0, world=1)
    step = 0
    while True:
        yield plan.indices(step)
        step += 1


# ------------------------------------------------------------------------------ plain Pyro, written plainly
def mlp(sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def expand_z_where(z_where):
    """(s, x, y) -> [[s, 0, -s x], [0, s, -s y]]: canvas -> window coordinates (probrep's convention)."""
    s, x, y = z_where[:, 0:1], z_where[:, 1:2], z_where[:, 2:3]
    zero = torch.zeros_like(s)
    return torch.cat([s, zero, -s * x, zero, s, -s * y], 1).view(-1, 2, 3)


def z_where_inv(z_where):
    s, x, y = z_where[:, 0:1], z_where[:, 1:2], z_where[:, 2:3]
    zero = torch.zeros_like(s)
    return torch.cat([1 / s, zero, x, zero, 1 / s, y], 1).view(-1, 2, 3)


def window_to_image(z_where, windows):
    n = windows.size(0)
    grid = F.affine_grid(expand_z_where(z_where), [n, 1, SIZE, SIZE], align_corners=False)
    return F.grid_sample(windows.view(n, 1, WINDOW, WINDOW), grid, align_corners=False).view(n, SIZE, SIZE)


def image_to_window(z_where, images):
    n = images.size(0)
    grid = F.affine_grid(z_where_inv(z_where), [n, 1, WINDOW, WINDOW], align_corners=False)
    return F.grid_sample(images.view(n, 1, SIZE, SIZE), grid, align_corners=False).view(n, -1)


class PlainAIR(nn.Module):
    def __init__(self, residual):
        super().__init__()
        self.residual = residual
        inputs = SIZE * SIZE + 3 + Z_WHAT + 1
        self.rnn = nn.LSTMCell(inputs, RNN)
        self.predict = mlp([RNN, HIDDEN, 7])
        self.encode = mlp([WINDOW * WINDOW, HIDDEN, 2 * Z_WHAT])
        self.decode = mlp([Z_WHAT, HIDDEN, WINDOW * WINDOW])
        self.bl_rnn = nn.LSTMCell(inputs, RNN)
        self.bl_predict = mlp([RNN, HIDDEN, 1])
        self.where_loc = torch.tensor([SCALE_PRIOR[0], 0.0, 0.0])
        self.where_scale = torch.tensor([SCALE_PRIOR[1], 1.0, 1.0])
        k = 0.01
        u = 1 / (1 + k + k**2 + k**3)
        self.prior_p = [1 - u, (k**2 + k**3) / (k + k**2 + k**3), k**3 / (k**2 + k**3)]

    def model(self, data):
        pyro.module("decode", self.decode)
        n = data.size(0)
        with pyro.plate("data", n):
            x = data.new_zeros(n, SIZE, SIZE)
            z_pres = data.new_ones(n, 1)
            for t in range(STEPS):
                z_pres = pyro.sample(f"z_pres_{t}", dist.Bernoulli(self.prior_p[t] * z_pres).to_event(1))
                with poutine.scale(scale=z_pres.squeeze(-1)):
                    z_where = pyro.sample(
                        f"z_where_{t}",
                        dist.Normal(self.where_loc.expand(n, 3), self.where_scale.expand(n, 3)).to_event(1),
                    )
                    z_what = pyro.sample(
                        f"z_what_{t}", dist.Normal(data.new_zeros(n, Z_WHAT), data.new_ones(n, Z_WHAT)).to_event(1)
                    )
                y_att = torch.sigmoid(self.decode(z_what) - 2.0)
                x = x + window_to_image(z_where, y_att) * z_pres.view(-1, 1, 1)
            pyro.sample("obs", dist.Normal(x.view(n, -1), 0.3).to_event(1), obs=data.view(n, -1))

    def guide(self, data):
        for name in ("rnn", "predict", "encode", "bl_rnn", "bl_predict"):
            pyro.module(name, getattr(self, name))
        n = data.size(0)
        flat = data.view(n, -1)
        h, c = data.new_zeros(n, RNN), data.new_zeros(n, RNN)
        bl_h, bl_c = data.new_zeros(n, RNN), data.new_zeros(n, RNN)
        z_pres, z_where, z_what = data.new_ones(n, 1), data.new_zeros(n, 3), data.new_zeros(n, Z_WHAT)
        with pyro.plate("data", n):
            for t in range(STEPS):
                if self.residual and t > 0:  # read what earlier steps left: subtract the last window drawn
                    drawn = window_to_image(z_where, torch.sigmoid(self.decode(z_what) - 2.0))
                    data = data - drawn * z_pres.view(-1, 1, 1)
                    flat = data.reshape(n, -1)
                rnn_input = torch.cat((flat, z_where, z_what, z_pres), 1)
                h, c = self.rnn(rnn_input, (h, c))
                out = self.predict(h)
                z_pres_p = torch.sigmoid(out[:, 0:1])
                where_loc = self.where_loc + self.where_scale * out[:, 1:4]
                where_scale = self.where_scale * (F.softplus(out[:, 4:]) + 1e-4)
                bl_input = torch.cat((flat.detach(), z_where.detach(), z_what.detach(), z_pres.detach()), 1)
                bl_h, bl_c = self.bl_rnn(bl_input, (bl_h, bl_c))
                bl_value = self.bl_predict(bl_h) * z_pres
                z_pres = pyro.sample(
                    f"z_pres_{t}",
                    dist.Bernoulli(z_pres_p * z_pres).to_event(1),
                    infer=dict(baseline=dict(baseline_value=bl_value.squeeze(-1))),
                )
                with poutine.scale(scale=z_pres.squeeze(-1)):
                    z_where = pyro.sample(f"z_where_{t}", dist.Normal(where_loc, where_scale).to_event(1))
                    a = self.encode(image_to_window(z_where, data))
                    z_what = pyro.sample(
                        f"z_what_{t}", dist.Normal(a[:, :Z_WHAT], F.softplus(a[:, Z_WHAT:]) + 1e-4).to_event(1)
                    )


def plain_pyro_times(data, steps, guide_input):
    pyro.clear_param_store()
    torch.manual_seed(0)
    air = PlainAIR(residual=guide_input == "residual")
    optim = pyro.optim.Adam(lambda module, param: {"lr": BASELINE_LR if module.startswith("bl_") else LR})
    engine = SVI(air.model, air.guide, optim, loss=TraceGraph_ELBO())
    order = batch_order(len(data))
    times = []
    with pyro.validation_enabled(False):
        for _ in range(steps):
            t0 = time.perf_counter()
            engine.step(data[next(order)])
            times.append(time.perf_counter() - t0)
    return times


def probrep_times(data, steps, guide_input):
    torch.manual_seed(0)
    air = AIR(
        SIZE,
        WINDOW,
        STEPS,
        z_what_dim=Z_WHAT,
        rnn_hidden=RNN,
        encoder_hidden=HIDDEN,
        decoder_hidden=HIDDEN,
        predict_hidden=HIDDEN,
        baseline_hidden=HIDDEN,
        scale_prior=SCALE_PRIOR,
        z_pres_prior=0.01,
        guide_input=guide_input,
    )
    stamps = []
    svi.fit(
        air,
        data,
        steps=steps + 1,
        batch_size=BATCH,
        lr=LR,
        param_options=air.baseline_param_options(BASELINE_LR),
        elbo=TraceGraphELBO(),
        device="cpu",
        seed=SEED,
        progress=False,
        callbacks=[lambda info: stamps.append(time.perf_counter())],
    )
    return [b - a for a, b in zip(stamps[:-1], stamps[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3, help="steps dropped at the start of each block")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--guide-input", choices=GUIDE_INPUTS, default="residual")
    parser.add_argument("--out", default=None, help="default: results/air_step.json, or ..._image_guide.json")
    args = parser.parse_args()
    results = Path(__file__).parent / "results"
    default = "air_step.json" if args.guide_input == "residual" else "air_step_image_guide.json"
    out = Path(args.out or results / default)
    torch.set_num_threads(args.threads)
    scenes = MultiObjects().sample(2048, seed=0)
    data = torch.from_numpy(scenes.images[:, 0]).contiguous()  # [N, 50, 50]
    runners = {"plain_pyro": plain_pyro_times, "probrep": probrep_times}
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for block in range(args.blocks):
        for name, run in runners.items():
            samples[name] += run(data, args.steps + args.warmup, args.guide_input)[args.warmup :]
        print(
            f"block {block + 1}/{args.blocks}: "
            + ", ".join(f"{k} {statistics.median(v) * 1e3:.0f} ms" for k, v in samples.items()),
            flush=True,
        )
    median = {k: statistics.median(v) for k, v in samples.items()}
    result = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {args.threads} torch threads",
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "config": {
            "batch": BATCH,
            "image": SIZE,
            "window": WINDOW,
            "steps": STEPS,
            "z_what": Z_WHAT,
            "lstm": RNN,
            "hidden": HIDDEN,
            "guide_input": args.guide_input,
        },
        "median_step_ms": {k: round(v * 1e3, 1) for k, v in median.items()},
        "quartiles_step_ms": {k: [round(q * 1e3, 1) for q in statistics.quantiles(v, n=4)] for k, v in samples.items()},
        "ratio_probrep_vs_plain_pyro": round(median["probrep"] / median["plain_pyro"], 3),
        "steps_per_runner": len(samples["probrep"]),
        "target_ms": 500.0,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
