"""The ``nasplug`` command.

Each subcommand lives in its own module of :mod:`nasplug.commands` with ``add_parser(subparsers)``
that registers its arguments and sets ``func`` to a ``run(args) -> int``. Command modules import
heavy libraries (torch, optuna, ray) inside ``run`` only, so ``nasplug --help`` stays fast.

A user error (:class:`~nasplug.errors.NasplugError`: bad architecture, missing file, ...) prints
one line on stderr and exits with status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nasplug import __version__
from nasplug.errors import NasplugError

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = ["describe", "spaces", "scorers", "rank", "bench", "train", "search", "retrain", "rerank"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nasplug",
        description="Neural architecture search made cheaper by theory: score architecture DAGs "
        "without training, prune search spaces, re-rank NAS-Bench-201.",
    )
    parser.add_argument("--version", action="version", version=f"nasplug {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"nasplug.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NasplugError as err:
        print(f"nasplug {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasplug: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
