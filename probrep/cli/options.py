"""Options that several subcommands share, declared once."""

from __future__ import annotations

import argparse


def add_seed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same numbers on the same machine")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_compute(p: argparse.ArgumentParser) -> None:
    """``--device``, ``--threads``, ``--seed`` and ``--no-progress``."""
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice, or OMP_NUM_THREADS); on a busy machine 1 is often fastest",
    )
    add_seed(p)
    add_progress(p)


def add_training_run(p: argparse.ArgumentParser, *, checkpoint_every: int) -> None:
    """What every ``train`` subcommand takes besides its model's settings: the output folder, checkpoints,
    resume, and the compute options."""
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--checkpoint-every", type=int, default=checkpoint_every, help="write a checkpoint every this many steps"
    )
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--overwrite", action="store_true", help="start again in an --out that holds checkpoints")
    add_compute(p)


def run_options(args: argparse.Namespace) -> dict:
    """The keyword arguments the experiments take for the options of :func:`add_training_run`."""
    return {
        "device": args.device,
        "seed": args.seed,
        "resume": args.resume,
        "overwrite": args.overwrite,
        "checkpoint_every": args.checkpoint_every,
        "progress": not args.no_progress,
    }


def print_files(files: dict, width: int = 16) -> None:
    for name, path in files.items():
        print(f"    {name:{width}s} {path}")
