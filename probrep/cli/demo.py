"""``probrep demo``: the flagship pipeline behind ``make demo``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from probrep.cli.options import add_compute


def add(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo", help="the flagship pipeline: VAE vs beta-VAE on procedural dSprites, scored by IRS, MIG, DCI, ..."
    )
    demo.add_argument("--out", default="runs/demo", help="output folder")
    demo.add_argument("--steps", type=int, default=1500, help="training steps per model")
    add_compute(demo)
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from probrep.experiments.demo import demo

    print("probrep demo: does a VAE learn, without labels, factors that stay put under interventions?")
    report = demo(args.out, steps=args.steps, device=args.device, seed=args.seed, progress=not args.no_progress)
    print_report(report)
    return 0


def print_report(report: dict[str, Any]) -> None:
    names = list(report["models"])
    rows = list(report["models"][names[0]]["headline"])
    print("\n" + f"{'metric':24s}" + "".join(f"{n:>14s}" for n in names))
    for row in rows:
        print(f"{row:24s}" + "".join(f"{report['models'][n]['headline'][row]:14.3f}" for n in names))
    for n in names:
        t = report["models"][n]["training"]
        print(f"{n}: held-out negative ELBO {t['held_out_negative_elbo_per_image']:.1f} nats/image, "
              f"{t['active_dimensions_kl_above_0.1']} active latents")  # fmt: skip
    print(f"\nDone in {report['seconds']:.0f} s. Report: {Path(report['files']['metrics']).resolve()}")
    print(f"IRS heat maps: {Path(report['files']['irs_matrices']).resolve()}")
    for n in names:
        print(f"{n}: {Path(report['models'][n]['files']['traversals']).parent.resolve()} (traversals, reconstructions)")
