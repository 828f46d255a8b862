"""f-GAN on a 2-D ring of eight Gaussians, one generator per f-divergence of the table (Nowozin et al. 2016).

Each run trains a small generator (noise 8 -> 128 -> 128 -> 2) against a critic (2 -> 128 -> 128 -> 1) with the
variational bound of its f as the critic's objective and Nowozin's non-saturating generator loss, single-step
alternation, Adam (betas 0.5, 0.999). The title of each panel gives the MMD^2 (RBF, bandwidth 0.5) between 2,000
generated and 2,000 held-out data points, with a permutation-test p-value: a number to go with the picture.

Any name of the table works (``--f kl,pearson``), but not all train equally in this small, untuned setting;
the default learning rate of each f (``LEARNING_RATES``) is the better of 1e-3 and 3e-4 for it at 1500 steps.

    python examples/fgan_ring.py [--f jensen_shannon,squared_hellinger,reverse_kl] [--steps 1500] [--lr 1e-3]

About 25 CPU seconds with the defaults (one thread each).
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from probrep import divergences as dv
from probrep.io.figures import save_figure

LEARNING_RATES = {"jensen_shannon": 1e-3, "gan": 1e-3, "squared_hellinger": 1e-3}  # others: 3e-4


def ring(n: int, seed: int, modes: int = 8, radius: float = 2.0, sd: float = 0.1) -> torch.Tensor:
    """n points from an equal mixture of ``modes`` Gaussians on a circle."""
    g = torch.Generator().manual_seed(seed)
    angle = 2 * math.pi * torch.randint(modes, (n,), generator=g) / modes
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return centres + sd * torch.randn(n, 2, generator=g)


def generator(noise_dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(noise_dim, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--f", default="jensen_shannon,squared_hellinger,reverse_kl", help="comma-separated names")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=None, help="one rate for all (default: per f, see above)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (tiny networks run best on one)")
    parser.add_argument("--out", default="runs/fgan_ring.png")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.f.split(",") if n.strip()]
    for name in names:
        dv.get_f_divergence(name)  # fail before any training on an unknown name
    data, held_out = ring(20_000, args.seed), ring(2_000, args.seed + 1)
    noise_dim = 8

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        torch.manual_seed(args.seed)
        gen = generator(noise_dim)
        start = time.perf_counter()
        lr = args.lr or LEARNING_RATES.get(name, 3e-4)
        dv.train_fgan(
            data, gen, noise_dim, name, steps=args.steps, lr=lr, critic_lr=lr, device=args.device, seed=args.seed,
            progress=True,
        )  # fmt: skip
        with torch.no_grad():
            samples = gen(torch.randn(2_000, noise_dim, generator=torch.Generator().manual_seed(99))).cpu()
        test = dv.mmd_permutation_test(samples, held_out, "rbf", 0.5, num_permutations=200, seed=0)
        print(
            f"{name}: {time.perf_counter() - start:.1f} s, MMD^2(generated, data) = {test.statistic:.4f} "
            f"(permutation p = {test.p_value:.3f})"
        )
        ax.scatter(held_out[:, 0], held_out[:, 1], s=2, color="0.7", label="data")
        ax.scatter(samples[:, 0], samples[:, 1], s=2, color="C3", alpha=0.5, label="generator")
        ax.set_title(f"{name} (lr {lr:g})\nMMD$^2$ {test.statistic:.4f}, p = {test.p_value:.3f}", fontsize=9)
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].legend(loc="lower left", fontsize=7, markerscale=4)
    fig.suptitle(f"f-GAN on a ring of 8 Gaussians ({args.steps} steps each)")
    print(f"wrote {save_figure(fig, args.out)}")


if __name__ == "__main__":
    main()
