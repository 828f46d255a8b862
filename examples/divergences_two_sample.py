"""Comparing distributions from samples: a two-sample test, IPMs, a critic-based divergence estimate, and the
kernel Stein discrepancy as a check on MCMC output.

    python examples/divergences_two_sample.py [--n 2000] [--seed 0]

Prints each number next to what it should be; about 25 CPU seconds.
"""

from __future__ import annotations

import argparse
import math

import torch

from probrep import divergences as dv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    n, d = args.n, 5

    # 1. Same mean and covariance, different shape: N(0, I) against a unit-variance Student-t (3 dof).
    x = torch.randn(n, d, generator=g)
    t = torch.distributions.StudentT(3.0).sample((n, d)) / math.sqrt(3.0)
    same = torch.randn(n, d, generator=g)
    for label, y in (("N(0, I) vs N(0, I)     ", same), ("N(0, I) vs Student-t(3)", t)):
        test = dv.mmd_permutation_test(x, y, num_permutations=300, seed=args.seed)  # median-heuristic RBF
        print(
            f"{label}: MMD^2 {test.statistic:+.5f} (p = {test.p_value:.3f}), energy distance^2 "
            f"{float(dv.energy_distance(x, y, unbiased=True)):+.4f}, sliced W2 {float(dv.sliced_wasserstein(x, y)):.4f}"
        )

    # 2. KL between two Gaussians three ways: closed form, Monte Carlo with both densities, and a trained critic.
    shift = torch.full((d,), 0.3)
    p, q = torch.distributions.Normal(shift, 1.0), torch.distributions.Normal(torch.zeros(d), 1.2)
    xq = q.sample((20_000,))
    closed = float(dv.gaussian_kl(shift, 1.0, torch.zeros(d), 1.44))
    mc = dv.monte_carlo_divergence(p.log_prob(xq).sum(1), q.log_prob(xq).sum(1), "kl")
    critic = dv.estimate_divergence(p.sample((20_000,)), xq, "kl", steps=1500, device="cpu", progress=False)
    print(f"KL(P||Q): closed form {closed:.4f}, Monte Carlo {mc.value:.4f} +- {mc.stderr:.4f}, ", end="")
    print(f"critic (held out) {critic.value:.4f} +- {critic.stderr:.4f}")

    # 3. Checking samplers against a target known up to a constant: N(0, Sigma), score -Sigma^-1 x.
    sigma = torch.tensor([[1.0, 0.8], [0.8, 1.0]])
    prec = torch.linalg.inv(sigma)

    def score(z):
        return -z @ prec

    def ula(step: float, steps: int = 500, chains: int = 1000) -> torch.Tensor:
        """Unadjusted Langevin: biased for any finite step (its stationary law is too wide)."""
        z = torch.randn(chains, 2, generator=g)
        for _ in range(steps):
            z = z + step * score(z) + math.sqrt(2 * step) * torch.randn(chains, 2, generator=g)
        return z

    exact = torch.randn(1000, 2, generator=g) @ torch.linalg.cholesky(sigma).T
    # ULA's bias grows with the step (stable below 2 / 5, the largest eigenvalue of the precision)
    for label, draws in (("exact draws  ", exact), ("ULA step 0.02", ula(0.02)), ("ULA step 0.2 ", ula(0.2))):
        print(f"{label}: KSD^2 = {float(dv.ksd2(draws, score)):+.5f}")


if __name__ == "__main__":
    main()
