"""Shared fixtures: the NAS-Bench-201 table and the NB101 / NB301 samples from ../shared/data (never
committed to the repo).

Tests that need them skip when they are absent, except under CI (``CI`` set), where a missing table is
a failure: CI must never silently skip the checks against published truth.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NB201_CSV = DATA / "nb201" / "nats_tss_test_accuracy_200ep.csv"
NB101_CSV = DATA / "nb101" / "nb101_cifar10_naslib.csv"
NB301_CSV = DATA / "nb301" / "nb301_cifar10_naslib.csv"


def _data_file(path: Path, what: str) -> Path:
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{what} missing at {path} (required under CI)")
        pytest.skip(f"{what} not found at {path}")
    return path


@pytest.fixture(scope="session")
def nb201_csv() -> Path:
    return _data_file(Path(os.environ.get("NASPLUG_NB201_CSV", NB201_CSV)), "NAS-Bench-201 table")


@pytest.fixture(scope="session")
def nb101_csv() -> Path:
    return _data_file(NB101_CSV, "NAS-Bench-101 sample")


@pytest.fixture(scope="session")
def nb301_csv() -> Path:
    return _data_file(NB301_CSV, "NAS-Bench-301 sample")


@pytest.fixture(scope="session")
def nb101_rows(nb101_csv) -> list[dict[str, str]]:
    with nb101_csv.open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def nb301_rows(nb301_csv) -> list[dict[str, str]]:
    with nb301_csv.open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def nb201_rows(nb201_csv) -> list[dict[str, str]]:
    with nb201_csv.open() as fh:
        return list(csv.DictReader(fh))
