"""Shared fixtures: the NAS-Bench-201 table from ../shared/data (never committed to the repo).

Tests that need it skip when it is absent, except under CI (``CI`` set), where a missing table is
a failure: CI must never silently skip the checks against published truth.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

NB201_CSV = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nb201"
    / "nats_tss_test_accuracy_200ep.csv"
)


@pytest.fixture(scope="session")
def nb201_csv() -> Path:
    path = Path(os.environ.get("NASPLUG_NB201_CSV", NB201_CSV))
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"NAS-Bench-201 table missing at {path} (required under CI)")
        pytest.skip(f"NAS-Bench-201 table not found at {path}")
    return path


@pytest.fixture(scope="session")
def nb201_rows(nb201_csv) -> list[dict[str, str]]:
    with nb201_csv.open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray cluster for every Ray test of the session (2 CPUs, quiet).

    Auth: Ray >= 2.59 turns on token authentication for new local clusters and writes
    ``~/.ray/auth_token`` on first use; the tests opt out (``RAY_AUTH_MODE=disabled``, unless the
    environment says otherwise) so they never write to the user's home. Trainables live in the
    installed ``nasplug`` package, so Ray workers import them without extra ``PYTHONPATH``.
    """
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
             object_store_memory=200 * 1024**2)
    yield ray
    ray.shutdown()
