"""``probrep train air``: Attend-Infer-Repeat on procedural multi-object scenes."""

from __future__ import annotations

import argparse

from probrep.cli.options import add_training_run, print_files, run_options


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "air",
        help="train Attend-Infer-Repeat on procedural multi-object scenes",
        description="Train AIR on procedural scenes; writes checkpoints, loss.png, count_accuracy.png/.json, "
        "reconstructions.png (inferred windows drawn) and summary.json into --out.",
    )
    p.add_argument("--steps", type=int, default=5000, help="optimisation steps")
    p.add_argument("--batch-size", type=int, default=64, help="scenes per step")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    p.add_argument("--baseline-lr", type=float, default=1e-2, help="learning rate of the neural baselines")
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
    p.add_argument("--max-objects", type=int, default=2, choices=[1, 2, 3], help="most objects in a scene")
    p.add_argument(
        "--tier", choices=["standard", "small"], default="standard", help="scene size: standard 50x50, small for tests"
    )
    p.add_argument("--n-train", type=int, default=20000, help="training scenes")
    p.add_argument("--n-test", type=int, default=1000, help="held-out scenes")
    p.add_argument("--eval-every", type=int, default=250, help="held-out count accuracy every this many steps")
    add_training_run(p, checkpoint_every=500)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from probrep.experiments.air import train_air

    out = train_air(
        args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr, baseline_lr=args.baseline_lr,
        z_pres_prior=args.z_pres_prior, z_pres_prior_final=args.z_pres_prior_final, anneal_steps=args.anneal_steps,
        num_steps=args.num_steps, guide_input=args.guide_input, max_objects=args.max_objects, tier=args.tier,
        n_train=args.n_train,
        n_test=args.n_test, eval_every=args.eval_every, **run_options(args),
    )  # fmt: skip
    s = out.summary
    print(f"\nTrained AIR for {s['steps']} steps on {s['device']}: held-out count accuracy "
          f"{s['count_accuracy']:.3f} (best {s['best_count_accuracy']:.3f})")  # fmt: skip
    print(f"  confusion (rows: true count, columns: inferred): {s['count_confusion']}")
    print(f"  took {s['total_seconds']:.0f} s. Outputs in {out.out.resolve()}:")
    print_files(out.files, width=24)
    return 0
