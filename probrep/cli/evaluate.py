"""``probrep evaluate``: score a trained run with IRS and the disentanglement metrics."""

from __future__ import annotations

import argparse
from pathlib import Path

from probrep.cli.options import add_compute


def add(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluate", help="score a trained run: IRS and the disentanglement metrics")
    ev.add_argument("--checkpoint", required=True, metavar="DIR",
                    help="a folder written by 'probrep train vae', or pretrained:NAME for a shipped model "
                    "(see probrep.experiments.pretrained)")  # fmt: skip
    ev.add_argument("--out", default=None, metavar="DIR",
                    help="where metrics.json (and downstream.png) go (default: the run folder; "
                    "runs/evaluate/NAME for a shipped model)")  # fmt: skip
    ev.add_argument("--metrics", default="irs,irs_interventional,mig,dci,factor_vae,downstream,fairness,symmetry",
                    help="comma-separated: irs, irs_interventional, mig, dci, sap, factor_vae, beta_vae, modularity, "
                    "gaussian_tc, downstream (also draws downstream.png), fairness, symmetry, or 'all'")  # fmt: skip
    ev.add_argument("--num-points", type=int, default=10_000, help="observational points drawn for the array metrics")
    ev.add_argument("--votes", type=int, nargs=2, default=[10_000, 5_000], metavar=("TRAIN", "EVAL"),
                    help="votes of the FactorVAE / BetaVAE score protocols")  # fmt: skip
    ev.add_argument("--dci-estimator", choices=["gbt", "lightgbm"], default="gbt",
                    help="DCI's classifiers: scikit-learn's gradient boosting (disentanglement_lib's definition) or "
                    "LightGBM (the same measurement, seconds instead of minutes; D about 0.03 higher)")  # fmt: skip
    add_compute(ev)
    ev.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from probrep.device import resolve_device
    from probrep.experiments.evaluate import ALL_METRICS, downstream_plot, encoder_fn, evaluate, headline
    from probrep.experiments.vae_dsprites import load_run
    from probrep.io.json_file import write_json

    metrics = (
        ALL_METRICS if args.metrics.strip() == "all" else [m.strip() for m in args.metrics.split(",") if m.strip()]
    )
    if args.checkpoint.startswith("pretrained:"):
        from probrep.experiments import pretrained

        name = args.checkpoint.split(":", 1)[1]
        model, summary = pretrained.load(name)
        out = Path(args.out or f"runs/evaluate/{name}")
    else:
        model, summary = load_run(args.checkpoint)
        out = Path(args.out or args.checkpoint)
    device = resolve_device(args.device)
    model.to(device)
    result = evaluate(
        encoder_fn(model, device),
        metrics,
        num_points=args.num_points,
        vote_sizes=tuple(args.votes),
        seed=args.seed,
        progress=not args.no_progress,
        dci_estimator=args.dci_estimator,
    )
    report = {"run": summary, "scores": result.scores, "seconds": result.seconds}
    path = write_json(report, out / "metrics.json")
    if "downstream" in result.scores:
        print(f"wrote {downstream_plot(result.scores['downstream'], out / 'downstream.png')}")
    for name, value in headline(result.scores).items():
        print(f"{name:24s} {value:8.3f}")
    print("seconds: " + ", ".join(f"{name} {sec:.1f}" for name, sec in result.seconds.items()))
    print(f"wrote {path}")
    return 0
