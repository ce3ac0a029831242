"""Objective-side helpers: prune before training, reuse duplicates, record failures.

:class:`ArchObjective` turns any ``evaluate(arch) -> float`` (a trainer, a benchmark-table lookup, a
user callable) into an Optuna objective that

1. suggests a cell with :func:`~nasplug.optuna.suggest_architecture`;
2. rejects it *before any training* when it fails the filter (:func:`prune_before_training`: the
   proxy is reported at step 0 and :class:`optuna.TrialPruned` raised, so TPE still learns from the
   rejection) — with :class:`~nasplug.optuna.FilteredSampler` this never fires, it is a safety net;
3. does not train a network twice: if a completed trial of the study already evaluated a cell with
   the same key — the key of what is evaluated (:mod:`nasplug.search.dedupe`: the canonical key of
   the function, of its MLP abstraction, or the cell itself) — its value is reused. The cache is
   read from the study's storage (user attributes of completed trials), so it also works across
   processes sharing the storage and across resumed runs; a duplicate of a cell that is being
   evaluated right now waits for it (``key_lock``) instead of training it a second time;
4. in a multi-objective study (``objectives=``, an :class:`~nasplug.search.objectives.ObjectiveSet`)
   returns the cell's vector — the evaluated (or reused) accuracy and the costs of the cell's own
   network, computed for every trial;
5. records a failed evaluation — a :class:`~nasplug.search.EvaluationFailed` raised by
   ``evaluate`` (a diverged training) or a non-finite value — as a FAIL trial with its reason in
   ``nasplug:fail_reason``, and lets the study continue (pass ``catch=objective.catch`` to
   ``study.optimize``).

It is the Optuna adapter of the framework-neutral core (:mod:`nasplug.search`): evaluators,
failure reasons, filter resolution and the result cache come from there.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import optuna
from optuna.trial import TrialState

from nasplug.graph import ArchGraph
from nasplug.optuna.params import suggest_architecture
from nasplug.optuna.storage import WORKER_ATTR, retry_later, tag_worker, worker_alive
from nasplug.scorers import oriented
from nasplug.search import EvaluationFailed, ResultCache, check_value, resolve_filter, resolve_scorer
from nasplug.search.attrs import (
    ATTR_DUPLICATE_OF,
    ATTR_EVALUATED,
    ATTR_FAIL_REASON,
    ATTR_KEY,
    ATTR_PROXY,
    ATTR_REJECTED_BY,
    INTERRUPTED,
)
from nasplug.search.dedupe import evaluation_key
from nasplug.search.evaluation import Report
from nasplug.search.objectives import ObjectiveSet
from nasplug.search_spaces import DigitSpace, resolve_space

__all__ = ["ArchObjective", "DuplicateCache", "EvaluationFailed", "KeyLocks", "optuna_report",
           "prune_before_training"]


def optuna_report(trial: optuna.Trial) -> Report:
    """A core ``report(step, value)`` callback that reports to ``trial`` and raises
    :class:`optuna.TrialPruned` when the study's pruner says so."""

    def report(step: int, value: float) -> None:
        trial.report(float(value), step=int(step))
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned by {type(trial.study.pruner).__name__} after step {step}")

    return report


def prune_before_training(trial: optuna.Trial, arch: ArchGraph | str, filter: Any = "dag_box",
                          scorer: Any = None, space: DigitSpace | str = "nb201") -> float | None:
    """Reject a cell before any training, for objectives that keep their own sampler.

    If a scorer is given its (training-free) value is reported as the intermediate value at step 0,
    oriented to the study's direction so that Optuna's TPE, which ranks pruned trials by their last
    intermediate value, learns which rejected cells were "less bad". If the filter rejects the cell,
    ``nasplug:rejected_by`` is set and :class:`optuna.TrialPruned` raised — the objective stops
    before touching data.

    Returns
    -------
    The proxy score (``None`` without a scorer) when the cell is kept.
    """
    arch = ArchGraph.parse(arch)
    filt = resolve_filter(filter, space)
    scorer = resolve_scorer(scorer)
    proxy = None
    if scorer is not None:
        proxy = float(scorer.score(arch))
        trial.set_user_attr(ATTR_PROXY, proxy)
    if scorer is not None and len(trial.study.directions) == 1:  # Optuna reports one objective only
        maximize = trial.study.direction == optuna.study.StudyDirection.MAXIMIZE
        # oriented to the study: a maximized study wants the scorer's "better" to be larger
        toward = float(oriented(proxy, scorer.higher_is_better == maximize))
        if math.isfinite(toward):
            trial.report(toward, step=0)
    if filt is not None and not filt.keep(arch):
        trial.set_user_attr(ATTR_REJECTED_BY, getattr(filt, "name", type(filt).__name__))
        raise optuna.TrialPruned(f"{arch} rejected by filter {getattr(filt, 'name', filt)!r} before training")
    return proxy


class DuplicateCache:
    """The core :class:`~nasplug.search.ResultCache`, fed from a study's storage.

    Completed trials carry ``nasplug:key``; the cache ingests them incrementally (trials come back
    ordered by number and a finished trial never changes), so a lookup costs only the trials that
    finished since the last one — and sees trials finished by other processes on the same storage.
    In a multi-objective study the cached value is the evaluated one, at ``value_index``.
    """

    def __init__(self, value_index: int = 0) -> None:
        self.value_index = value_index
        self.results = ResultCache()
        self._cursor = 0
        self._lock = threading.Lock()

    def lookup(self, study: optuna.Study, key: str) -> tuple[int, float] | None:
        """``(trial number, value)`` of the first completed trial with key ``key``."""
        with self._lock:
            trials = study.get_trials(deepcopy=False)
            cursor, advancing = self._cursor, True
            for i in range(self._cursor, len(trials)):
                t = trials[i]
                done = t.state == TrialState.COMPLETE and t.values is not None
                if done and len(t.values) > self.value_index:
                    k = t.user_attrs.get(ATTR_KEY)
                    if k is not None:
                        self.results.record(k, t.number, float(t.values[self.value_index]))
                if advancing and t.state.is_finished():
                    cursor = i + 1
                else:
                    advancing = False
            self._cursor = cursor
        hit = self.results.lookup(key)
        return None if hit is None else (hit.trial, hit.value)

    def __getstate__(self) -> dict[str, Any]:
        return {"value_index": self.value_index, "results": self.results, "_cursor": self._cursor}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class KeyLocks:
    """In-process locks by key: the default of :class:`ArchObjective` (threads of one study,
    ``study.optimize(n_jobs=...)``). ``nasplug search`` passes host-wide file locks instead, so
    worker processes of one host wait for each other too."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, key: str) -> AbstractContextManager:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()


class ArchObjective:
    """An Optuna objective around a pluggable ``evaluate(arch) -> float``.

    Parameters
    ----------
    evaluate
        Called with the :class:`~nasplug.ArchGraph` of each kept, not-yet-seen cell; returns a float
        or a :class:`~nasplug.search.Evaluation` (value + attributes stored on the trial). Raise
        :class:`~nasplug.search.EvaluationFailed` for a failed evaluation (diverged training); a
        NaN/inf return value is treated the same way.
    space
        Search space (object or name) suggested with :func:`~nasplug.optuna.suggest_architecture`.
    filter, scorer
        Applied by :func:`prune_before_training` before ``evaluate`` (``None`` to skip).
    dedupe
        Reuse the stored value of a completed trial with the same key.
    key
        Which cells are the same evaluation: a rule name (``"function"``, the default: the
        canonical key; ``"mlp_function"`` when cells are trained as the theory MLP; ``"cell"`` for
        a table lookup — :func:`~nasplug.search.dedupe.key_rule`) or a callable ``arch -> str``.
        It is stored as the trial's ``nasplug:key``.
    key_lock
        ``key_lock(key)`` returns a context manager held while a key is looked up and evaluated,
        so a duplicate of a cell being evaluated waits and reuses its value instead of training it
        again (default: :class:`KeyLocks`, within this process).
    prefix
        Parameter-name prefix of the architecture.
    pass_trial
        Call ``evaluate(arch, trial)`` instead, so a trainer can report per-epoch values and let an
        Optuna pruner stop it (raise :class:`optuna.TrialPruned`); a core evaluator gets that from
        ``lambda arch, trial: evaluator(arch, optuna_report(trial))``.
    objectives
        For a multi-objective study (directions in the set's order): return
        ``objectives.vector(arch, value)`` instead of the value.

    A Ctrl-C (``KeyboardInterrupt``) during a trial marks it ``interrupted`` and re-enqueues its
    parameters before the interrupt propagates: like a dead worker's trial, it does not count
    towards a budget (:func:`~nasplug.optuna.storage.counted_trials`) and is evaluated when the
    search resumes.

    Attributes
    ----------
    n_evaluations
        How many times this process called ``evaluate`` (duplicates and rejections excluded).
    catch
        The exceptions to pass as ``study.optimize(..., catch=objective.catch)``.
    """

    catch = (EvaluationFailed,)

    def __init__(self, evaluate: Callable[..., Any], space: DigitSpace | str = "nb201", *,
                 filter: Any = None, scorer: Any = None, dedupe: bool = True,
                 key: str | Callable[[ArchGraph], str] = "function",
                 key_lock: Callable[[str], AbstractContextManager] | None = None, prefix: str = "",
                 pass_trial: bool = False, objectives: ObjectiveSet | None = None):
        self.evaluate = evaluate
        self.space = resolve_space(space)
        self.filter = resolve_filter(filter, self.space)
        self.scorer = resolve_scorer(scorer)
        self.dedupe = dedupe
        self.key = evaluation_key(key) if isinstance(key, str) else key
        self.key_lock = key_lock or KeyLocks()
        self.prefix = prefix
        self.pass_trial = pass_trial
        self.objectives = objectives
        self.cache = DuplicateCache(objectives.accuracy_index if objectives is not None else 0)
        self.n_evaluations = 0

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        tag_worker(trial)  # no-op on storages from open_storage, which tag trials at creation
        try:
            return self._run(trial)
        except KeyboardInterrupt:
            trial.set_user_attr(ATTR_FAIL_REASON, f"{INTERRUPTED}: stopped by Ctrl-C mid-trial")
            retry_later(trial.study, trial)
            raise

    def _run(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        arch = suggest_architecture(trial, self.space, self.prefix)
        if self.filter is not None or self.scorer is not None:
            prune_before_training(trial, arch, self.filter, self.scorer, self.space)
        key = self.key(arch)
        trial.set_user_attr(f"{self.prefix}{ATTR_KEY}" if self.prefix else ATTR_KEY, key)
        if not self.dedupe:
            return self._evaluate(trial, arch)
        with self.key_lock(key):
            hit = self.cache.lookup(trial.study, key) or self._told_soon(trial, key)
            if hit is not None:
                trial.set_user_attr(ATTR_DUPLICATE_OF, hit[0])
                return self._values(arch, hit[1])
            return self._evaluate(trial, arch)

    def _told_soon(self, trial: optuna.Trial, key: str) -> tuple[int, float] | None:
        """A trial of this key whose evaluation finished but which Optuna has not marked complete
        yet (the key lock is released when the objective returns, a moment before): wait for it,
        while its worker lives."""
        while True:
            pending = [t for t in trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                       if t.number != trial.number and t.user_attrs.get(ATTR_KEY) == key
                       and t.user_attrs.get(ATTR_EVALUATED)
                       and worker_alive(t.system_attrs.get(WORKER_ATTR)) is not False]
            if not pending:
                return self.cache.lookup(trial.study, key)
            time.sleep(0.02)

    def _evaluate(self, trial: optuna.Trial, arch: ArchGraph) -> float | tuple[float, ...]:
        self.n_evaluations += 1
        try:
            result = check_value(self.evaluate(arch, trial) if self.pass_trial else self.evaluate(arch))
        except EvaluationFailed as err:
            trial.set_user_attr(ATTR_FAIL_REASON, str(err))
            raise
        for key, value in result.attrs.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr(ATTR_EVALUATED, True)
        return self._values(arch, result.value)

    def _values(self, arch: ArchGraph, value: float) -> float | tuple[float, ...]:
        return value if self.objectives is None else self.objectives.vector(arch, value)
