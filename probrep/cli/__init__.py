"""The ``probrep`` command: ``probrep --help``.

Subcommands: ``info`` (devices), ``train vae`` (the VAE family on procedural dSprites), ``demo`` (the flagship
pipeline behind ``make demo``). Later capabilities add their own subcommands here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from probrep import __version__
from probrep.cli import more as cli_more


def _add_train_vae(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "vae",
        help="train a VAE / beta-VAE / beta-TCVAE / FactorVAE on procedural dSprites",
        description="Train on procedural dSprites; writes checkpoints, loss.png, reconstructions.png, "
        "traversals.png and summary.json into --out.",
    )
    p.add_argument("--model", choices=["vae", "betatcvae", "factorvae"], default="vae")
    p.add_argument("--beta", type=float, default=4.0, help="KL weight (beta-VAE) or TC weight (beta-TCVAE)")
    p.add_argument("--gamma", type=float, default=10.0, help="TC weight of FactorVAE")
    p.add_argument("--latent-dim", type=int, default=10)
    p.add_argument("--arch", choices=["conv", "mlp"], default="conv")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="probrep",
        description="probrep: learn representations without labels (VAEs, AIR, GQN, SCMs, MCMC).",
    )
    parser.add_argument("--version", action="version", version=f"probrep {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("info", help="show versions and the devices torch and JAX will use")
    train = sub.add_parser("train", help="train a model")
    train_sub = train.add_subparsers(dest="model_family", metavar="MODEL", required=True)
    _add_train_vae(train_sub)
    cli_more.add_train_air(train_sub)
    cli_more.add_train_gqn(train_sub)
    cli_more.add_mcmc(sub)
    scm = sub.add_parser("scm", help="structural causal models from a JSON file")
    scm_sub = scm.add_subparsers(dest="scm_command", metavar="ACTION", required=True)
    sample = scm_sub.add_parser("sample", help="sample an SCM (optionally intervened) to CSV")
    sample.add_argument("file", help='JSON: {"format": 1, "nodes": [{"name": "X", "equation": "..."}, ...]}')
    sample.add_argument("--n", type=int, default=1000)
    sample.add_argument("--do", action="append", default=[], metavar="NODE=VALUE",
                        help="a number (hard), or an equation such as 'X+1' or 'Normal(3,1)'")  # fmt: skip
    sample.add_argument("--backend", choices=["numpyro", "pyro", "numpy"], default="numpyro")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", required=True, help="CSV file to write")
    graph = scm_sub.add_parser("graph", help="draw the causal graph as PNG")
    graph.add_argument("file")
    graph.add_argument("--out", required=True)
    ev = sub.add_parser("evaluate", help="score a trained run: IRS and the disentanglement metrics")
    ev.add_argument("--checkpoint", required=True, metavar="DIR", help="a folder written by 'probrep train vae'")
    ev.add_argument("--metrics", default="irs,irs_interventional,mig,dci,factor_vae",
                    help="comma-separated: irs, irs_interventional, mig, dci, sap, factor_vae, beta_vae, modularity, "
                    "gaussian_tc, or 'all'")  # fmt: skip
    ev.add_argument("--num-points", type=int, default=10_000)
    ev.add_argument("--votes", type=int, nargs=2, default=[10_000, 5_000], metavar=("TRAIN", "EVAL"),
                    help="votes of the FactorVAE / BetaVAE score protocols")  # fmt: skip
    ev.add_argument("--device", default="auto")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--no-progress", action="store_true")
    demo = sub.add_parser(
        "demo", help="the flagship pipeline: VAE vs beta-VAE on procedural dSprites, scored by IRS, MIG, DCI, ..."
    )
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--steps", type=int, default=1500)
    demo.add_argument("--device", default="auto")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-progress", action="store_true")
    return parser


def _report(outputs) -> None:
    s = outputs.summary
    print(
        f"\nTrained {s['model']} (beta={s['beta']}, {s['latent_dim']} latents) for {s['steps']} steps on {s['device']}"
    )
    print(
        f"  loss per image: {s['loss_first_50_steps_per_image']:.1f} (first 50 steps) -> "
        f"{s['loss_last_50_steps_per_image']:.1f} (last 50); held-out negative ELBO "
        f"{s['held_out_negative_elbo_per_image']:.1f} nats"
    )
    print(f"  active latent dimensions (KL > 0.1 nats): {s['active_dimensions_kl_above_0.1']} of {s['latent_dim']}")
    print(f"  took {s['total_seconds']:.0f} s. Outputs in {outputs.out.resolve()}:")
    for name, path in outputs.files.items():
        print(f"    {name:16s} {path}")


def _evaluate(args: argparse.Namespace) -> int:
    from probrep.device import resolve_device
    from probrep.experiments.evaluate import ALL_METRICS, encoder_fn, evaluate, headline, load_run
    from probrep.io import figures as reports

    metrics = (
        ALL_METRICS if args.metrics.strip() == "all" else [m.strip() for m in args.metrics.split(",") if m.strip()]
    )
    model, summary = load_run(args.checkpoint)
    device = resolve_device(args.device)
    model.to(device)
    result = evaluate(
        encoder_fn(model, device),
        metrics,
        num_points=args.num_points,
        vote_sizes=tuple(args.votes),
        seed=args.seed,
        progress=not args.no_progress,
    )
    path = reports.write_json(
        {"run": summary, "scores": result.scores, "seconds": result.seconds}, f"{args.checkpoint}/metrics.json"
    )
    for name, value in headline(result.scores).items():
        print(f"{name:24s} {value:8.3f}")
    print("seconds: " + ", ".join(f"{name} {sec:.1f}" for name, sec in result.seconds.items()))
    print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        if args.command == "info":
            from probrep.device import describe

            for key, value in describe().items():
                print(f"{key:18s} {value}")
            return 0
        if args.command == "mcmc":
            return cli_more.run_mcmc(args)
        if args.command == "train" and args.model_family == "air":
            return cli_more.train_air(args)
        if args.command == "train" and args.model_family == "gqn":
            return cli_more.train_gqn(args)
        if args.command == "train":
            from probrep.experiments.vae_dsprites import train_vae_on_dsprites

            outputs = train_vae_on_dsprites(
                args.out,
                model=args.model,
                beta=args.beta,
                gamma=args.gamma,
                latent_dim=args.latent_dim,
                arch=args.arch,
                steps=args.steps,
                batch_size=args.batch_size,
                lr=args.lr,
                device=args.device,
                seed=args.seed,
                resume=args.resume,
                checkpoint_every=args.checkpoint_every,
                progress=not args.no_progress,
            )
            _report(outputs)
            return 0
        if args.command == "scm":
            from probrep.cli import scm as scm_cli

            return scm_cli.run(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "demo":
            from probrep.experiments.evaluate import demo

            print("probrep demo: does a VAE learn, without labels, factors that stay put under interventions?")
            demo(args.out, steps=args.steps, device=args.device, seed=args.seed, progress=not args.no_progress)
            return 0
    except (ValueError, TypeError, FileNotFoundError, OSError) as exc:
        print(f"probrep: error: {exc}", file=sys.stderr)
        return 2
    parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
