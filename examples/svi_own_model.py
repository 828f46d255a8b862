"""Fit your own Pyro program with probrep's SVI loop: an autoguide, checkpoints, and resume.

    python examples/svi_own_model.py

A Bayesian linear regression written as a plain Pyro program; svi.fit finds the parameters the program and
its autoguide register, trains them, and writes resumable checkpoints. The exact posterior is known in closed
form here, so the script prints both.
"""

import tempfile

import pyro
import pyro.distributions as dist
import torch
from pyro.infer.autoguide import AutoMultivariateNormal

from probrep.inference import svi


def model(x, y):
    w = pyro.sample("w", dist.Normal(torch.zeros(2), 10.0).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(w[0] + w[1] * x, 0.5), obs=y)


def main() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, generator=g)
    y = 1.0 - 2.0 * x + 0.5 * torch.randn(200, generator=g)
    guide = AutoMultivariateNormal(model)
    with tempfile.TemporaryDirectory() as ckpt:
        fit = svi.fit(model, (x, y), guide=guide, steps=2000, batch_size=200, lr=0.02, checkpoint_dir=ckpt,
                      checkpoint_every=500, progress=False)  # fmt: skip
        print(f"final loss {fit.losses[-1]:.1f}; last checkpoint {fit.checkpoint.name}")
    design = torch.stack([torch.ones_like(x), x], 1)
    precision = design.T @ design / 0.25 + torch.eye(2) / 100.0
    exact_mean = torch.linalg.solve(precision, design.T @ y / 0.25)
    print("posterior mean, SVI  :", guide.loc.detach().numpy().round(3))
    print("posterior mean, exact:", exact_mean.numpy().round(3))


if __name__ == "__main__":
    main()
