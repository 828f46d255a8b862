"""The parser and the dispatch of ``probrep``: each subcommand module registers itself with ``add`` and sets
the ``run`` function that handles it."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from probrep import __version__
from probrep.cli import demo, evaluate, info, mcmc, scm, train_air, train_gqn, train_vae


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="probrep",
        description="probrep: learn representations without labels (VAEs, AIR, GQN, SCMs, MCMC).",
    )
    parser.add_argument("--version", action="version", version=f"probrep {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info.add(sub)
    train = sub.add_parser("train", help="train a model")
    train_sub = train.add_subparsers(dest="model_family", metavar="MODEL", required=True)
    for family in (train_vae, train_air, train_gqn):
        family.add(train_sub)
    for command in (mcmc, scm, evaluate, demo):
        command.add(sub)
    _show_defaults(parser)
    return parser


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every parser's --help lists each option's default beside its help line."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _show_defaults(child)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    handler = getattr(args, "run", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        if getattr(args, "threads", None) is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be >= 1, got {args.threads}")
            import torch

            torch.set_num_threads(args.threads)  # the command owns its process
        return int(handler(args))
    except (ValueError, TypeError, FileNotFoundError, OSError) as exc:
        print(f"probrep: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
