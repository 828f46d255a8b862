"""SVI step time of probrep's VAE against a plain PyTorch VAE with the same networks, and Pyro's own SVI.

All three train the same conv VAE (64x64, 10 latents, beta 4, Bernoulli pixels, analytic KL, Adam 1e-3) on
the same in-memory procedural dSprites batches of 64, in the same order (CPU step time depends on the data's
values through denormal floats, so different batches alone move it by several percent). Blocks of steps
alternate between the three loops so that machine drift hits them alike; the figure is the median step time
over all blocks after warm-up.

    python benchmarks/vae_step.py [--blocks 6] [--steps 40] [--device cpu]

Writes benchmarks/results/vae_step.json and prints the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import pyro
import pyro.optim
import torch
import torch.nn.functional as F
from _machine import cpu_name  # noqa: E402  (benchmarks run as scripts from this folder)
from pyro.infer import SVI, TraceMeanField_ELBO

from probrep.data import DSprites
from probrep.device import resolve_device
from probrep.inference import svi
from probrep.models import VAE
from probrep.training.loop import _BatchPlan

BATCH, LATENT, BETA, LR, SEED = 64, 10, 4.0, 1e-3, 0


def batch_order(size: int):
    """The batches svi.fit draws with SEED, so the hand-written loops see exactly the same ones."""
    plan = _BatchPlan(size, BATCH, SEED, shuffle=True, rank=0, world=1)
    step = 0
    while True:
        yield plan.indices(step)
        step += 1


def make_vae(device):
    torch.manual_seed(0)
    return VAE((1, 64, 64), latent_dim=LATENT, beta=BETA).to(device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_torch_times(data, steps, device):
    """The loop a user writes by hand: same encoder/decoder modules, closed-form KL, BCE with logits."""
    vae = make_vae(device)
    params = list(vae.encoder.parameters()) + list(vae.decoder.parameters())
    opt = torch.optim.Adam(params, lr=LR)
    order = batch_order(len(data))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        x = data[next(order).to(device)]
        out = vae.encoder(x)
        loc, scale = out[:, :LATENT], F.softplus(out[:, LATENT:]) + 1e-5
        z = loc + scale * torch.randn_like(loc)
        recon = F.binary_cross_entropy_with_logits(vae.decoder(z), x, reduction="sum")
        kl = 0.5 * (loc**2 + scale**2 - 1.0 - 2.0 * torch.log(scale)).sum()
        loss = recon + BETA * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def probrep_times(data, steps, device):
    """probrep's svi.fit; step times read from a callback's timestamps."""
    vae = make_vae(device)
    stamps = []

    def stamp(info):
        sync(device)
        stamps.append(time.perf_counter())

    svi.fit(
        vae, data, steps=steps + 1, batch_size=BATCH, lr=LR, device=device, seed=SEED, progress=False, callbacks=[stamp]
    )
    return [b - a for a, b in zip(stamps[:-1], stamps[1:])]


def pyro_svi_times(data, steps, device):
    """Pyro's own SVI class with its Adam wrapper: the loop a Pyro user writes."""
    pyro.clear_param_store()
    vae = make_vae(device)
    engine = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": LR}), loss=TraceMeanField_ELBO())
    order = batch_order(len(data))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        engine.step(data[next(order).to(device)])
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=12)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=5, help="steps dropped at the start of each block")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "vae_step.json"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    ds = DSprites()
    data = torch.from_numpy(ds.render(ds.sample_factors(2048, rng=0))).to(device)
    runners = {"plain_pytorch": plain_torch_times, "probrep_svi_fit": probrep_times, "pyro_svi": pyro_svi_times}
    samples = {name: [] for name in runners}
    for block in range(args.blocks):
        for name, run in runners.items():
            samples[name] += run(data, args.steps + args.warmup, device)[args.warmup :]
        print(
            f"block {block + 1}/{args.blocks}: "
            + ", ".join(f"{k} {statistics.median(v) * 1e3:.1f} ms" for k, v in samples.items())
        )
    median = {k: statistics.median(v) for k, v in samples.items()}
    result = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads",
        "device": str(device),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "batch": BATCH,
        "median_step_ms": {k: round(v * 1e3, 2) for k, v in median.items()},
        "ratio_probrep_vs_plain_pytorch": round(median["probrep_svi_fit"] / median["plain_pytorch"], 3),
        "ratio_pyro_svi_vs_plain_pytorch": round(median["pyro_svi"] / median["plain_pytorch"], 3),
        "steps_per_runner": len(samples["plain_pytorch"]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
