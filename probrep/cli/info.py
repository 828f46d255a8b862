"""``probrep info``: versions and the devices torch and JAX will use."""

from __future__ import annotations

import argparse


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show versions and the devices torch and JAX will use")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from probrep.device import describe

    for key, value in describe().items():
        print(f"{key:18s} {value}")
    return 0
