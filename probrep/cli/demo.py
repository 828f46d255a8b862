"""``probrep demo``: the flagship pipeline behind ``make demo``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from probrep.cli.options import add_compute


def add(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo",
        help="the flagship pipeline: shipped VAE-family models on procedural dSprites (traversals, IRS, MIG, DCI, "
        "downstream utility) "
        "and a short fresh training run",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder")
    demo.add_argument("--steps", type=int, default=600, help="training steps of the fresh beta-VAE")
    add_compute(demo)
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from probrep.experiments.demo import demo

    print("probrep demo: do VAE-family models learn, without labels, factors that stay put under interventions?")
    report = demo(args.out, steps=args.steps, device=args.device, seed=args.seed, progress=not args.no_progress)
    print_report(report)
    return 0


COLUMNS = ("mig", "dci_disentanglement", "irs", "irs_interventional")
NAME_WIDTH = 32  # "beta_tcvae_locatello (shipped)" and the like fit
STUDY_COLUMNS = ("factor_vae", "beta_vae", "mig")


def _study(row: dict, metric: str) -> str:
    value = row.get(metric)
    if not value:
        return "-"
    spread = f"±{value['sd']:.2f}" if value.get("sd") is not None else ""
    return f"{value['mean']:.2f}{spread}"


def print_report(report: dict[str, Any]) -> None:
    head = f"{'model':{NAME_WIDTH}s}" + "".join(f"{c:>20s}" for c in COLUMNS)
    print("\nScored now, on the shipped weights and on the fresh run (" + f"{report['num_points']} images):")
    print(head)
    for name, entry in report["shipped"].items():
        print(f"{name + ' (shipped)':{NAME_WIDTH}s}" + "".join(f"{entry['measured_now'][c]:20.3f}" for c in COLUMNS))
    fresh = report["fresh"]
    label = f"beta-VAE fresh, {fresh['training']['steps']} steps"
    print(f"{label:{NAME_WIDTH}s}" + "".join(f"{fresh['measured_now'][c]:20.3f}" for c in COLUMNS))
    if report["shipped"]:
        print(
            "\nFrom the disentanglement study, as the shipped manifest recorded it at export (mean ± sd over the "
            "seeds run by then; the study's latest tables, in benchmarks/results/disentanglement_study/: table.md, "
            "and long_run_table.md for the long runs these come from):"
        )
        print(f"{'model':{NAME_WIDTH}s}" + "".join(f"{c:>20s}" for c in STUDY_COLUMNS))
        for name, entry in report["shipped"].items():
            cells = "".join(f"{_study(entry['study_over_seeds'], c):>20s}" for c in STUDY_COLUMNS)
            print(f"{name:{NAME_WIDTH}s}{cells}")
    _print_downstream(report)
    t = fresh["training"]
    print(f"\nfresh beta-VAE: held-out negative ELBO {t['held_out_negative_elbo_per_image']:.1f} nats/image, "
          f"{t['active_dimensions_kl_above_0.1']} active latents, trained in {t['train_seconds']:.0f} s")  # fmt: skip
    print(f"\nDone in {report['seconds']:.0f} s. Report: {Path(report['files']['metrics']).resolve()}")
    print(f"IRS heat maps: {Path(report['files']['irs_matrices']).resolve()}")
    if "downstream" in report["files"]:
        print(f"downstream accuracy against labels: {Path(report['files']['downstream']).resolve()}")
    for name, entry in report["shipped"].items():
        print(f"{name} traversals: {Path(entry['files']['traversals']).resolve()}")
    print(f"fresh run: {Path(fresh['files']['traversals']).parent.resolve()} (loss curve, traversals, reconstructions)")


def _print_downstream(report: dict[str, Any]) -> None:
    """Downstream utility of the shipped models: mean test accuracy over factors by number of labels."""
    rows = {name: entry["downstream"] for name, entry in report["shipped"].items() if entry.get("downstream")}
    if not rows:
        return
    first = next(iter(rows.values()))
    model = next(key for key, v in first.items() if isinstance(v, dict))
    sizes = [str(n) for n in first["sizes"]]
    print(f"\nDownstream utility now ({model} classifiers per factor, mean test accuracy over factors, "
          f"by number of labels; efficiency = accuracy at 100 / at {sizes[-1]}):")  # fmt: skip
    print(f"{'model':{NAME_WIDTH}s}" + "".join(f"{n + ' labels':>14s}" for n in sizes) + f"{'efficiency':>14s}")
    for name, summary in rows.items():
        eff = summary[model]["efficiency"]
        cells = "".join(f"{summary[model]['accuracy'][n]:14.3f}" for n in sizes)
        print(f"{name + ' (shipped)':{NAME_WIDTH}s}{cells}" + (f"{eff:14.2f}" if eff is not None else f"{'-':>14s}"))
