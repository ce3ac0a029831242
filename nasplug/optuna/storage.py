"""Storages for resumable, multi-process searches, and recovery of trials whose worker died.

:func:`open_storage` resolves what a user types: a SQLite file path (the embedded default), any
SQLAlchemy URL Optuna's ``RDBStorage`` accepts, or ``journal:PATH`` for Optuna's append-only
``JournalStorage`` on a file (good on network file systems and with many processes).

A worker killed mid-trial (``kill -9``, an OOM, a node lost) leaves its trial ``RUNNING`` forever.
Optuna's heartbeat detects that for RDB storages only, and only after a grace period. Every worker
of ours therefore tags its trials with ``host``/``pid``/process start time (:func:`tag_worker`), and
:func:`recover_dead_trials` — run when a search (re)starts — fails exactly the RUNNING trials whose
process is gone on this host, with the reason in ``nasplug:fail_reason``, and re-enqueues their
parameters so the architecture is still evaluated. Trials of live workers (another process
searching the same study right now) are left alone.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nasplug.errors import NasplugError
from nasplug.search.attrs import ATTR_FAIL_REASON, ATTR_RETRY_OF

WORKER_ATTR = "nasplug:worker"
#: Reason recorded on trials whose worker process died; such trials do not count towards budgets.
DEAD_WORKER = "worker_died"


def storage_url(spec: str | os.PathLike) -> str:
    """A storage spec as Optuna's dashboard and CLI want it (``sqlite:///abs/path`` for a file)."""
    text = str(spec)
    if text.startswith("journal:") or "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def open_storage(spec: str | os.PathLike, heartbeat: int | None = None) -> optuna.storages.BaseStorage:
    """Open ``spec``: a file path (SQLite), an SQLAlchemy URL, or ``journal:PATH``.

    SQLite connections wait up to 60 s for a lock instead of failing at once, which is what lets
    several local worker processes share one file. ``heartbeat`` (seconds) enables Optuna's
    heartbeat on RDB storages, for workers on other machines.
    """
    text = str(spec)
    if text.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(text[len("journal:"):]).expanduser()
        if not text[len("journal:"):]:
            raise NasplugError("journal storage needs a file: journal:PATH")
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    url = storage_url(text)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    if heartbeat:
        kwargs["heartbeat_interval"] = int(heartbeat)
        kwargs["grace_period"] = 2 * int(heartbeat)
        kwargs["heartbeat_stale_trial_callback"] = optuna.storages.RetryHeartbeatStaleTrialCallback()
    try:
        return optuna.storages.RDBStorage(url, **kwargs)
    except Exception as err:  # bad URL, missing driver: a user error, one line
        raise NasplugError(f"cannot open storage {text!r}: {err}") from None


def _start_time(pid: int) -> str | None:
    """The process start time (clock ticks since boot) from /proc, to tell a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start is not None and Path("/proc").is_dir():
        return _start_time(pid) == start
    return True


def tag_worker(trial: optuna.Trial) -> None:
    """Record which process runs this trial (host, pid, start time) in its system attributes."""
    pid = os.getpid()
    trial.storage.set_trial_system_attr(
        trial._trial_id, WORKER_ATTR, {"host": socket.gethostname(), "pid": pid, "start": _start_time(pid)})


def recover_dead_trials(study: optuna.Study, retry: bool = True) -> list[int]:
    """Fail the RUNNING trials whose worker process on this host is gone; re-enqueue their params.

    Returns the numbers of the trials recovered. Trials without a worker tag, or tagged by another
    host, are left alone (use Optuna's heartbeat for those).
    """
    host, recovered = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.system_attrs.get(WORKER_ATTR)
        if not worker or worker.get("host") != host or _alive(int(worker["pid"]), worker.get("start")):
            continue
        storage = study._storage
        try:
            storage.set_trial_user_attr(trial._trial_id, ATTR_FAIL_REASON,
                                        f"{DEAD_WORKER}: process {worker['pid']} ended mid-trial")
            if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                continue
        except Exception:  # another process recovered it first
            continue
        recovered.append(trial.number)
        if retry and trial.params:
            study.enqueue_trial(trial.params, user_attrs={ATTR_RETRY_OF: trial.number})
    return recovered


def counted_trials(study: optuna.Study) -> int:
    """Trials that count towards a search budget: finished or running, except dead-worker failures
    (their parameters are retried) — so a resumed search ends with the number of trials asked for."""
    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            continue
        if t.state == TrialState.FAIL and str(t.user_attrs.get(ATTR_FAIL_REASON, "")).startswith(DEAD_WORKER):
            continue
        n += 1
    return n


class StopAtTrials:
    """Optuna callback: stop the study once :func:`counted_trials` reaches ``n_trials``.

    Counting running trials too (unlike ``MaxTrialsCallback``'s default) keeps several workers on one
    storage from overshooting by more than a race window: a worker stops as soon as the trials in
    flight would complete the budget.
    """

    def __init__(self, n_trials: int):
        self.n_trials = n_trials

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if counted_trials(study) >= self.n_trials:
            study.stop()
