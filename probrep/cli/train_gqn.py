"""``probrep train gqn``: a Generative Query Network on procedural 3-D rooms."""

from __future__ import annotations

import argparse

from probrep.cli.options import add_training_run, print_files, run_options


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gqn",
        help="train a Generative Query Network on procedural 3-D rooms",
        description="Train a GQN on ray-cast rooms; writes checkpoints, loss.png, predictions.png, samples.png and "
        "summary.json (held-out ELBO, bits/dim, novel-view MSE vs the context-mean baseline) into --out, and with "
        "--eval-every probe_mse.json / probe_mse.png (the probe MSE, sigma and the live share of the representation "
        "against steps).",
    )
    p.add_argument(
        "--tier",
        choices=["small", "one_object", "four_walls", "two_colour_walls", "hidden_object", "paper"],
        default="small",
        help="small: 32x32 rooms with 1-2 objects in 4 colours, for a CPU; one_object: the same with one object "
        "and fixed walls and floor; four_walls: one object, each wall its own colour; two_colour_walls: the same, "
        "each wall sand or steel; hidden_object: one object that a 30 degree view often misses; paper: 64x64, for a "
        "GPU",
    )
    p.add_argument("--steps", type=int, default=3000, help="optimisation steps")
    p.add_argument("--batch-size", type=int, default=None, help="default: 16 (small), 36 (paper)")
    p.add_argument("--lr", type=float, default=None, help="start of the linear annealing (small 1e-3, paper 5e-4)")
    p.add_argument(
        "--lr-end", type=float, default=None, help="end of the learning-rate annealing (small 1e-4, paper 5e-5)"
    )
    p.add_argument("--sigma-start", type=float, default=None, help="pixel sigma at the start (small and paper 2.0)")
    p.add_argument(
        "--sigma-end", type=float, default=None, help="pixel sigma at the end of the annealing (small 0.25, paper 0.7)"
    )
    p.add_argument(
        "--sigma-schedule", choices=["linear", "exponential"], default=None,
        help="how sigma anneals (small: exponential, paper: linear)",
    )  # fmt: skip
    p.add_argument("--anneal-steps", type=int, default=None, help="default: the whole run")
    p.add_argument(
        "--representation",
        choices=["tower", "pool", "pyramid"],
        default=None,
        help="representation network (default: the tier's)",
    )
    p.add_argument(
        "--representation-output", choices=["relu", "linear"], default=None,
        help="what ends the representation network: relu (the paper's, the default) or linear, which cannot die "
        "(the README's two_colour_walls runs that meet every target use linear with --sigma-end 0.35)",
    )  # fmt: skip
    p.add_argument("--draw-steps", type=int, default=None, help="L (small 4, paper 12)")
    p.add_argument("--train-scenes", type=int, default=4000, help="training scenes")
    p.add_argument("--test-scenes", type=int, default=256, help="held-out scenes")
    p.add_argument(
        "--max-context", type=int, default=None, help="most context views per training batch (default: views - 1)"
    )
    p.add_argument("--checkpoint-steps", action="store_true", help="activation checkpointing per DRAW step")
    p.add_argument("--render-on-the-fly", action="store_true", help="render each batch instead of once up front")
    p.add_argument(
        "--eval-every", type=int, default=None, help="record the held-out probe MSE every N steps (probe_mse.png)"
    )
    add_training_run(p, checkpoint_every=250)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from probrep.experiments.gqn import train_gqn
    from probrep.experiments.gqn_scores import with_interval

    out = train_gqn(
        args.out, tier=args.tier, steps=args.steps, batch_size=args.batch_size, lr=args.lr, lr_end=args.lr_end,
        sigma_start=args.sigma_start, sigma_end=args.sigma_end, sigma_schedule=args.sigma_schedule,
        anneal_steps=args.anneal_steps,
        train_scenes=args.train_scenes, test_scenes=args.test_scenes, representation=args.representation,
        draw_steps=args.draw_steps, max_context=args.max_context, checkpoint_steps=args.checkpoint_steps,
        render_on_the_fly=args.render_on_the_fly, eval_every=args.eval_every,
        model_options=None if args.representation_output is None else {
            "representation_output": args.representation_output},
        **run_options(args),
    )  # fmt: skip
    s, t = out.summary, out.summary["test"]
    print(f"\nTrained GQN ({s['tier']} tier) for {s['steps']} steps on {s['device']} in {s['train_seconds']:.0f} s")
    print(f"  test negative ELBO {s['test_before_training']['negative_elbo_per_image']:.1f} -> "
          f"{t['negative_elbo_per_image']:.1f} nats/image ({t['bits_per_dim']:.4f} bits/dim)")  # fmt: skip
    print(f"  novel-view MSE {t['mse']:.5f} vs context mean {t['baseline_mse']:.5f} (ratio {t['mse_ratio']:.3f})")
    sc = s["test_scenes_scores"]
    print(f"  KL {with_interval(sc, 'kl_per_image', 2)} nats/image; foreground IoU "
          f"{with_interval(sc, 'foreground_iou', 3)}; sample variance unseen/seen by one context view "
          f"{with_interval(sc, 'uncertainty_ratio', 2)}")  # fmt: skip
    print_files(out.files)
    return 0
