"""The NAS-Bench-201 table the benchmark scripts measure against: its default location (the shared
CSV export next to the checkout, or ``$NASPLUG_NB201_CSV``), the ``--csv`` option and its check."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_CSV = (Path(__file__).resolve().parents[2] / "shared" / "data" / "nb201"
               / "nats_tss_test_accuracy_200ep.csv")


def add_csv_argument(parser: argparse.ArgumentParser) -> None:
    """``--csv``: any file ``nasplug bench`` reads (CSV export or compact table)."""
    parser.add_argument("--csv", default=os.environ.get("NASPLUG_NB201_CSV", str(DEFAULT_CSV)),
                        help="NAS-Bench-201 CSV export or compact table (default $NASPLUG_NB201_CSV or "
                        "the shared sample)")


def csv_missing(path: str) -> bool:
    """Say so on stderr when the table is not there (the script then exits with status 2)."""
    if Path(path).is_file():
        return False
    print(f"NAS-Bench-201 table not found at {path}", file=sys.stderr)
    return True
