"""The Ray Train launcher (nasplug.ray.train) on 2 CPU workers in the shared Ray session: the same
single-process truth as tests/test_ddp.py, a worker killed mid-run, and a divergence.

Each TorchTrainer run costs ~20 s of Ray start-up on 2 cores, so these are slow tests."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from ddp_reference import assert_equivalent, equivalence_spec, max_difference
from procs import command_line, descendants

from nasplug.data import load_digits
from nasplug.ddp import LocalLauncher, make_spec, read_checkpoint, run_jobs
from nasplug.ddp.jobs import prepare

pytest.importorskip("ray")
pytestmark = pytest.mark.slow


def quiet(line: str) -> None:
    pass


def test_two_ray_train_workers_equal_one_process_with_the_global_batch(ray_session, tmp_path):
    from nasplug.ray.train import RayTrainLauncher

    spec = equivalence_spec()
    [result] = run_jobs([spec], tmp_path / "runs", RayTrainLauncher(workers=2), echo=quiet)
    assert result.ok, result.reason
    assert result.info["world_size"] == 2 and result.info["per_worker_batch"] == 32
    state = read_checkpoint(tmp_path / "runs" / spec.job_id() / "checkpoint.pt")["model"]
    assert_equivalent(state, spec, load_digits())


def _train_workers() -> list[int]:
    return [pid for pid in descendants(os.getpid()) if b"RayTrainWorker" in command_line(pid)]


def test_a_killed_worker_restarts_the_group_from_the_last_checkpoint(ray_session, tmp_path):
    from nasplug.ray.train import RayTrainLauncher

    spec = make_spec("2_21_112", "digits", model="cnn", width=8, epochs=6, device="cpu")
    folder = prepare(spec, tmp_path / "runs")
    storage = tmp_path / "ray" / spec.job_id()
    killed: list[int] = []

    def registered() -> bool:
        """A checkpoint the controller has registered (a restart resumes from it): Ray Train writes
        its snapshot of the checkpoint list when it registers one."""
        try:
            return bool(json.loads((storage / "checkpoint_manager_snapshot.json").read_text())
                        ["latest_checkpoint_result"])
        except (OSError, ValueError, KeyError):
            return False

    def kill_after_first_checkpoint() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not killed:
            workers = _train_workers()
            if workers and registered():
                os.kill(workers[-1], signal.SIGKILL)
                killed.append(workers[-1])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_after_first_checkpoint, daemon=True)
    killer.start()
    result = RayTrainLauncher(workers=2, max_failures=1).fit_one(folder)
    killer.join()
    assert killed, "no Ray Train worker was found to kill"
    assert result.ok and result.info["resumed_from_epoch"] >= 1
    assert [m["epoch"] for m in result.history] == [1, 2, 3, 4, 5, 6]
    # the resumed run is the uninterrupted one: the same job under torchrun, never killed
    [again] = run_jobs([spec], tmp_path / "torchrun", LocalLauncher(workers=2), echo=quiet)
    assert again.ok
    reference = read_checkpoint(tmp_path / "torchrun" / spec.job_id() / "checkpoint.pt")["model"]
    assert max_difference(read_checkpoint(folder / "checkpoint.pt")["model"], reference) < 1e-6


def test_divergence_ends_a_ray_train_run_as_a_result(ray_session, tmp_path):
    from nasplug.ray.train import RayTrainLauncher

    spec = make_spec("2_22_222", "digits", model="cnn", width=8, epochs=3, lr=1e6, device="cpu")
    [result] = run_jobs([spec], tmp_path / "runs", RayTrainLauncher(workers=2, max_failures=3), echo=quiet)
    assert result.status == "diverged" and "loss became nan" in result.reason
