"""The GQN small tier on the CPU: does a laptop-sized GQN learn the procedural rooms in bounded time?

Trains ``probrep.experiments.gqn.train_gqn(tier="small")`` (32x32 rooms, 10 views per scene, 1..9 context views per
batch, 4 DRAW steps) and reports the held-out negative ELBO and bits per dimension before and after training,
and the novel-view MSE of the model's prediction against the baseline that predicts the mean of the context
images (target: at most a quarter of it), the KL per image, the foreground IoU and the uncertainty ratio
(:mod:`probrep.experiments.gqn_scores`). The probe MSE every ``--eval-every`` steps goes into the summary.

    nice -n 10 python benchmarks/gqn_small_tier.py [--steps 4000] [--threads 1] [--device cpu]

Writes benchmarks/results/gqn_small_tier.json and the figures (predictions, samples, loss curve, probe curve) into
benchmarks/results/gqn_small_tier/ (``--name`` renames both); checkpoints go to --out (resumable with --resume).
``--rescore`` recomputes only the scene scores and the figures of a finished run (its last checkpoint in --out)
with the code on disk and updates them in its results JSON and folder, keeping the training record; with
``--rescore-scenes N`` it scores the first N held-out scenes instead (a superset of the headline's) and records them
apart, under ``test_scenes_scores_<N>``, for narrower intervals. ``--probe-figure`` draws ``probe_mse.png`` (the
probe MSE and sigma against steps, :func:`probrep.experiments.gqn.probe_curve_figure`) from a results JSON alone.
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

from probrep.data.rooms.scene import Rooms
from probrep.experiments.gqn import (
    TEST_START,
    TIERS,
    build_gqn,
    held_out_scene_scores,
    probe_curve_figure,
    score_and_draw,
    train_gqn,
)
from probrep.experiments.gqn_scores import with_interval
from probrep.io.json_file import write_json
from probrep.training import checkpoint as ckpt

RESULTS = Path(__file__).parent / "results"
#: the tiers with the small model and the CPU recipe
CPU_TIERS = tuple(name for name, tier in TIERS.items() if tier["model"] == "small")


def _setting(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as JSON where it parses (numbers, true/false), else as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"--model takes KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def rescore(args) -> None:
    """Scene scores of the finished run in ``args.out``, written into ``results/<name>.json`` in place, and its
    predictions and samples figures redrawn into ``results/<name>/``."""
    path = RESULTS / f"{args.name}.json"
    result = json.loads(path.read_text())
    last = ckpt.latest(Path(args.out) / "checkpoints")
    state = None if last is None else ckpt.load(last)
    if state is None or state["step"] != result["steps"]:
        raise SystemExit(f"{args.out} holds no checkpoint at the recorded step {result['steps']} of {path}")
    model = build_gqn(result["tier"], **result.get("model_options", {}))
    model.load_state_dict(state["module"])
    model.eval()
    rooms = Rooms.from_config(result["rooms"])
    provenance = {"checkpoint": str(last), "machine": f"{cpu_name()}"}
    if args.rescore_scenes not in (None, result["test_scenes"]):
        # more held-out scenes (the first test_scenes of them are the headline's): narrower intervals, kept apart
        test = rooms.generate(args.rescore_scenes, start=TEST_START)
        scores = held_out_scene_scores(model, rooms, test, result["seed"])
        result[f"test_scenes_scores_{args.rescore_scenes}"] = {"scenes": args.rescore_scenes, **scores, **provenance}
        write_json(result, path)
        print(json.dumps(scores, indent=2))
        return
    test = rooms.generate(result["test_scenes"], start=TEST_START)
    figures = RESULTS / args.name
    figures.mkdir(parents=True, exist_ok=True)
    result["test_scenes_scores"], _ = score_and_draw(model, rooms, test, figures, result["seed"])
    result["test_scenes_scores_rescored"] = provenance
    write_json(result, path)
    print(json.dumps(result["test_scenes_scores"], indent=2))


def probe_figure(name: str) -> None:
    """``results/<name>/probe_mse.png`` from the probe curve recorded in ``results/<name>.json``."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"no results/{name}.json: --name names a finished run's results")
    curve = json.loads(path.read_text()).get("test_mse_curve")
    if not curve:
        raise SystemExit(f"results/{name}.json records no probe curve (a run with --eval-every records one)")
    print(probe_curve_figure(curve, RESULTS / name / "probe_mse.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", choices=CPU_TIERS, default="small", help="the CPU tier to train")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-scenes", type=int, default=8000)
    parser.add_argument("--test-scenes", type=int, default=512)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--max-context", type=int, default=None, help="most context views per training batch")
    parser.add_argument("--sigma-end", type=float, default=None, help="end of the pixel-sigma annealing (tier default)")
    parser.add_argument("--lr-end", type=float, default=None, help="end of the learning-rate annealing (tier default)")
    parser.add_argument(
        "--anneal-steps", type=int, default=None, help="sigma and learning-rate annealing (default: --steps)"
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a GQN setting over the small tier's, e.g. --model coordinates=true --model representation=pool",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared 2-core machine)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/gqn_small_tier")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--overwrite", action="store_true", help="start again in an --out that holds checkpoints")
    parser.add_argument("--rescore", action="store_true", help="re-score the finished run in --out, no training")
    parser.add_argument("--rescore-scenes", type=int, default=None,
                        help="with --rescore: score this many held-out scenes, apart from the headline")  # fmt: skip
    parser.add_argument(
        "--name", default="gqn_small_tier", help="results/<name>.json and results/<name>/ (keep variants apart)"
    )
    parser.add_argument("--probe-figure", action="store_true",
                        help="draw results/<name>/probe_mse.png from results/<name>.json, no model needed")  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    if args.probe_figure:
        probe_figure(args.name)
        return
    if args.rescore:
        rescore(args)
        return
    run = train_gqn(
        args.out,
        tier=args.tier,
        steps=args.steps,
        batch_size=args.batch_size,
        train_scenes=args.train_scenes,
        test_scenes=args.test_scenes,
        eval_every=args.eval_every,
        max_context=args.max_context,
        anneal_steps=args.anneal_steps,
        lr_end=args.lr_end,
        sigma_end=args.sigma_end,
        model_options=dict(_setting(text) for text in args.model),
        device=args.device,
        seed=args.seed,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=False,
    )
    figures = RESULTS / args.name
    figures.mkdir(parents=True, exist_ok=True)
    for name in ("predictions", "samples", "loss_curve", "probe_curve"):
        if name in run.files:  # no probe curve with --eval-every 0
            shutil.copyfile(run.files[name], figures / run.files[name].name)
    result = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        **run.summary,
    }
    write_json(result, RESULTS / f"{args.name}.json")
    s = run.summary
    sc = s["test_scenes_scores"]
    hidden = sc["uncertainty_ratio_by_scene"]["object_hidden_from_context"]["uncertainty_ratio"]
    print(
        f"{s['tier']} tier, {s['steps']} steps of {s['batch_size']} on {s['device']}: "
        f"{s['train_seconds']:.0f} s wall, {s['train_cpu_seconds']:.0f} s CPU\n"
        f"  test negative ELBO {s['test_before_training']['negative_elbo_per_image']:.1f} -> "
        f"{s['test']['negative_elbo_per_image']:.1f} nats/image "
        f"({s['test_before_training']['bits_per_dim']:.4f} -> {s['test']['bits_per_dim']:.4f} bits/dim)\n"
        f"  novel-view MSE {s['test']['mse']:.5f} vs context-mean {s['test']['baseline_mse']:.5f} "
        f"(ratio {s['test']['mse_ratio']:.3f})\n"
        f"  KL {with_interval(sc, 'kl_per_image', 2)} nats/image, "
        f"foreground IoU {with_interval(sc, 'foreground_iou', 3)}, "
        f"sample variance unseen/seen {sc['uncertainty_ratio']:.2f} "
        f"(95% {sc['uncertainty_ratio_95_interval'][0]:.2f}-{sc['uncertainty_ratio_95_interval'][1]:.2f}; "
        f"scenes hiding an object from the context view {'none' if hidden is None else f'{hidden:.2f}'})\n"
        f"  foreground IoU by context views: {sc['foreground_iou_by_context_views']}"
    )


if __name__ == "__main__":
    main()
