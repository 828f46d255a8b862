"""``probrep train vae``: the VAE family on procedural dSprites."""

from __future__ import annotations

import argparse
import sys

from probrep.cli.options import add_training_run, print_files, run_options
from probrep.experiments.vae_family import MODELS, WEIGHTS


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "vae",
        help="train a VAE / beta-VAE / beta-TCVAE / FactorVAE / DIP-VAE-I/II / AnnealedVAE on procedural dSprites",
        description="Train on procedural dSprites; writes checkpoints, loss.png, reconstructions.png, "
        "traversals.png and summary.json into --out.",
    )
    p.add_argument("--model", choices=MODELS, default="vae", help="which member of the VAE family")
    p.add_argument("--beta", type=float, default=None, help="KL weight of the (beta-)VAE (default 4)")
    p.add_argument("--tc-weight", type=float, default=None, help="total-correlation weight of beta-TCVAE (default 6)")
    p.add_argument("--tc-estimator", choices=["mws", "mss"], default="mws",
                   help="beta-TCVAE's TC estimate: minibatch-weighted (default) or -stratified sampling")  # fmt: skip
    p.add_argument("--gamma", type=float, default=10.0, help="TC weight of FactorVAE")
    p.add_argument("--lambda-od", type=float, default=10.0, help="off-diagonal weight of DIP-VAE-I/II")
    p.add_argument("--c-max", type=float, default=25.0, help="final capacity (nats) of the AnnealedVAE")
    p.add_argument("--capacity-weight", type=float, default=1000.0, help="weight of |KL - C| (AnnealedVAE)")
    p.add_argument("--latent-dim", type=int, default=10, help="latent dimensions")
    p.add_argument("--arch", choices=["conv", "mlp"], default="conv", help="encoder/decoder architecture")
    p.add_argument("--steps", type=int, default=1500, help="optimisation steps")
    p.add_argument("--batch-size", type=int, default=64, help="images per step")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    add_training_run(p, checkpoint_every=250)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from probrep.experiments.vae_dsprites import train_vae_on_dsprites  # loads torch and Pyro: only when run

    beta, tc_weight = args.beta, args.tc_weight
    if args.model == "betatcvae" and beta is not None:
        if tc_weight is not None:
            raise ValueError("--beta is the (beta-)VAE's KL weight: give beta-TCVAE's weight as --tc-weight only")
        # earlier versions took beta-TCVAE's weight as --beta; keep that meaning rather than ignore it
        print(f"probrep: note: --beta {beta} with --model betatcvae is read as --tc-weight {beta}", file=sys.stderr)
        beta, tc_weight = None, beta
    outputs = train_vae_on_dsprites(
        args.out,
        model=args.model,
        beta=4.0 if beta is None else beta,
        tc_weight=6.0 if tc_weight is None else tc_weight,
        tc_estimator=args.tc_estimator,
        lambda_od=args.lambda_od,
        c_max=args.c_max,
        capacity_weight=args.capacity_weight,
        gamma=args.gamma,
        latent_dim=args.latent_dim,
        arch=args.arch,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        **run_options(args),
    )
    s = outputs.summary
    weight = f"{WEIGHTS[s['model']]}={s[WEIGHTS[s['model']]]}"
    print(f"\nTrained {s['model']} ({weight}, {s['latent_dim']} latents) for {s['steps']} steps on {s['device']}")
    print(
        f"  training objective per image: {s['loss_first_50_steps_per_image']:.1f} (first 50 steps) -> "
        f"{s['loss_last_50_steps_per_image']:.1f} (last 50); held-out negative ELBO "
        f"{s['held_out_negative_elbo_per_image']:.1f} nats (objective {s['held_out_training_objective_per_image']:.1f})"
    )
    print(f"  active latent dimensions (KL > 0.1 nats): {s['active_dimensions_kl_above_0.1']} of {s['latent_dim']}; "
          f"informative (posterior mean varies across images, variance > 0.01): "
          f"{s['informative_dimensions_mean_variance_above_0.01']}")  # fmt: skip
    if empty := s["kl_dimensions_without_information"]:
        print(f"  note: dimension(s) {empty} carry KL but a posterior that is the same for every image (a shifted "
              "mean, a narrowed scale): that KL encodes nothing about the image")  # fmt: skip
    print(f"  took {s['total_seconds']:.0f} s. Outputs in {outputs.out.resolve()}:")
    print_files(outputs.files)
    return 0
