"""Batched torch MALA: chain-steps per second for 1, 64 and 1024 chains, against the energy gradient alone.

Three learned-energy-model stand-ins (random weights, fixed seed, plus |x|^2/2 to confine the chains): a small
SiLU MLP on 32-d states (32 -> 128 -> 128 -> 1: the worst case for the sampler's share), an image-sized MLP on
784-d states (784 -> 512 -> 512 -> 1) and probrep's own image energy model, ``ConvEnergy`` on 1x28x28 images
(three stride-2 convolutions, 32/64/64 channels). For each energy and batch size the
benchmark times, in alternating blocks so that machine drift hits both alike,

    gradient alone:  x.requires_grad_(); E = f(x); grad = autograd.grad(E.sum(), x)        (the floor)
    sampler:         probrep.inference.langevin.langevin(f, x0, steps, step_size=..., num_warmup=0)

and reports the median time per step, chain-steps per second and the ratio sampler / gradient (the issue's
target: at most 1.3): the median over blocks of each sampler block's time over the gradient block just before
it, so that drift of the machine's speed between blocks cancels. Each block runs about ``--block-seconds`` (20
to 1000 steps; a sampler block is one ``langevin`` call, its set-up included). Each MALA step costs exactly one
energy-and-gradient evaluation; the rest is the sampler's own arithmetic (proposal, correction, accept,
bookkeeping) and storing the samples.

    python benchmarks/mcmc_torch_langevin.py [--blocks 11] [--block-seconds 0.1] [--threads 1] [--device cpu]

Writes benchmarks/results/mcmc_torch_langevin.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from _machine import cpu_name  # noqa: E402  (benchmarks run as scripts from this folder)

from probrep.device import resolve_device
from probrep.inference.langevin import langevin
from probrep.models.ebm import ConvEnergy, MLPEnergy

ENERGIES = {  # name -> (state shape, description)
    "mlp32": ((32,), "MLP 32-128-128-1 SiLU + |x|^2/2"),
    "mlp784": ((784,), "MLP 784-512-512-1 SiLU + |x|^2/2"),
    "conv28": ((1, 28, 28), "probrep ConvEnergy on 1x28x28 (32/64/64 channels) + |x|^2/2"),
}


def make_energy(device: torch.device, name: str = "mlp32") -> torch.nn.Module:
    torch.manual_seed(0)
    shape = ENERGIES[name][0]
    if name == "conv28":
        net = ConvEnergy(shape)
    else:
        hidden = 128 if name == "mlp32" else 512
        net = MLPEnergy(shape[0], (hidden, hidden))

    class Energy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):  # a confining quadratic keeps the chains in a bounded region
            return self.net(x) + 0.5 * (x * x).flatten(1).sum(-1)

    return Energy().to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_gradient(energy, x0: torch.Tensor, steps: int) -> float:
    x = x0.clone()
    sync(x.device)
    start = time.perf_counter()
    for _ in range(steps):
        xg = x.detach().requires_grad_(True)
        e = energy(xg)
        (g,) = torch.autograd.grad(e.sum(), xg)
    sync(x.device)
    return (time.perf_counter() - start) / steps


def time_sampler(energy, x0: torch.Tensor, steps: int, step_size: float) -> float:
    sync(x0.device)
    start = time.perf_counter()
    langevin(energy, x0, steps=steps, step_size=step_size, num_warmup=0, seed=0, progress=False)
    sync(x0.device)
    return (time.perf_counter() - start) / (steps + 1)  # +1: the initial energy check is a gradient too


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=11)
    parser.add_argument("--block-seconds", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chains", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--energies", nargs="+", default=list(ENERGIES), choices=list(ENERGIES))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "mcmc_torch_langevin.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rows: dict[str, dict] = {}
    for energy_name in args.energies:
        shape = ENERGIES[energy_name][0]
        energy = make_energy(device, energy_name)
        rows[energy_name] = {}
        for chains in args.chains:
            x0 = torch.randn((chains, *shape), generator=torch.Generator().manual_seed(1)).to(device)
            # a step size near the adapted one, so acceptance is realistic (it does not change the cost); no mass
            # matrix, as in the timed runs (num_warmup=0 adapts nothing)
            tuned = langevin(energy, x0, steps=50, num_warmup=200, adapt_mass_matrix=False, progress=False)
            step = float(tuned.step_size.median())
            steps = min(1000, max(20, round(args.block_seconds / time_gradient(energy, x0, 20))))
            time_sampler(energy, x0, 20, step)  # warm caches
            grad_times, sampler_times = [], []
            for _ in range(args.blocks):
                grad_times.append(time_gradient(energy, x0, steps))
                sampler_times.append(time_sampler(energy, x0, steps, step))
            g, s = statistics.median(grad_times), statistics.median(sampler_times)
            pairs = [b / a for a, b in zip(grad_times, sampler_times)]  # each sampler block / the gradient before it
            ratio = statistics.median(pairs)
            rows[energy_name][str(chains)] = {
                "gradient_only_us_per_step": round(g * 1e6, 1),
                "sampler_us_per_step": round(s * 1e6, 1),
                "sampler_chain_steps_per_s": round(chains / s, 1),
                "gradient_chain_evals_per_s": round(chains / g, 1),
                "ratio_sampler_vs_gradient": round(ratio, 3),
                "ratio_range_over_blocks": [round(min(pairs), 3), round(max(pairs), 3)],
                "steps_per_block": steps,
                "step_size": step,
            }
            print(
                f"{energy_name} chains {chains:5d}: gradient {g * 1e6:9.1f} us, sampler {s * 1e6:9.1f} us per step "
                f"-> {chains / s:12.0f} chain-steps/s, ratio {ratio:.3f} ({steps} steps x {args.blocks} blocks)",
                flush=True,
            )
    result = {
        "machine": f"{cpu_name()}, {args.threads} torch thread(s)",
        "device": str(device),
        "torch": torch.__version__,
        "energies": {k: description for k, (_, description) in ENERGIES.items() if k in args.energies},
        "block_seconds": args.block_seconds,
        "blocks": args.blocks,
        "results": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
