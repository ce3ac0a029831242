"""Retrain chosen architectures to completion and record the results next to what the search knew.

:func:`retrain` runs one :class:`~nasplug.ddp.TrainSpec` per candidate through a launcher
(:func:`make_launcher`: this machine's processes or torchrun, or Ray Train), keeps every job's
folder under ``OUT/runs`` (so a rerun only trains what is missing), and writes

* ``OUT/retrain.md`` / ``retrain.json`` — per architecture: proxy score → search value →
  retrained test accuracy, accuracy per epoch, wall time, device, status;
* ``OUT/retrain_curves.png`` — test accuracy per epoch;
* with a study: one user attribute ``nasplug:retrained:<job id>`` per job, so a search report can
  put the retrained accuracy beside the trial.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna

from nasplug.ddp import Launcher, LocalLauncher, TrainSpec, run_jobs
from nasplug.errors import NasplugError, require
from nasplug.markup import table_cell
from nasplug.plotting import pyplot
from nasplug.processes import available_cores
from nasplug.retrain.select import Candidate
from nasplug.search.attrs import ATTR_RETRAINED
from nasplug.train import TrainResult

LAUNCHERS = ("local", "ray")


def default_parallel(workers: int, device: str) -> int:
    """Jobs at once on this machine: its GPUs (or cores) shared out ``workers`` at a time."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return max(1, torch.cuda.device_count() // workers)
    return max(1, available_cores() // workers)


def make_launcher(kind: str = "local", *, workers: int = 1, parallel: int | None = None,
                  device: str = "auto", max_restarts: int = 1, cpus_per_worker: float = 1.0,
                  gpus_per_worker: float = 1.0, address: str | None = None,
                  storage: str | None = None) -> Launcher:
    """``local``: :class:`~nasplug.ddp.LocalLauncher` (torchrun for ``workers > 1``); ``ray``:
    Ray Train (``nasplug[ray]``), on the cluster at ``address``, GPUs unless ``device="cpu"``
    (``"auto"``: when the cluster has any). ``max_restarts``: restarts of a failed worker group."""
    if workers < 1:
        raise NasplugError(f"--workers must be at least 1, got {workers}")
    if parallel is not None and parallel < 1:
        raise NasplugError(f"--parallel must be at least 1, got {parallel}")
    if kind == "local":
        return LocalLauncher(workers, parallel or default_parallel(workers, device), max_restarts, device)
    if kind == "ray":
        require("ray.train", "ray", "--launcher ray")
        from nasplug.ray.train import RayTrainLauncher

        use_gpu = None if device == "auto" else device != "cpu"
        return RayTrainLauncher(workers=workers, use_gpu=use_gpu, cpus_per_worker=cpus_per_worker,
                                gpus_per_worker=gpus_per_worker, max_failures=max_restarts,
                                parallel=parallel, storage=storage, address=address)
    raise NasplugError(f"unknown launcher {kind!r}; use one of {', '.join(LAUNCHERS)}")


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def record(candidate: Candidate, spec: TrainSpec, result: TrainResult) -> dict[str, Any]:
    """One retraining as plain data (accuracies in %, like NAS-Bench-201's tables)."""
    return {
        "arch": candidate.arch, "key": candidate.key, "trial": candidate.trial,
        "search_value": candidate.value, "proxy": candidate.proxy, "status": result.status,
        "reason": result.reason, "test_acc": _finite(100.0 * result.test_acc),
        "test_acc_per_epoch": [round(100.0 * m["test_acc"], 4) for m in result.history if "test_acc" in m],
        "epochs": result.epochs_run, "seconds": round(result.seconds, 2), "device": result.device,
        "workers": result.info.get("world_size", 1), "job": spec.job_id(), "model": spec.model,
        "dataset": spec.dataset, "recipe": spec.recipe, "init": spec.init, "lr": spec.lr,
        "lr_rule": spec.lr_rule,
        "batch_size": spec.batch_size, "seed": spec.seed,
    }


def retrain(candidates: Sequence[Candidate], specs: Sequence[TrainSpec], launcher: Launcher,
            out: str | Path, *, study: optuna.Study | None = None,
            echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train ``specs[i]`` for ``candidates[i]``; write the table (and the study's attributes)."""
    if len(candidates) != len(specs):
        raise ValueError("one spec per candidate")
    out = Path(out)
    results = run_jobs(specs, out / "runs", launcher, echo)
    records = [record(c, s, r) for c, s, r in zip(candidates, specs, results)]
    write_table(records, out)
    if study is not None:
        for rec in records:
            if rec["status"] != "error":
                study.set_user_attr(f"{ATTR_RETRAINED}:{rec['job']}", rec)
    return records


def _fmt(x: Any, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def markdown(records: Sequence[dict[str, Any]]) -> str:
    """The retraining table: proxy score → search value → retrained accuracy."""
    header = ["#", "trial", "architecture", "proxy", "search value", "peak LR", "retrained test acc (%)",
              "epochs", "time (s)", "device", "status"]
    lines = ["# Retrained architectures", "", "| " + " | ".join(header) + " |",
             "|" + " --- |" * len(header)]
    for i, r in enumerate(records):
        device = f"{r['workers']}×{r['device']}" if r["device"] else "–"
        status = r["status"] if r["status"] == "ok" else table_cell(f"{r['status']}: {r['reason']}")
        lines.append(f"| {i + 1} | {_fmt(r['trial'])} | `{table_cell(r['arch'])}` | {_fmt(r['proxy'], 4)} | "
                     f"{_fmt(r['search_value'])} | {r['lr']:.4g} | {_fmt(r['test_acc'])} | {r['epochs']} | "
                     f"{_fmt(r['seconds'], 1)} | {device} | {status} |")
    if records:
        r = records[0]
        lines += ["", f"Trained on `{r['dataset']}` with model `{r['model']}`, recipe `{r['recipe']}`, "
                  f"init `{r['init']}`, learning rate {r['lr_rule']}, global batch {r['batch_size']}, "
                  f"seed {r['seed']}.", "",
                  "![test accuracy per epoch](retrain_curves.png)", ""]
    return "\n".join(lines)


def write_table(records: Sequence[dict[str, Any]], out: str | Path) -> None:
    """``retrain.json``, ``retrain.md`` and ``retrain_curves.png`` under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "retrain.json").write_text(json.dumps(list(records), indent=1))
    (out / "retrain.md").write_text(markdown(records))
    fig, ax = pyplot().subplots(figsize=(6, 4))
    for r in records:
        if r["test_acc_per_epoch"]:
            epochs = range(1, len(r["test_acc_per_epoch"]) + 1)
            ax.plot(epochs, r["test_acc_per_epoch"], label=r["arch"][:40], lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    if len(records) <= 10:
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "retrain_curves.png", dpi=120)
    pyplot().close(fig)
