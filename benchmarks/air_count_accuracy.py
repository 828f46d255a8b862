"""Held-out count accuracy of AIR on procedural scenes (50x50, 0 to 2 objects) against training steps.

The reference recipe: Adam 1e-4, batch 64, a small count prior (truncated geometric, k = 0.01), 3 steps,
Pyro's network sizes (LSTM 256, encoder/decoder 200, z_what 50), data-dependent baselines with their own
learning rate (default 1e-2; the paper used 1e-3, Pyro's AIR tutorial found 0.1 necessary with its loss), and
probrep's default residual guide (Difference AIR: each step reads what earlier steps left unexplained).

    python benchmarks/air_count_accuracy.py --steps 10000 [--out runs/air_count_accuracy]
    python benchmarks/air_count_accuracy.py --steps 60000 --guide-input image --tag image_guide \
        --out runs/air_image_guide     # the original whole-image guide: ghost windows, see the README
    python benchmarks/air_count_accuracy.py --steps 1500 --lr 1e-3 --guide-input image --n-train 10000 \
        --n-test 500 --out runs/air_fast --tag fast        # the whole-image guide at 10x the learning rate

The run is resumable (``--resume`` continues from its last checkpoint). It leaves the usual run folder
(reconstructions with the inferred windows, loss curve, summary) and copies the accuracy curve (PNG + JSON) and
the reconstructions to benchmarks/results/air_count_accuracy[_TAG].{png,json} and ..._reconstructions.png.
The JSON also holds two diagnostics of the final model on the held-out scenes: the ELBO with the count forced
to 0..N per true count (probrep.models.air.diagnostics.count_elbo) and the fraction of present windows that draw
nothing, with the accuracy
of counting only the windows that draw something (diagnostics.ghost_windows).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from pathlib import Path

import torch
from _machine import cpu_name  # noqa: E402  (benchmarks run as scripts from this folder)

from probrep.experiments.air import train_air
from probrep.models.air.model import GUIDE_INPUTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--baseline-lr", type=float, default=1e-2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--z-pres-prior", type=float, default=0.01)
    parser.add_argument("--guide-input", choices=GUIDE_INPUTS, default="residual")
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared CPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/air_count_accuracy")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--tag", default="", help="suffix of the result files, e.g. 'fast'")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--overwrite", action="store_true", help="start again in an --out that holds checkpoints")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    run = train_air(
        args.out,
        steps=args.steps,
        lr=args.lr,
        baseline_lr=args.baseline_lr,
        z_pres_prior=args.z_pres_prior,
        guide_input=args.guide_input,
        n_train=args.n_train,
        n_test=args.n_test,
        eval_every=args.eval_every,
        seed=args.seed,
        device=args.device,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    s = run.summary
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    stem = "air_count_accuracy" + (f"_{args.tag}" if args.tag else "")
    shutil.copyfile(run.files["count_accuracy_curve"], results / f"{stem}.png")
    shutil.copyfile(run.files["reconstructions"], results / f"{stem}_reconstructions.png")
    record = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads",
        "device": s["device"],
        "torch": torch.__version__,
        "recipe": {
            k: s[k] for k in ("lr", "baseline_lr", "z_pres_prior", "guide_input", "batch_size", "num_steps", "n_train")
        },
        "steps": s["steps"],
        "count_accuracy": s["count_accuracy"],
        "best_count_accuracy": s["best_count_accuracy"],
        "count_confusion_rows_true_columns_inferred": s["count_confusion"],
        "count_accuracy_history": s["count_accuracy_history"],
        "count_elbo_rows_true_columns_forced": s["count_elbo_rows_true_columns_forced"],
        "ghost_windows": s["ghost_windows"],
        "n_test": s["n_test"],
        "train_seconds": s["train_seconds"],
        "seconds_per_step": round(s["train_seconds"] / max(s["steps"], 1), 3),
    }
    (results / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
