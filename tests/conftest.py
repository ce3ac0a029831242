"""Shared fixtures: the NAS-Bench-201 table, the NB101 / NB301 samples and the KubeRay CRDs from
../shared/data (never committed to the repo), and one Ray session for every Ray test.

Tests that need shared data skip when it is absent, except under CI (``CI`` set), where a missing
file is a failure: CI must never silently skip the checks against published truth. The same holds
for Ray itself (the ``ray`` extra that CI installs)."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SHARED_DATA = TESTS.parents[1] / "shared" / "data"
NB201_CSV = SHARED_DATA / "nb201" / "nats_tss_test_accuracy_200ep.csv"
NB101_CSV = SHARED_DATA / "nb101" / "nb101_cifar10_naslib.csv"
NB301_CSV = SHARED_DATA / "nb301" / "nb301_cifar10_naslib.csv"
KUBERAY_CRDS = SHARED_DATA / "kuberay"

#: The shared Ray session: 2 CPUs (the CI machine's), one *logical* GPU so that trials asking for a
#: fraction of a GPU get one assigned (ray.get_gpu_ids) even on a CPU-only machine, a small object
#: store. Authentication is disabled explicitly: no token file is written to ~/.ray, and driver
#: subprocesses started by tests join without a token (docs/ray.md, "Authentication").
RAY_INIT = {"num_cpus": 2, "num_gpus": 1, "include_dashboard": False, "log_to_driver": False,
            "logging_level": logging.WARNING, "object_store_memory": 200 * 1024**2}


def required(path: Path, what: str) -> Path:
    """``path`` if it exists; else skip the test, or fail it under CI."""
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{what} missing at {path} (required under CI)")
        pytest.skip(f"{what} not found at {path}")
    return path


@pytest.fixture(scope="session")
def nb201_csv() -> Path:
    return required(Path(os.environ.get("NASPLUG_NB201_CSV", NB201_CSV)), "NAS-Bench-201 table")


@pytest.fixture(scope="session")
def nb101_csv() -> Path:
    return required(NB101_CSV, "NAS-Bench-101 sample")


@pytest.fixture(scope="session")
def nb301_csv() -> Path:
    return required(NB301_CSV, "NAS-Bench-301 sample")


@pytest.fixture(scope="session")
def nb101_rows(nb101_csv) -> list[dict[str, str]]:
    with nb101_csv.open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def nb301_rows(nb301_csv) -> list[dict[str, str]]:
    with nb301_csv.open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def kuberay_crds() -> Path:
    """The folder of the gzipped KubeRay CRDs (ray.io_rayclusters.yaml.gz, ray.io_rayjobs.yaml.gz)."""
    return required(KUBERAY_CRDS / "ray.io_rayclusters.yaml.gz", "KubeRay CRDs").parent


@pytest.fixture(scope="session")
def ray_module():
    """``ray`` (skips without the extra; fails under CI)."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ray is not installed (CI installs the ray extra)")
        pytest.skip("ray is not installed: pip install 'nasplug[ray]'")
    return ray


@pytest.fixture(scope="session")
def ray_session(ray_module, tmp_path_factory):
    """One local Ray for the whole test session (``RAY_INIT``), shared by every Ray test.

    Workers get ``tests/`` on their ``PYTHONPATH`` (trainables and objectives defined in test helper
    modules import there), and ``NASPLUG_RAY_TEST_DIR``, a session folder where helper objectives
    write their logs. Yields that folder. Tests give each experiment its own ``tmp_path`` storage.
    """
    scratch = tmp_path_factory.mktemp("ray")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["NASPLUG_RAY_TEST_DIR"] = str(scratch)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    ray_module.init(runtime_env={"env_vars": {"PYTHONPATH": path}}, **RAY_INIT)
    try:
        yield scratch
    finally:
        ray_module.shutdown()


@pytest.fixture(scope="session")
def nb201_rows(nb201_csv) -> list[dict[str, str]]:
    with nb201_csv.open() as fh:
        return list(csv.DictReader(fh))

