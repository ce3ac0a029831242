"""The ``nasplug`` command.

Each subcommand lives in its own module of :mod:`nasplug.commands` with ``add_parser(subparsers)``
that registers its arguments and sets ``func`` to a ``run(args) -> int``. Command modules import
heavy libraries (torch, optuna, ray) inside ``run`` only, so ``nasplug --help`` stays fast.

A user error (:class:`~nasplug.errors.NasplugError`: bad architecture, missing file, ...; or a bad
option value, checked by argparse with the same rules as the library, :mod:`nasplug.checks`)
prints one line on stderr and exits with status 2 — never a traceback. Ctrl-C prints one line and
exits with 130; a closed pipe (``nasplug rank | head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from nasplug import __version__
from nasplug.errors import NasplugError
from nasplug.processes import stop_on_sigterm

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = ["describe", "spaces", "scorers", "rank", "bench", "train", "search", "retrain", "rerank"]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (``nasplug search: error: argument --epochs: ...``)
    like every other user error, instead of the usage block followed by the error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
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
        with stop_on_sigterm():  # kill / timeout / Slurm stop a command as cleanly as Ctrl-C does
            code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe surfaces here, not at interpreter exit
        return code
    except NasplugError as err:
        print(f"nasplug {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise
        print(f"nasplug {args.command}: error: out of memory ({str(err).splitlines()[0][:200]}): use a "
              "smaller network or batch", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        detail = f": {err}" if str(err) else ""
        print(f"nasplug {args.command}: interrupted{detail}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`nasplug rank | head`): stop quietly. Point stdout at devnull so
        # the interpreter's final flush cannot fail again (the recipe of Python's signal docs).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _out_of_memory(err: BaseException) -> bool:
    """A failed allocation: Python's ``MemoryError``, torch's ``OutOfMemoryError`` (CUDA) or its CPU
    allocator's ``RuntimeError``."""
    return (isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in str(err))


if __name__ == "__main__":
    sys.exit(main())
