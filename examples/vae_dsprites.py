"""Train a beta-VAE (or beta-TCVAE / FactorVAE) on procedural dSprites and look at what it learned.

    python examples/vae_dsprites.py [--model betatcvae] [--steps 1500] [--out runs/vae_example]

The data is rendered batch by batch from the dSprites factor grid, so nothing is downloaded or held in memory.
Interrupt it and run it again with --resume: it continues from the last checkpoint and ends with the same
parameters as an uninterrupted run.
"""

import argparse

import numpy as np
import torch

from probrep.data import DSprites
from probrep.experiments.vae_dsprites import train_vae_on_dsprites


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vae", choices=["vae", "betatcvae", "factorvae"])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", default="runs/vae_example")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    run = train_vae_on_dsprites(args.out, model=args.model, beta=4.0, steps=args.steps, resume=args.resume)
    print({k: str(v) for k, v in run.files.items()})

    # Which latent dimension tracks which factor? Correlate codes with the true factor classes.
    from probrep.experiments.vae_dsprites import build_model
    from probrep.training import checkpoint

    ds = DSprites()
    model = build_model(args.model, 10, beta=4.0, dataset_size=len(ds))
    model.load_state_dict(checkpoint.load(run.files["checkpoint"])["module"])
    classes = ds.sample_factors(2000, rng=0)
    codes = model.encode(torch.from_numpy(ds.render(classes))).numpy()
    for f, name in enumerate(ds.factor_names[1:], start=1):
        corr = [abs(np.corrcoef(codes[:, d], classes[:, f])[0, 1]) for d in range(codes.shape[1])]
        best = int(np.nanargmax(corr))
        print(f"{name:12s} best-matching latent z{best} |corr| = {np.nanmax(corr):.2f}")


if __name__ == "__main__":
    main()
