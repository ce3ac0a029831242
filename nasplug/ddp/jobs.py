"""Training jobs as folders, so that every finished training is kept and a rerun trains only the rest.

A job lives in ``ROOT/<job id>/`` (:meth:`~nasplug.ddp.spec.TrainSpec.job_id`): ``spec.json`` (what
to train), ``checkpoint.pt`` (rank 0's latest, then the final weights), ``result.json`` (the
:class:`~nasplug.train.TrainResult`) and ``log.txt`` (what its processes printed). A job is
*done* when its result says ``ok`` or ``diverged`` — a divergence is a property of the settings
and is not retried; a run that crashed (status ``error``) is retried by the next
:func:`run_jobs`, from its last checkpoint.

:func:`run_jobs` hands the pending folders to a :class:`Launcher`: the local one
(:class:`nasplug.ddp.launch.LocalLauncher`: this process, a process pool, or torchrun) or Ray
Train's (``nasplug.ray.train.RayTrainLauncher``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from nasplug.ddp.group import join, leave
from nasplug.ddp.loop import RESULT, FileSink, fit, write_result
from nasplug.ddp.spec import TrainSpec
from nasplug.train import TrainingDiverged, TrainResult

SPEC = "spec.json"
LOG = "log.txt"
#: Result statuses that end a job for good.
FINAL = ("ok", "diverged")
Echo = Callable[[str], None]


class Launcher(Protocol):
    def run(self, folders: Sequence[Path], echo: Echo) -> None:
        """Run every job folder to a ``result.json`` (status ``error`` with the reason if it crashed)."""


def prepare(spec: TrainSpec, root: str | os.PathLike) -> Path:
    """The job's folder under ``root``, with ``spec.json`` (re)written: the identity is the folder's
    name, the run settings (device, GPU options) are the latest caller's."""
    folder = Path(root) / spec.job_id()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{SPEC}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(spec.as_dict(), indent=1))
    os.replace(tmp, folder / SPEC)
    return folder


def read_spec(folder: str | os.PathLike) -> TrainSpec:
    return TrainSpec.from_dict(json.loads((Path(folder) / SPEC).read_text()))


def result_from_dict(data: dict) -> TrainResult:
    cls = TrainingDiverged if data.get("status") == "diverged" else TrainResult
    return cls(**data)


def read_result(folder: str | os.PathLike) -> TrainResult | None:
    """The job's recorded result, or None if it has none yet."""
    path = Path(folder) / RESULT
    return result_from_dict(json.loads(path.read_text())) if path.is_file() else None


def is_done(folder: str | os.PathLike) -> bool:
    result = read_result(folder)
    return result is not None and result.status in FINAL


def record_error(folder: str | os.PathLike, reason: str) -> None:
    """Record a crashed run (status ``error``); the next :func:`run_jobs` retries it."""
    spec = read_spec(folder)
    write_result(TrainResult(status="error", reason=reason, lr=spec.lr,
                             info={"arch": spec.arch, "job": spec.job_id()}), folder)


def run_folder(folder: str | os.PathLike, log: Echo | None = print) -> TrainResult:
    """Run one job folder as this process's worker of the run (what every launched process does)."""
    spec = read_spec(folder)
    ctx = join(spec.device)
    result = fit(spec, ctx, FileSink(folder, ctx), log=log)
    leave(ctx)  # not on an exception: the other workers would wait in the barrier
    return result


def run_jobs(specs: Sequence[TrainSpec], root: str | os.PathLike, launcher: Launcher,
             echo: Echo = print) -> list[TrainResult]:
    """Train every spec that has no final result under ``root`` yet; return all results in order.

    Jobs with equal identity are trained once. A job that crashed has a result with status
    ``error`` and its reason.
    """
    folders = [prepare(spec, root) for spec in specs]
    unique = list(dict.fromkeys(folders))
    pending = [f for f in unique if not is_done(f)]
    if len(unique) > len(pending):
        echo(f"{len(unique) - len(pending)} of {len(unique)} jobs finished earlier (kept in {root})")
    if pending:
        launcher.run(pending, echo)
    return [read_result(f) or TrainResult(status="error", reason="the launcher recorded no result")
            for f in folders]
