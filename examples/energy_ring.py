"""Train an energy model on a 2-D ring by score matching, then sample it with MALA.

    python examples/energy_ring.py [--steps 3000] [--out runs/energy_ring]

An MLP energy E(x) (p(x) ~ exp(-E(x))) is fitted by denoising score matching with a small noise level, with no
partition function anywhere. The learned density (normalised on a grid for the plot only) and 2,000 MALA chains
run in one batched call are drawn next to the data.
"""

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from probrep.inference.langevin import langevin  # noqa: E402
from probrep.inference.score_matching import fit_score_model  # noqa: E402
from probrep.io.figures import save_figure  # noqa: E402
from probrep.models.ebm import MLPEnergy  # noqa: E402


def ring(n: int, generator: torch.Generator, radius: float = 3.0, width: float = 0.25) -> torch.Tensor:
    angle = torch.rand(n, generator=generator) * 2 * math.pi
    r = radius + width * torch.randn(n, generator=generator)
    return torch.stack([r * angle.cos(), r * angle.sin()], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", default="runs/energy_ring")
    args = parser.parse_args()

    data = ring(20_000, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    energy = MLPEnergy(2, hidden=(128, 128))
    fit_score_model(energy, data, objective="denoising", sigma=0.1, steps=args.steps, batch_size=256, lr=1e-3,
                    device="cpu")  # fmt: skip
    energy.eval()
    for p in energy.parameters():
        p.requires_grad_(False)

    x0 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1)) * 3
    result = langevin(energy, x0, steps=500, num_warmup=500, seed=0)
    samples = result.samples[-1]
    radius = samples.norm(dim=1)
    print(f"MALA: acceptance {result.accept_rate.mean():.3f}, radius of samples {radius.mean():.2f} +- "
          f"{radius.std():.2f} (data: 3.00 +- 0.25)")  # fmt: skip

    grid = torch.linspace(-5, 5, 200)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    with torch.no_grad():
        log_p = -energy(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)).reshape(200, 200)
    density = (log_p - log_p.max()).exp()
    density /= density.sum() * (grid[1] - grid[0]) ** 2
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
    axes[0].scatter(data[:2000, 0], data[:2000, 1], s=2, alpha=0.4)
    axes[0].set_title("data")
    axes[1].imshow(density, extent=(-5, 5, -5, 5), origin="lower", cmap="magma")
    axes[1].set_title("learned density exp(-E)")
    axes[2].scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, color="C1")
    axes[2].set_title("MALA samples of the energy model")
    path = save_figure(fig, Path(args.out) / "energy_ring.png")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
