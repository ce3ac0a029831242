"""Objectives and trainables the Ray tests run on Ray workers.

They live in a module (not a test file) so that workers can import them: the session's Ray
(``ray_session`` in conftest.py) puts ``tests/`` on its workers' ``PYTHONPATH``. Every run of an
objective appends a line to ``$NASPLUG_RAY_TEST_DIR/<function>.log`` (pid, step, cell), which is how
the tests count what was evaluated where.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def _log(name: str, *fields) -> None:
    folder = Path(os.environ["NASPLUG_RAY_TEST_DIR"])
    with open(folder / f"{name}.log", "a") as fh:
        fh.write(" ".join(str(f) for f in (os.getpid(), *fields)) + "\n")


def diverge(arch) -> float:
    """NaN (a diverged training) for cells with at most 2 paths, else the number of paths."""
    _log("diverge", arch.canonical_key())
    paths = arch.path_stats().num_paths
    return float("nan") if paths <= 2 else float(paths)


def die_once(arch, report, store) -> float:
    """Three reported steps with resumable state (value at step s = effective width × s / 3); the
    first trial to get here, on its first attempt, stops after its step-1 checkpoint, writes its pid
    to ``victim.pid`` and waits to be killed (SIGKILL by the test)."""
    folder = Path(os.environ["NASPLUG_RAY_TEST_DIR"])
    state = store.load() or {"step": 0}
    final = arch.path_stats().effective_width
    for step in range(state["step"] + 1, 4):
        _log("die_once", step, arch.canonical_key())
        store.save(step, {"step": step})
        report(step, final * step / 3)
        if step == 1 and state["step"] == 0:
            try:
                fd = os.open(folder / "victim.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.close(fd)
            (folder / "victim.tmp").write_text(str(os.getpid()))
            os.replace(folder / "victim.tmp", folder / "victim.pid")
            time.sleep(600)  # killed long before
    return final


def slow(arch) -> float:
    """Effective width after a pause (so that a driver can be interrupted mid-search)."""
    time.sleep(0.5)
    _log("slow", arch.canonical_key())
    return arch.path_stats().effective_width


def device_probe(config) -> None:
    """Tune trainable: report what a trial sees of its device (trial_device, Ray's GPU ids, env)."""
    import ray
    from ray import tune

    from nasplug.ray import trial_device

    device = trial_device("auto")
    tune.report({"device": device, "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                 "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "value": 0.0})
