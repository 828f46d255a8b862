"""The ``probrep`` command (``probrep --help``); one module per subcommand, each with ``add(subparsers)`` and
``run(args)``. Nothing in probrep imports this package: it sits on top of everything."""

from probrep.cli.main import build_parser, main

__all__ = ["main", "build_parser"]
