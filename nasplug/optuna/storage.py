"""Storages for resumable, multi-process searches, and recovery of trials whose worker died.

:func:`open_storage` resolves what a user types: a SQLite file path (the embedded default), any
SQLAlchemy URL Optuna's ``RDBStorage`` accepts, or ``journal:PATH`` for Optuna's append-only
``JournalStorage`` on a file (good on network file systems and with many processes). An
in-memory database (``sqlite://``) is refused: a search's storage must outlive the process.
Creating a new SQLite file is serialized between the processes of one host (a file lock), so
several searches started at the same instant on a new file all get the same schema.

A worker killed mid-trial (``kill -9``, an OOM, a node lost) or interrupted (Ctrl-C) leaves a
trial that never finishes. The storages returned here tag every trial with the process that runs it
(host, pid, process start time) **atomically with the trial's creation** (or, for an enqueued
trial, before it becomes RUNNING), so there is no moment at which a RUNNING trial has no owner.
:func:`recover_dead_trials` — run when a search (re)starts — fails exactly the RUNNING trials whose
process is gone on this host, with the reason in ``nasplug:fail_reason``, and re-enqueues their
parameters so the architecture is still evaluated; one process per host recovers at a time (a file
lock), so a dead trial is retried exactly once. A Ctrl-C'd trial is marked and re-enqueued by its
own worker (:func:`retry_later`). Neither kind counts towards a search's budget
(:func:`counted_trials`). Trials of live workers are left alone; for workers on other machines,
use Optuna's heartbeat (``heartbeat=``).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from filelock import FileLock
from optuna.storages import JournalStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from nasplug.checks import writable_file
from nasplug.errors import NasplugError
from nasplug.search.attrs import ATTR_FAIL_REASON, ATTR_RETRY_OF, DEAD_WORKER, RETRIED_REASONS

WORKER_ATTR = "nasplug:worker"
#: Spellings of SQLite's in-memory database.
IN_MEMORY = ("sqlite://", "sqlite:///:memory:", ":memory:")


def storage_url(spec: str | os.PathLike) -> str:
    """A storage spec as Optuna's dashboard and CLI want it (``sqlite:///abs/path`` for a file)."""
    text = str(spec)
    if text.startswith("journal:") or "://" in text or text == ":memory:":
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def storage_file(spec: str | os.PathLike) -> Path | None:
    """The file a storage spec keeps its study in: a plain path, ``sqlite:///PATH`` or
    ``journal:PATH``; ``None`` for a database server or an in-memory database."""
    text = str(spec)
    if text in IN_MEMORY:
        return None
    for prefix in ("journal:", "sqlite:///"):
        if text.startswith(prefix):
            return Path(text[len(prefix):]).expanduser()
    return None if "://" in text else Path(text).expanduser()


def host_lock(*parts: str) -> FileLock:
    """A lock shared by the processes of this host, named by ``parts`` (a storage URL, a study, a
    purpose): a file in the temporary folder, released by the OS if its holder dies."""
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=12).hexdigest()
    return FileLock(str(Path(tempfile.gettempdir()) / f"nasplug-{digest}.lock"))


def _check_journal(path: Path) -> None:
    """A ``journal:`` file must be empty or new, or hold Optuna journal records (one JSON object per
    line with an ``op_code``): any other file is refused before Optuna appends a record to it."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb") as fh:
        first = fh.readline(1 << 16)
    try:
        record = json.loads(first)
    except (ValueError, UnicodeDecodeError):
        record = None
    if not isinstance(record, dict) or "op_code" not in record:
        raise NasplugError(f"journal file {path} exists and is not an Optuna journal: give a new file, "
                           "or the journal of a study")


def open_storage(spec: str | os.PathLike, heartbeat: int | None = None) -> optuna.storages.BaseStorage:
    """Open ``spec``: a file path (SQLite), an SQLAlchemy URL, or ``journal:PATH``.

    The storage tags every trial it starts with its worker (see the module docstring). SQLite
    connections wait up to 60 s for a lock instead of failing at once, which is what lets several
    local worker processes share one file. ``heartbeat`` (seconds) enables Optuna's heartbeat on
    RDB storages, for workers on other machines. Raises :class:`~nasplug.errors.NasplugError` for
    an in-memory database, a file that cannot be created, or a URL that cannot be opened.
    """
    text = str(spec)
    if text in IN_MEMORY or text.startswith("sqlite:///:memory:"):
        raise NasplugError(f"storage {text!r} is an in-memory database, which ends with the process: "
                           "give a file (PATH.db, sqlite:///PATH) or journal:PATH to store the study")
    if text.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        if not text[len("journal:"):]:
            raise NasplugError("journal storage needs a file: journal:PATH")
        path = writable_file(text[len("journal:"):], "journal file")
        _check_journal(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        storage = TaggedJournalStorage(JournalFileBackend(str(path)))
        storage.location = f"journal:{path.resolve()}"
        return storage
    url = storage_url(text)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        path = writable_file(url[len("sqlite:///"):], "storage file")
        path.parent.mkdir(parents=True, exist_ok=True)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    if heartbeat:
        kwargs["heartbeat_interval"] = int(heartbeat)
        kwargs["grace_period"] = 2 * int(heartbeat)
        kwargs["heartbeat_stale_trial_callback"] = optuna.storages.RetryHeartbeatStaleTrialCallback()
    try:
        # Creating the schema of a new database is not safe under concurrency (two processes get
        # "table studies already exists" or a duplicate alembic version): one process at a time.
        with host_lock(url, "create"):
            storage = TaggedRDBStorage(url, **kwargs)
    except Exception as err:  # bad URL, missing driver, not a database: a user error, one line
        reason = getattr(err, "orig", None) or err  # SQLAlchemy's wrapped DB-API error, without its SQL
        raise NasplugError(f"cannot open storage {text!r}: {str(reason).splitlines()[0]}") from None
    storage.location = url
    return storage


# ---------------------------------------------------------------------- worker tags
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


def worker_tag() -> dict[str, Any]:
    """This process as a trial's owner: host, pid and process start time."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _start_time(pid)}


def worker_alive(tag: dict[str, Any] | None) -> bool | None:
    """Whether the process of a worker tag still runs (``None``: unknown — no tag, another host)."""
    if not tag or tag.get("host") != socket.gethostname():
        return None
    return _alive(int(tag["pid"]), tag.get("start"))


def tag_worker(trial: optuna.Trial) -> None:
    """Record which process runs this trial, for a storage that did not tag it at creation (a
    storage not opened with :func:`open_storage`)."""
    if WORKER_ATTR not in trial.storage.get_trial(trial._trial_id).system_attrs:
        trial.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker_tag())


class _Tagging:
    """Storage mixin: every trial this process creates RUNNING carries its worker tag from its
    first write, and an enqueued trial is tagged before it turns RUNNING. ``location`` is where
    the storage was opened (a URL or ``journal:PATH``), which names its host locks."""

    location: str | None = None

    @staticmethod
    def _tagged(template: FrozenTrial | None) -> FrozenTrial | None:
        if template is None:
            return optuna.trial.create_trial(state=TrialState.RUNNING,
                                             system_attrs={WORKER_ATTR: worker_tag()})
        if template.state == TrialState.RUNNING and WORKER_ATTR not in template.system_attrs:
            template = optuna.trial.FrozenTrial(
                number=template.number, state=template.state, value=None, values=template.values,
                datetime_start=template.datetime_start or datetime.now(), datetime_complete=None,
                params=template.params, distributions=template.distributions,
                user_attrs=template.user_attrs,
                system_attrs={**template.system_attrs, WORKER_ATTR: worker_tag()},
                intermediate_values=template.intermediate_values, trial_id=template._trial_id)
        return template

    def set_trial_state_values(self, trial_id: int, state: TrialState, values=None) -> bool:
        if state != TrialState.RUNNING:
            return super().set_trial_state_values(trial_id, state, values)
        # Popping a WAITING trial: tag first, so the trial is never RUNNING without an owner. If
        # another process wins the pop, it re-tags right after; a trial is therefore recovered at
        # the latest once every process that tried to start it has ended.
        self.set_trial_system_attr(trial_id, WORKER_ATTR, worker_tag())
        if not super().set_trial_state_values(trial_id, state, values):
            return False
        self.set_trial_system_attr(trial_id, WORKER_ATTR, worker_tag())
        return True


class TaggedRDBStorage(_Tagging, RDBStorage):
    """Optuna's ``RDBStorage`` whose trials carry their worker tag from creation."""

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        return super()._create_new_trial(study_id, self._tagged(template_trial))


class TaggedJournalStorage(_Tagging, JournalStorage):
    """Optuna's ``JournalStorage`` whose trials carry their worker tag from creation."""

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return super().create_new_trial(study_id, self._tagged(template_trial))


# ---------------------------------------------------------------------- recovery and budgets
def retry_later(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> None:
    """Enqueue the parameters of a trial that will not finish, marked ``nasplug:retry_of`` (with no
    parameters yet — it died before sampling — the retry is a fresh trial in its place)."""
    study.enqueue_trial(trial.params, user_attrs={ATTR_RETRY_OF: trial.number})


def recover_dead_trials(study: optuna.Study, retry: bool = True) -> list[int]:
    """Fail the RUNNING trials whose worker process on this host is gone; re-enqueue their params.

    Returns the numbers of the trials recovered. One process of this host recovers a study at a
    time, and re-reads each trial under that lock, so a dead trial is recovered (and retried)
    exactly once however many searches start at the same instant. Trials without a worker tag,
    or tagged by another host, are left alone (use Optuna's heartbeat for those).
    """
    recovered = []
    storage = study._storage
    candidates = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                  if worker_alive(t.system_attrs.get(WORKER_ATTR)) is False]
    if not candidates:
        return recovered
    with host_lock(storage_location(storage), study.study_name, "recover"):
        for trial in candidates:
            fresh = storage.get_trial(trial._trial_id)
            worker = fresh.system_attrs.get(WORKER_ATTR)
            if fresh.state != TrialState.RUNNING or worker_alive(worker) is not False:
                continue  # finished, recovered by another process, or re-tagged by a live one
            try:
                storage.set_trial_user_attr(trial._trial_id, ATTR_FAIL_REASON,
                                            f"{DEAD_WORKER}: process {worker['pid']} ended mid-trial")
                if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            recovered.append(fresh.number)
            if retry:
                retry_later(study, fresh)
    return recovered


def storage_location(storage: Any) -> str:
    """Where a storage from :func:`open_storage` was opened (a URL with an absolute SQLite path, or
    ``journal:`` and an absolute path): the stable name of its host locks."""
    inner = getattr(storage, "_backend", None) if type(storage).__name__ == "_CachedStorage" else storage
    return getattr(inner, "location", None) or f"{type(inner).__name__}:{id(inner)}"


def retried(trial: FrozenTrial) -> bool:
    """Whether a trial failed because its worker died or was interrupted (it is retried)."""
    reason = str(trial.user_attrs.get(ATTR_FAIL_REASON, ""))
    return trial.state == TrialState.FAIL and reason.split(":")[0] in RETRIED_REASONS


def counted_trials(study: optuna.Study) -> int:
    """Trials that count towards a search budget: finished or running, except dead-worker and
    interrupted failures (their parameters are retried) — so a resumed search ends with the
    number of trials asked for."""
    return sum(t.state != TrialState.WAITING and not retried(t) for t in study.get_trials(deepcopy=False))


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
