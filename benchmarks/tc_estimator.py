"""Forward and backward time of beta-TCVAE's total-correlation estimate, probrep's against plain PyTorch.

The reference is the estimate as a user writes it from Chen et al. (2018): the ``[M, M, D]`` log densities from
``torch.distributions.Normal(loc, scale).log_prob`` broadcast over the batch, the stratified weights as an
``[M, M]`` matrix added to them, and ``torch.logsumexp`` for the joint and for each marginal. probrep's
(``minibatch_stratified_sampling``) computes the same numbers (checked here, and against brute force in
``tests/test_vae.py``) in fewer passes over the ``[M, M, D]`` array. Blocks of calls alternate between the two,
on the same draws; the figure is the median time per call.

    python benchmarks/tc_estimator.py [--batch 256 1024] [--blocks 7] [--calls 5]

Writes benchmarks/results/tc_estimator.json and prints the ratios.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from pathlib import Path

import torch
from _machine import cpu_name  # benchmarks run as scripts from this folder

from probrep.io.json_file import write_json
from probrep.models.vae import minibatch_stratified_sampling

LATENT, DATASET = 10, 737_280


def reference(z, loc, scale, n):
    """Minibatch stratified sampling written the plain way: Normal.log_prob, a weight matrix, logsumexp."""
    m = z.shape[0]
    log_w = torch.full((m, m), math.log((n - 1) / (n * (m - 1))), dtype=z.dtype)
    log_w.fill_diagonal_(-math.log(n))
    matrix = torch.distributions.Normal(loc.unsqueeze(0), scale.unsqueeze(0)).log_prob(z.unsqueeze(1))
    log_qz = torch.logsumexp(log_w + matrix.sum(-1), dim=1)
    log_prod_qzd = torch.logsumexp(log_w[..., None] + matrix, dim=1).sum(-1)
    return log_qz, log_prod_qzd


def inputs(m: int, seed: int = 0):
    """Posteriors like a trained beta-TCVAE's: locations spread over the prior, scales from 0.05 to 1."""
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(m, LATENT, generator=g).requires_grad_()
    log_scale = (torch.rand(m, LATENT, generator=g) * math.log(20) - math.log(20)).requires_grad_()
    return loc, log_scale, torch.randn(m, LATENT, generator=g)


def call(estimate, loc, log_scale, eps):
    """The estimate's values and the gradients of the mean total correlation."""
    loc.grad = log_scale.grad = None
    scale = log_scale.exp()
    log_qz, log_prod = estimate(loc + scale * eps, loc, scale, DATASET)
    (log_qz - log_prod).mean().backward()
    return log_qz.detach(), log_prod.detach(), loc.grad, log_scale.grad


def time_block(estimate, tensors, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        call(estimate, *tensors)
    return (time.perf_counter() - started) / calls


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {}
    for m in args.batch:
        tensors = inputs(m)
        ours, theirs = call(minibatch_stratified_sampling, *tensors), call(reference, *tensors)
        error = max(float((a - b).abs().max()) for a, b in zip(ours, theirs))
        if error > 1e-3:
            raise SystemExit(f"batch {m}: the estimates or their gradients differ by {error:.2e}")
        times = {"probrep": [], "plain_torch": []}
        for block in range(args.blocks + 1):  # the first block warms up and is dropped
            for name, estimate in (("probrep", minibatch_stratified_sampling), ("plain_torch", reference)):
                seconds = time_block(estimate, tensors, args.calls)
                if block:
                    times[name].append(seconds)
        median = {name: statistics.median(values) for name, values in times.items()}
        results[str(m)] = {"median_seconds": median, "ratio": median["probrep"] / median["plain_torch"],
                           "max_abs_difference": error, "block_seconds": times}  # fmt: skip
        print(f"batch {m}: probrep {median['probrep'] * 1e3:.1f} ms, plain PyTorch {median['plain_torch'] * 1e3:.1f} "
              f"ms, ratio {results[str(m)]['ratio']:.3f} (values and gradients agree within {error:.1e})")  # fmt: skip
    out = Path(__file__).resolve().parent / "results" / "tc_estimator.json"
    write_json({"machine": f"{cpu_name()}, {os.cpu_count()} cores, {args.threads} torch thread(s)",
                "latent_dim": LATENT, "dataset_size": DATASET, "blocks": args.blocks, "calls_per_block": args.calls,
                "results": results}, out)  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
