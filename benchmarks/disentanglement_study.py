"""A disentanglement study on procedural dSprites: the VAE family trained with one recipe, several seeds each,
scored with every metric probrep has, against steps, beside the ranges Locatello et al. (2019) report.

Recipe (the same for every model; chosen for a CPU budget of about 15-25 minutes per run on one core of a
2-core machine, see the README): the conv architecture of Locatello et al. (4 conv + 256 fc, 10 latents,
Bernoulli pixels), Adam with learning rate 1e-3 (their 1e-4 is tuned for 300,000 steps; ours are far fewer),
batch 64, 3,000 steps, on batches rendered on the fly from all 737,280 factor combinations. Each model's
weights are from Locatello et al.'s grid: beta 4 and 16 for the beta-VAE, 6 for beta-TCVAE, gamma 30 for
FactorVAE, lambda_od 10 for DIP-VAE-I (lambda_d 100) and DIP-VAE-II (lambda_d 10), C_max 25 with gamma 1000 for
the AnnealedVAE (C annealed linearly over the whole run). ``beta_tcvae_mss`` is beta-TCVAE with Chen et al.'s other
estimator of the total correlation, minibatch stratified sampling, in place of minibatch-weighted sampling.

A second recipe, ``mlp_b1024`` (``RECIPES``), trains the VAE, beta-TCVAE (MSS), FactorVAE and the beta = 4 beta-VAE
the way Chen et al. trained dSprites: dense networks and large batches (1024 here, 2048 theirs), 2,000 steps, so
each run sees 2 million images (the conv recipe's see 192,000). On one core beside a second run that took 11-12
minutes for the VAE and the beta-VAE, 39 for FactorVAE (its discriminator, six layers of 1,000, sees three batches
of codes a step) and 44-48 for beta-TCVAE, whose estimate of the total correlation handles a 1024 x 1024 x 10 array
each step.

A third recipe, ``locatello``, is the conv recipe at Locatello et al.'s learning rate (1e-4) with snapshots out to
their 300,000 steps, for the VAE, beta-TCVAE and FactorVAE: it tests whether the learning rate and the length are
what the first two recipes lack. At 0.11 (VAE), 0.13 (beta-TCVAE) and 0.24 s (FactorVAE) a step on one core, a run
spans sessions: ``train --only beta_tcvae_locatello_long:0`` resumes it from its last checkpoint, and ``evaluate
--only ... --steps N`` scores its snapshots as far as N.

Every run lives in ``runs/disentanglement_study/<model>-seed<k>/``: ``train/`` (the resumable training folder)
and ``snapshots/step-NNNNNN.pt`` (the module's weights at each evaluation step). Interrupt anything at any
time: ``train`` continues each run from its last checkpoint, and ``evaluate`` scores only what is not scored.

    python benchmarks/disentanglement_study.py train    [--worker 0/2] [--steps 3000] [--seeds 0 1]
    python benchmarks/disentanglement_study.py evaluate [--worker 0/2] [--votes 1000 500]
    python benchmarks/disentanglement_study.py train --only beta_tcvae_long:0 --steps 20000   # the trend
    python benchmarks/disentanglement_study.py train --only beta_tcvae_mlp_b1024_long:1 --steps 12000
    python benchmarks/disentanglement_study.py report   # tables, plots: benchmarks/results/disentanglement_study/
    python benchmarks/disentanglement_study.py ship     # the best runs' weights into probrep/pretrained/
    python benchmarks/disentanglement_study.py ship --snapshots vae_locatello_long:0:20000 ...  # chosen snapshots
    python benchmarks/disentanglement_study.py confirm --snapshots beta_tcvae_locatello_long:1:5000  # full protocol
    python benchmarks/disentanglement_study.py complete --snapshots vae_locatello_long:0:10000  # every metric

``train`` (``--only`` too) also evaluates each run when its training ends, as far as it trained (in a subprocess, so
that a long-lived worker uses the evaluation code on disk). Set ``--threads`` (default 1) per worker; two workers use
both cores of a 2-core box.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "disentanglement_study"
RESULTS = Path(__file__).resolve().parent / "results" / "disentanglement_study"

SEEDS = (0, 1)
#: how a run trains: the networks, Adam's batch and learning rate, the steps, and the steps that keep a snapshot.
#: A configuration trains with "conv" unless it names another recipe.
RECIPES = {
    "conv": {"arch": "conv", "batch_size": 64, "lr": 1e-3, "steps": 3000, "eval_steps": (250, 500, 1000, 2000, 3000),
             "long_steps": (4000, 6000, 8000, 11000, 14000, 17000, 20000)},
    # Chen et al.'s dSprites setting (dense networks, large batches: the total-correlation estimate sees many
    # posteriors), scaled to the CPU: probrep's default dense networks, batch 1024 instead of 2048
    "mlp_b1024": {"arch": "mlp", "batch_size": 1024, "lr": 1e-3, "steps": 2000,
                  "eval_steps": (250, 500, 1000, 1500, 2000),
                  "long_steps": (3000, 4000, 5000, 6000, 8000, 10000, 12000)},
    # Locatello et al.'s own recipe: the conv recipe at their learning rate, 1e-4, over their 300,000 steps (0.11-0.24
    # s a step on one core: 9-20 hours a run, so a long run spans sessions, resumed from its checkpoint)
    "locatello": {"arch": "conv", "batch_size": 64, "lr": 1e-4, "steps": 3000, "eval_steps": (500, 1000, 2000, 3000),
                  "long_steps": (5000, 10000, 20000, 30000, 45000, 60000, 80000, 100000, 130000, 160000, 200000,
                                 250000, 300000)},
}  # fmt: skip
#: name -> the keywords of train_vae_on_dsprites that define the model (and "recipe", when not "conv")
CONFIGS = {
    "vae": {"model": "vae", "beta": 1.0},
    "beta_vae_4": {"model": "vae", "beta": 4.0},
    "beta_vae_16": {"model": "vae", "beta": 16.0},
    "beta_tcvae": {"model": "betatcvae", "tc_weight": 6.0},
    # the same with minibatch stratified sampling (weights summing to 1) in place of minibatch-weighted sampling
    "beta_tcvae_mss": {"model": "betatcvae", "tc_weight": 6.0, "tc_estimator": "mss"},
    "factor_vae": {"model": "factorvae", "gamma": 30.0},
    "dip_vae_i": {"model": "dipvae_i", "lambda_od": 10.0},
    "dip_vae_ii": {"model": "dipvae_ii", "lambda_od": 10.0},
    "annealed_vae": {"model": "annealedvae", "c_max": 25.0, "capacity_weight": 1000.0},
    # the second recipe: the VAE against beta-TCVAE (MSS: its weights sum to 1, so large batches estimate well),
    # FactorVAE and the beta = 4 beta-VAE, with the weights above
    "vae_mlp_b1024": {"model": "vae", "beta": 1.0, "recipe": "mlp_b1024"},
    "beta_tcvae_mlp_b1024": {"model": "betatcvae", "tc_weight": 6.0, "tc_estimator": "mss", "recipe": "mlp_b1024"},
    "factor_vae_mlp_b1024": {"model": "factorvae", "gamma": 30.0, "recipe": "mlp_b1024"},
    "beta_vae_4_mlp_b1024": {"model": "vae", "beta": 4.0, "recipe": "mlp_b1024"},
    # the top of Locatello et al.'s beta-TCVAE grid (1-10): does a stronger pull on the total correlation split the
    # position between two latents sooner than 6 does?
    "beta_tcvae_10_mlp_b1024": {"model": "betatcvae", "tc_weight": 10.0, "tc_estimator": "mss", "recipe": "mlp_b1024"},
    # the third recipe: is it the learning rate and the steps? beta-TCVAE (the study's best MIG) and FactorVAE (Kim &
    # Mnih's best FactorVAE score) trained as Locatello et al. trained them, and the VAE to compare them with
    "vae_locatello": {"model": "vae", "beta": 1.0, "recipe": "locatello"},
    "beta_tcvae_locatello": {"model": "betatcvae", "tc_weight": 6.0, "recipe": "locatello"},
    "factor_vae_locatello": {"model": "factorvae", "gamma": 30.0, "recipe": "locatello"},
}

#: a long run (``<config>_long``) continues its configuration past the recipe's steps, to show the trend; it keeps
#: a snapshot at each of the recipe's "long_steps"
LONG_SUFFIX = "_long"

logger = logging.getLogger("disentanglement_study")


def config_of(name: str) -> dict:
    """The model settings of a run name (a long run shares its base configuration's), without its recipe."""
    return {k: v for k, v in CONFIGS[name.removesuffix(LONG_SUFFIX)].items() if k != "recipe"}


def recipe_name(name: str) -> str:
    """The name of the recipe a run trains with: its configuration's "recipe", else "conv"."""
    return CONFIGS[name.removesuffix(LONG_SUFFIX)].get("recipe", "conv")


def recipe_of(name: str) -> dict:
    """The recipe a run trains with."""
    return RECIPES[recipe_name(name)]


def snapshot_steps(name: str) -> list[int]:
    """The steps a run keeps a snapshot at: its recipe's evaluation steps, and for a long run its long steps."""
    recipe = recipe_of(name)
    return sorted({*recipe["eval_steps"], *(recipe["long_steps"] if name.endswith(LONG_SUFFIX) else ())})


def final_step(name: str, steps: int | None = None) -> int:
    """The step a run trains to and its table entry is scored at: ``steps`` where given, else its recipe's last
    (a long run's: the last of the recipe's long steps)."""
    if steps:
        return steps
    recipe = recipe_of(name)
    return max(recipe["long_steps"]) if name.endswith(LONG_SUFFIX) else recipe["steps"]


def run_dir(name: str, seed: int) -> Path:
    return RUNS / f"{name}-seed{seed}"


def all_runs(seeds) -> list[tuple[str, int]]:
    """Every (config, seed), seed-major: a partial study has every model at its first seed."""
    return [(name, seed) for seed in seeds for name in CONFIGS]


def my_runs(seeds, worker: str) -> list[tuple[str, int]]:
    index, count = (int(v) for v in worker.split("/"))
    if not 0 <= index < count:
        raise ValueError(f"--worker {worker!r}: expected i/n with 0 <= i < n")
    return all_runs(seeds)[index::count]


def snapshot_path(name: str, seed: int, step: int) -> Path:
    return run_dir(name, seed) / "snapshots" / f"step-{step:06d}.pt"


def train_one(name: str, seed: int, steps: int | None = None) -> None:
    """Train one run to ``steps`` (default: its recipe's), stopping at each evaluation step to keep a snapshot of
    the weights."""
    import torch

    from probrep.experiments.vae_dsprites import train_vae_on_dsprites
    from probrep.io.files import atomic_open

    config, recipe = config_of(name), recipe_of(name)
    steps = final_step(name, steps)
    if config["model"] == "annealedvae":
        config["capacity_steps"] = steps  # C reaches C_max at the end of the run, whatever segment we are in
    for step in [s for s in snapshot_steps(name) if s <= steps]:
        snap = snapshot_path(name, seed, step)
        if snap.exists():
            continue
        started = time.perf_counter()
        out = train_vae_on_dsprites(
            run_dir(name, seed) / "train", **config, arch=recipe["arch"], steps=step, batch_size=recipe["batch_size"],
            lr=recipe["lr"], seed=seed,
            resume=True, checkpoint_every=250, progress=False,
        )  # fmt: skip
        snap.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(snap) as f:
            torch.save({"module": out.model.state_dict(), "step": step, "train_seconds": out.summary["train_seconds"]},
                       f)  # fmt: skip
        logger.info("%s seed %d: step %d (%.0f s)", name, seed, step, time.perf_counter() - started)


def start_long_run(name: str, seed: int) -> None:
    """Seed the long run's folder with a copy of its base run's folder (checkpoints and snapshots) where the base
    run has reached its recipe's steps; otherwise the long run trains from step 0 in its own folder."""
    import shutil

    base_name = name.removesuffix(LONG_SUFFIX)
    base, long = run_dir(base_name, seed), run_dir(name, seed)
    if long.exists():
        return
    if not snapshot_path(base_name, seed, final_step(base_name)).exists():
        logger.info("%s has not reached step %d: %s seed %d trains from step 0", base, final_step(base_name), name,
                    seed)  # fmt: skip
        return
    tmp = long.with_name(long.name + ".copying")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(base, tmp, ignore=shutil.ignore_patterns("scores.json"))
    tmp.rename(long)


def command_train(args) -> None:
    if args.only:
        name, seed = args.only.split(":")
        if name.endswith(LONG_SUFFIX):
            start_long_run(name, int(seed))
        train_one(name, int(seed), args.steps)
        score_in_subprocess(name, int(seed), args)
        return
    for name, seed in my_runs(args.seeds, args.worker):
        train_one(name, seed, args.steps)
        score_in_subprocess(name, seed, args)


def score_in_subprocess(name: str, seed: int, args) -> None:
    """Score a run that has just trained, as far as it trained, with the evaluation code on disk now (a long-lived
    worker may have started before it changed); a failure is logged, and a later ``evaluate`` retries it."""
    cmd = [sys.executable, __file__, "evaluate", "--only", f"{name}:{seed}", "--threads", str(args.threads),
           "--votes", *map(str, args.votes), *(["--steps", str(args.steps)] if args.steps else [])]  # fmt: skip
    if subprocess.run(cmd, check=False).returncode:
        logger.warning("evaluation of %s seed %d failed; 'evaluate' will retry it", name, seed)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("train", "evaluate", "report", "ship", "confirm", "complete"))
    parser.add_argument("--worker", default="0/1", help="i/n: this process takes every n-th run from the i-th")
    parser.add_argument("--steps", type=int, default=None, help="train to / score at (default: the recipe's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--votes", type=int, nargs=2, default=(1000, 500),
                        help="(train, eval) votes of the BetaVAE and FactorVAE scores")  # fmt: skip
    parser.add_argument("--snapshots", nargs="+", default=None, metavar="NAME:SEED:STEP",
                        help="ship: these scored snapshots (a long run's) instead of the table's best; "
                        "confirm: the snapshots to score with the full FactorVAE protocol; "
                        "complete: a long run's snapshots to score with every metric")  # fmt: skip
    parser.add_argument("--only", default=None,
                        help="name:seed, one run; <name>_long:seed continues <name> past its steps")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    if args.command == "train":
        command_train(args)
    elif args.command == "evaluate":
        from disentanglement_scoring import command_evaluate

        command_evaluate(args)
    elif args.command == "report":
        from disentanglement_scoring import command_report

        command_report(args)
    elif args.command == "confirm":
        from disentanglement_scoring import command_confirm

        command_confirm(args)
    elif args.command == "complete":
        from disentanglement_scoring import command_complete

        command_complete(args)
    else:
        from disentanglement_scoring import command_ship

        command_ship(args)


if __name__ == "__main__":
    main()
