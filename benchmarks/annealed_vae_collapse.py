"""Why the study's AnnealedVAE reconstructs the blank image: where its capacity goes.

Trains (or resumes) the study's ``annealed_vae`` configuration with the study's conv recipe (C annealed linearly
from 0 to C_max = 25 nats over the run, gamma 1000, Adam 1e-3, batch 64, 3,000 steps), then measures on 2,000
fresh images, per latent:

- the KL of its posterior to the prior, averaged over images (the study's ``active_latents`` counts KL > 0.1 nats);
- the variance across images of its posterior mean: Burda et al. (2016) call a unit active when this exceeds 0.01.
  A latent whose posterior is the same for every image carries no information about the image, whatever its KL;
- and, per ReLU layer of the encoder, the share of its units that fire for at least one image (0: a dead layer,
  after which the encoder's output no longer depends on the image).

    python benchmarks/annealed_vae_collapse.py [--seed 0] [--threads 1] [--capacity-weight 100]

Writes ``benchmarks/results/annealed_vae_collapse.json``; the run folder is ``runs/annealed_vae_collapse-seed<k>/``
(resumable: run it again after an interruption).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def where_the_capacity_goes(model, n: int = 2000, seed: int = 0) -> dict:
    """Over ``n`` images drawn from all of dSprites: each latent's KL and the variance of its posterior mean, each
    encoder ReLU layer's units that fire for at least one image (firing / all), and the negative ELBO."""
    import numpy as np
    import torch

    from probrep.data import DSprites
    from probrep.experiments.vae_dsprites import negative_elbo
    from probrep.models.vae import kl_to_standard_normal
    from probrep.training.rng import forked

    sprites = DSprites()
    device = next(model.parameters()).device
    x = torch.from_numpy(sprites.render(sprites.sample_factors(n, np.random.default_rng(10_000 + seed)))).to(device)
    firing = {}  # a layer none of whose units fires for any image is dead: what follows it sees no image

    def count(name: str, out: torch.Tensor) -> None:
        fired = (out.flatten(1) > 0).any(0)
        firing[name] = f"{int(fired.sum())} / {fired.numel()}"

    hooks = [module.register_forward_hook(lambda _m, _i, out, name=name: count(name, out))
             for name, module in model.encoder.named_modules() if isinstance(module, torch.nn.ReLU)]  # fmt: skip
    try:
        with torch.no_grad():  # one pass of the encoder gives every per-latent measure
            loc, scale = model.posterior(x)
    finally:
        for hook in hooks:
            hook.remove()
    variance = loc.var(0)  # as VAE.posterior_mean_variance
    kl = kl_to_standard_normal(loc, scale, reduce=False).mean(0)  # as VAE.kl_per_dimension, averaged over images
    with torch.no_grad(), forked(seed, device):  # the ELBO's draws of z
        nelbo = float(negative_elbo(model, x).mean())
    return {
        "images": n,
        "kl_per_latent_nats": [round(float(v), 4) for v in kl],
        "kl_total_nats": round(float(kl.sum()), 3),
        "posterior_mean_variance_per_latent": [float(f"{float(v):.3g}") for v in variance],
        "posterior_mean_per_latent": [round(float(v), 3) for v in loc.mean(0)],
        "latents_active_kl_above_0.1": int((kl > 0.1).sum()),
        "latents_informative_mean_variance_above_0.01": int((variance > 0.01).sum()),
        "encoder_relu_units_that_fire": firing,
        "negative_elbo_nats": round(nelbo, 2),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--capacity-weight", type=float, default=None,
                        help="gamma, the weight of |KL - C| (default: the study's); another value trains its own run "
                        "and writes annealed_vae_collapse_gamma<value>.json")  # fmt: skip
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    from _machine import cpu_name
    from disentanglement_study import CONFIGS, RECIPES

    from probrep.experiments.vae_dsprites import train_vae_on_dsprites
    from probrep.io.json_file import write_json

    torch.set_num_threads(args.threads)
    config, recipe = dict(CONFIGS["annealed_vae"]), RECIPES["conv"]
    weight = config["capacity_weight"] if args.capacity_weight is None else args.capacity_weight
    suffix = "" if weight == config["capacity_weight"] else f"_gamma{weight:g}"  # the study's run keeps its name
    config["capacity_weight"] = weight
    run = train_vae_on_dsprites(
        ROOT / "runs" / f"annealed_vae_collapse{suffix}-seed{args.seed}", **config, capacity_steps=recipe["steps"],
        arch=recipe["arch"], steps=recipe["steps"], batch_size=recipe["batch_size"], lr=recipe["lr"], seed=args.seed,
        device="cpu", resume=True, progress=True,
    )  # fmt: skip
    found = where_the_capacity_goes(run.model.eval(), seed=args.seed)
    trained_with = {key: recipe[key] for key in ("arch", "batch_size", "lr", "steps")}
    out = {"config": {**config, "capacity_steps": recipe["steps"], **trained_with, "seed": args.seed},
           "machine": cpu_name(), **found}  # fmt: skip
    path = write_json(out, RESULTS / f"annealed_vae_collapse{suffix}.json")
    print(f"KL {found['kl_total_nats']} nats, {found['latents_active_kl_above_0.1']} latents with KL > 0.1; "
          f"{found['latents_informative_mean_variance_above_0.01']} whose posterior mean varies across images "
          "(variance > 0.01); "
          f"negative ELBO {found['negative_elbo_nats']} nats; encoder ReLU units that fire, by layer: "
          f"{found['encoder_relu_units_that_fire']}. Written: {path}")  # fmt: skip


if __name__ == "__main__":
    main()
