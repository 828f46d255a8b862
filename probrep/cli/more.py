"""Subcommands of ``probrep`` for AIR, GQN and MCMC (kept apart from cli.py so each file holds one idea)."""

from __future__ import annotations

import argparse


def add_train_air(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "air",
        help="train Attend-Infer-Repeat on procedural multi-object scenes",
        description="Train AIR on procedural scenes; writes checkpoints, loss.png, count_accuracy.png/.json, "
        "reconstructions.png (inferred windows drawn) and summary.json into --out.",
    )
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--baseline-lr", type=float, default=1e-2)
    p.add_argument("--z-pres-prior", type=float, default=0.01, help="k of the count prior P(n) ~ k^n")
    p.add_argument("--z-pres-prior-final", type=float, default=None, help="anneal k to this value ...")
    p.add_argument("--anneal-steps", type=int, default=None, help="... over this many steps")
    p.add_argument("--num-steps", type=int, default=3, help="most objects the model explains")
    p.add_argument(
        "--guide-input",
        choices=["residual", "image"],
        default="residual",
        help="residual: each step reads what earlier steps left unexplained (Difference AIR); image: the whole "
        "image at every step (original AIR)",
    )
    p.add_argument("--max-objects", type=int, default=2, choices=[1, 2, 3])
    p.add_argument("--tier", choices=["standard", "small"], default="standard")
    p.add_argument("--n-train", type=int, default=20000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")


def train_air(args: argparse.Namespace) -> int:
    from probrep.experiments.air import train_air as run

    out = run(
        args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr, baseline_lr=args.baseline_lr,
        z_pres_prior=args.z_pres_prior, z_pres_prior_final=args.z_pres_prior_final, anneal_steps=args.anneal_steps,
        num_steps=args.num_steps, guide_input=args.guide_input, max_objects=args.max_objects, tier=args.tier,
        n_train=args.n_train,
        n_test=args.n_test, eval_every=args.eval_every, device=args.device, seed=args.seed, resume=args.resume,
        checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
    )  # fmt: skip
    s = out.summary
    print(f"\nTrained AIR for {s['steps']} steps on {s['device']}: held-out count accuracy "
          f"{s['count_accuracy']:.3f} (best {s['best_count_accuracy']:.3f})")  # fmt: skip
    print(f"  confusion (rows: true count, columns: inferred): {s['count_confusion']}")
    print(f"  took {s['total_seconds']:.0f} s. Outputs in {out.out.resolve()}:")
    for name, path in out.files.items():
        print(f"    {name:24s} {path}")
    return 0


def add_train_gqn(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gqn",
        help="train a Generative Query Network on procedural 3-D rooms",
        description="Train a GQN on ray-cast rooms; writes checkpoints, loss.png, predictions.png, samples.png and "
        "summary.json (held-out ELBO, bits/dim, novel-view MSE vs the context-mean baseline) into --out.",
    )
    p.add_argument("--tier", choices=["small", "paper"], default="small", help="small: 32x32, CPU; paper: 64x64")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=None, help="default: 16 (small), 36 (paper)")
    p.add_argument("--lr", type=float, default=None, help="start of the linear annealing (small 1e-3, paper 5e-4)")
    p.add_argument("--lr-end", type=float, default=None)
    p.add_argument("--sigma-start", type=float, default=2.0)
    p.add_argument("--sigma-end", type=float, default=0.7)
    p.add_argument("--anneal-steps", type=int, default=None, help="default: the whole run")
    p.add_argument("--representation", choices=["tower", "pool", "pyramid"], default=None)
    p.add_argument("--draw-steps", type=int, default=None, help="L (small 4, paper 12)")
    p.add_argument("--train-scenes", type=int, default=4000)
    p.add_argument("--test-scenes", type=int, default=256)
    p.add_argument("--checkpoint-steps", action="store_true", help="activation checkpointing per DRAW step")
    p.add_argument("--render-on-the-fly", action="store_true", help="render each batch instead of once up front")
    p.add_argument("--eval-every", type=int, default=None, help="record the held-out probe MSE every N steps")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")


def train_gqn(args: argparse.Namespace) -> int:
    from probrep.experiments.gqn import train_gqn as run

    out = run(
        args.out, tier=args.tier, steps=args.steps, batch_size=args.batch_size, lr=args.lr, lr_end=args.lr_end,
        sigma_start=args.sigma_start, sigma_end=args.sigma_end, anneal_steps=args.anneal_steps,
        train_scenes=args.train_scenes, test_scenes=args.test_scenes, representation=args.representation,
        draw_steps=args.draw_steps, checkpoint_steps=args.checkpoint_steps,
        render_on_the_fly=args.render_on_the_fly, eval_every=args.eval_every, device=args.device, seed=args.seed,
        resume=args.resume, checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
    )  # fmt: skip
    s, t = out.summary, out.summary["test"]
    print(f"\nTrained GQN ({s['tier']} tier) for {s['steps']} steps on {s['device']} in {s['train_seconds']:.0f} s")
    print(f"  test negative ELBO {s['test_before_training']['negative_elbo_per_image']:.1f} -> "
          f"{t['negative_elbo_per_image']:.1f} nats/image ({t['bits_per_dim']:.4f} bits/dim)")  # fmt: skip
    print(f"  novel-view MSE {t['mse']:.5f} vs context mean {t['baseline_mse']:.5f} (ratio {t['mse_ratio']:.3f})")
    for name, path in out.files.items():
        print(f"    {name:16s} {path}")
    return 0


def add_mcmc(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mcmc",
        help="sample posteriordb posteriors with NUTS / HMC / MALA / ULA and validate them against reference draws",
        description="For each posterior: run mcmc.sample, print R-hat / ESS / divergences / timing, and the "
        "z-score validation of every parameter's mean and sd against the reference draws.",
    )
    p.add_argument("posteriors", nargs="*", help="posteriordb names (default: all available)")
    p.add_argument("--kernel", choices=["nuts", "hmc", "mala", "ula"], default="nuts")
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--chain-method", choices=["sequential", "vectorized", "parallel"], default="sequential")
    p.add_argument("--dense-mass", action="store_true", help="dense inverse mass matrix")
    p.add_argument("--float32", action="store_true", help="single precision (default: float64, as Stan)")
    p.add_argument(
        "--posteriordb", default=None, help="folder (default: $PROBREP_POSTERIORDB or ../shared/posteriordb)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")


def run_mcmc(args: argparse.Namespace) -> int:
    import jax

    from probrep.data import posteriordb
    from probrep.inference import mcmc

    jax.config.update("jax_enable_x64", not args.float32)
    names = args.posteriors or posteriordb.available(args.posteriordb)
    failed = 0
    for name in names:
        post = posteriordb.load(name, args.posteriordb)
        idata = mcmc.sample(
            post.model, kernel=args.kernel, num_warmup=args.warmup, num_samples=args.samples,
            num_chains=args.chains, chain_method=args.chain_method, seed=args.seed, progress=not args.no_progress,
            kernel_kwargs={"dense_mass": True} if args.dense_mass else None, **post.model_kwargs,
        )  # fmt: skip
        report = posteriordb.validate(idata, post)
        print(f"\n== {name} ({args.kernel})")
        mcmc.print_summary(idata)
        print(report.table())
        failed += not report.passed
    print(f"\n{len(names) - failed}/{len(names)} posteriors agree with the reference draws")
    return 1 if failed else 0
