"""A Ray Tune searcher that prunes architectures in the driver, before any trial is launched.

:class:`ArchSearcher` wraps any Ray Tune :class:`~ray.tune.search.Searcher` (by default Ray's own
``OptunaSearch`` around nasplug's :class:`~nasplug.optuna.FilteredSampler`, see
:func:`optuna_searcher`) and decides, in the driver, what becomes a Ray trial:

* **filter** — a proposed cell that fails the filter never becomes a trial. With the Optuna
  default the sampler already re-draws such cells (the rejected proposals never even become Optuna
  trials); any other searcher's rejected proposals are told back to it as pruned and it is asked
  again (at most ``max_tries`` times per call, then ``suggest`` waits for the next one);
* **duplicates** — a cell whose dedupe key (the key of what is evaluated — its function, its MLP
  abstraction's or the cell itself, :func:`~nasplug.search.dedupe.evaluation_key` — plus the trial's
  other hyper-parameters, :func:`~nasplug.search.dedupe.with_hyperparameters`) has a finished value
  is answered from the :class:`~nasplug.search.ResultCache` and never launched; one equal to a
  **running** cell is parked and gets that trial's value when it finishes (if it ends without one —
  failed, stopped early — the parked proposal is launched itself);
* **outcomes** — what reaches the study (through the wrapped searcher): a trial that ended by
  itself is COMPLETE with its last value; one stopped early by a scheduler (ASHA) or a stopper is
  PRUNED with its intermediate values — a low-fidelity value is not the cell's value, so it never
  enters the duplicate cache and never ranks among the best cells (Tune never passes the result
  that stopped a trial to ``on_trial_result``, which is how the two are told apart; a stopped
  trial whose last result says ``nasplug:evaluated`` had finished and is COMPLETE); a failed
  evaluation (reported with ``nasplug:fail_reason``, e.g. a diverged training) or a crashed trial
  is FAIL with its reason;
* **several objectives** — with an :class:`~nasplug.search.objectives.ObjectiveSet` the metrics
  are the accuracy (``value``) and the costs by name (``params``, ``flops``, ``latency``:
  :func:`objective_metrics`), as the Optuna backend's :class:`~nasplug.optuna.ArchObjective` returns
  them: the cache holds the evaluated accuracy, and a duplicate is answered with it and *its own*
  costs — parameters and FLOPs in closed form in the driver, the latency as a trial measured it on
  its device. A latency is only known for networks a trial has run, so with ``latency`` the
  dedupe key also names the network (the live edges): a cell of the same function but another
  network is evaluated itself;
* **budget** — ``n_trials`` proposals (launched, answered from the cache, or parked), then
  ``FINISHED``; ``timeout`` seconds after the run started, no new trial is launched.

Everything is picklable with the standard library (Tune's experiment snapshots) and
:meth:`save`/:meth:`restore` round-trip the whole state, so ``Tuner.restore`` continues a search.
With a ``study``, nasplug's trial attributes (``nasplug:evaluated``, ``duplicate_of``,
``fail_reason``, the trainable's ``lr`` and ``train_seconds``, the Ray trial id) are written to the
Optuna trial of each proposal, so ``summary.md``, the plots and ``optuna-dashboard`` work for Ray runs.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.result import TRAINING_ITERATION
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from nasplug.errors import NasplugError
from nasplug.graph import ArchGraph
from nasplug.optuna.sampler import FilteredSampler
from nasplug.ray.space import (
    METRIC,
    OPTUNA_TRIAL,
    TIME_ATTR,
    ArchSpace,
    arch_from_config,
    hyperparameters,
    objective_metrics,
    objective_modes,
)
from nasplug.search import ResultCache, keep_mask, resolve_filter
from nasplug.search.attrs import (
    ATTR_ARCH,
    ATTR_DUPLICATE_OF,
    ATTR_EVALUATED,
    ATTR_FAIL_REASON,
    ATTR_KEY,
    ATTR_LR,
    ATTR_REJECTED_BY,
)
from nasplug.search.costs import live_cell
from nasplug.search.dedupe import evaluation_key, with_hyperparameters
from nasplug.search.objectives import ObjectiveSet
from nasplug.search.progress import trial_line
from nasplug.search_spaces import DigitSpace, resolve_space

logger = logging.getLogger("nasplug.ray")

#: Fail reason of a trial that raised (after Tune's retries).
CRASHED = "error: the trial raised (see error.txt in its Ray trial folder)"
#: Optuna user attribute holding the Ray trial id that evaluated the cell.
ATTR_RAY_TRIAL = "nasplug:ray_trial"


@dataclass
class _Proposal:
    """A cell the wrapped searcher proposed under ``base_id``, and where it is now."""

    base_id: str
    config: dict[str, Any]
    key: str                       # dedupe key
    arch: str
    optuna_trial: int | None

    @property
    def name(self) -> str:
        """How log lines call it: the Optuna trial number, else the base searcher's id."""
        return str(self.optuna_trial) if self.optuna_trial is not None else self.base_id


class ArchSearcher(Searcher):
    """Wrap a Ray Tune searcher: filter, dedupe and record architecture trials in the driver.

    Parameters
    ----------
    base
        The searcher that proposes configs whose ``edge_{s}_{t}`` entries encode a cell of
        ``space`` (e.g. :func:`optuna_searcher`'s ``OptunaSearch``), built with this searcher's
        metric and mode (or none: it then gets them).
    space, filter
        The search space and the filter every launched cell passes (object, registered name or
        ``None``).
    metric, mode
        The reported value and ``"max"``/``"min"`` (one objective).
    objectives
        A multi-objective search (the metrics are then :func:`objective_metrics`, the modes the
        objectives' directions; ``metric`` and ``mode`` are ignored). Its latency meter, if any, is
        fed with the trials' measurements; the driver measures nothing itself.
    n_trials
        Proposals to make in total (launched + answered from the cache + parked); ``None``: until
        the wrapped searcher is finished.
    timeout
        Seconds after the first ``suggest`` of a run (a restored run starts its own clock) after
        which no new trial is launched.
    dedupe
        Answer duplicates from the cache and park duplicates of running cells.
    study
        The Optuna study the base searcher writes to: nasplug's trial attributes go there, and its
        completed trials seed the duplicate cache (a continued search never re-evaluates a cell).
    max_tries
        Proposals to draw per ``suggest`` call when the base searcher does not filter itself.
    key
        Which cells share one evaluation: a key rule of :func:`~nasplug.search.dedupe.evaluation_key`
        (``SearchConfig.key_rule``: ``"function"``, ``"mlp_function"``, ``"cell"``) or ``arch -> key``.
    """

    def __init__(self, base: Searcher, space: DigitSpace | str = "nb201", *, filter: Any = None,
                 metric: str = METRIC, mode: str = "max", n_trials: int | None = None,
                 timeout: float | None = None, dedupe: bool = True,
                 study: optuna.Study | None = None, max_tries: int = 20,
                 key: str | Callable[[ArchGraph], str] = "function", objectives: ObjectiveSet | None = None):
        if objectives is not None:
            metric, mode = objective_metrics(objectives), objective_modes(objectives)
        elif mode not in ("max", "min"):
            raise NasplugError(f"mode must be max or min, got {mode!r}")
        if n_trials is not None and n_trials < 0:
            raise NasplugError(f"n_trials must be at least 0, got {n_trials}")
        super().__init__(metric=metric, mode=mode)
        self.objectives = objectives
        #: The reported metrics (Tune checks every result for all of them) and the evaluated one.
        self.metrics: list[str] = list(metric) if objectives is not None else [metric]
        self.value_metric = METRIC if objectives is not None else metric
        if base.metric is None:
            base.set_search_properties(metric, mode, {})
        elif (base.metric, base.mode) != (metric, mode):
            raise NasplugError(f"the base searcher optimizes {base.metric!r} ({base.mode}), this one "
                               f"{metric!r} ({mode}): give both the same metric and mode")
        self.base = base
        self.space = resolve_space(space)
        self.keep = keep_mask(self.space, resolve_filter(filter, self.space))
        self.n_trials, self.timeout = n_trials, timeout
        self.dedupe, self.study, self.max_tries = dedupe, study, max(1, int(max_tries))
        self.key = evaluation_key(key) if isinstance(key, str) else key
        self.cache = ResultCache()
        self.live: dict[str, _Proposal] = {}          # Ray trial id -> launched proposal
        self.seen: dict[str, int] = {}                # Ray trial id -> last training_iteration seen
        self.parked: dict[str, list[_Proposal]] = {}  # Ray trial id of the running cell -> waiting
        self.released: list[_Proposal] = []           # parked proposals to launch themselves
        self.proposed = 0
        self.last_number = -1                         # highest Optuna trial number proposed
        self.rejected = 0
        self.best: tuple[str, float] | None = None  # (trial, value) of the best evaluation so far
        self.trains = False  # whether evaluations train (their results carry a learning rate)
        self.base_finished = False
        self._asked = 0
        self._started: float | None = None
        if study is not None:
            self._seed_cache(study)

    # ------------------------------------------------------------------ Tune's Searcher API
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        self._metric, self._mode = metric or self._metric, mode or self._mode
        self.base.set_search_properties(self._metric, self._mode, config, **spec)
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self._started is None:
            self._started = time.monotonic()
        if self.released:
            return self._launch(trial_id, self.released.pop(0))
        if self._out_of_time():
            return self._finish()
        rejected_now = 0
        while not self.base_finished and (self.n_trials is None or self.proposed < self.n_trials):
            self._asked += 1
            base_id = f"{trial_id}~{self._asked}"
            config = self.base.suggest(base_id)
            if config is None:
                return None
            if config == Searcher.FINISHED:
                self.base_finished = True
                break
            arch = arch_from_config(config, self.space)
            if not self.keep.keep(self.space.digits(self.space.encode(arch))):
                self._reject(base_id, config)
                rejected_now += 1
                if rejected_now >= self.max_tries:
                    return None
                continue
            self.proposed += 1
            self.last_number = max(self.last_number, config.get(OPTUNA_TRIAL, -1))
            cell_key = self._key(arch)
            self._record(config.get(OPTUNA_TRIAL), {ATTR_KEY: cell_key})
            proposal = _Proposal(base_id, dict(config), with_hyperparameters(
                cell_key, hyperparameters(config, self.space)), str(arch), config.get(OPTUNA_TRIAL))
            if self.dedupe and self._answer_from_cache(proposal):
                continue
            running = self.cache.running(proposal.key) if self.dedupe else None
            if running is not None:
                self.parked.setdefault(running, []).append(proposal)
                logger.info("trial %s: %s is being evaluated by Ray trial %s: parked until it finishes",
                            proposal.name, proposal.arch, running)
                continue
            return self._launch(trial_id, proposal)
        return self._finish()

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        proposal = self.live.get(trial_id)
        if proposal is None:
            return
        self.seen[trial_id] = int(result.get(TRAINING_ITERATION, 0) or 0)
        if TIME_ATTR in result and self.value_metric in result and not result.get(ATTR_EVALUATED) \
                and ATTR_FAIL_REASON not in result:
            self.base.on_trial_result(proposal.base_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        proposal = self.live.pop(trial_id, None)
        if proposal is None:
            return
        result = result or {}
        value = result.get(self.value_metric)
        finite = all(isinstance(result.get(m), int | float) and math.isfinite(result[m])
                     for m in self.metrics)
        # Tune withholds from on_trial_result the result on which a scheduler or stopper ends a
        # trial: a last result newer than any seen means the trial was stopped, not finished.
        stopped = int(result.get(TRAINING_ITERATION, 0) or 0) > self.seen.pop(trial_id, 0)
        if error or ATTR_FAIL_REASON in result:
            reason = result.get(ATTR_FAIL_REASON) or CRASHED
            self._record(proposal.optuna_trial, {ATTR_FAIL_REASON: reason, ATTR_RAY_TRIAL: trial_id})
            self.base.on_trial_complete(proposal.base_id, None, error=True)
            self._log(proposal, "FAIL", None, {ATTR_FAIL_REASON: reason})
        elif finite and (not stopped or result.get(ATTR_EVALUATED)):
            attrs = {k: v for k, v in result.items() if k.startswith("nasplug:")}
            self._record(proposal.optuna_trial, {**attrs, ATTR_EVALUATED: True, ATTR_RAY_TRIAL: trial_id})
            self.base.on_trial_complete(proposal.base_id, {m: result[m] for m in self.metrics})
            self.cache.record(proposal.key, self._label(proposal, trial_id), value)
            if self.objectives is not None and self.objectives.latency is not None:
                self.objectives.latency.record(proposal.arch, result["latency"])
            values = [result[m] for m in self.metrics]
            self._log(proposal, "COMPLETE", values if self.objectives is not None else value, attrs)
            for waiting in self.parked.pop(trial_id, []):
                self._complete_duplicate(waiting, self._label(proposal, trial_id), value)
            return
        else:  # stopped by a scheduler before its evaluation ended: a low-fidelity value
            if finite and TIME_ATTR in result:
                self.base.on_trial_result(proposal.base_id, result)
            self._record(proposal.optuna_trial, {ATTR_RAY_TRIAL: trial_id})
            self.base.on_trial_complete(proposal.base_id, None)
            self._log(proposal, "PRUNED", None, {}, last_step=result.get(TIME_ATTR))
        self.cache.abandon(proposal.key, trial_id)
        self.released.extend(self.parked.pop(trial_id, []))

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as fh:
            pickle.dump(self.__dict__, fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            self.__dict__.update(pickle.load(fh))
        self._started = None  # a resumed run gets its own timeout
        if self.study is not None:
            self._catch_up(self.study)

    # ------------------------------------------------------------------ internals
    def _out_of_time(self) -> bool:
        return (self.timeout is not None and self._started is not None
                and time.monotonic() - self._started >= self.timeout)

    def _finish(self) -> str | None:
        # Parked proposals may still need a launch (if the cell they wait for fails): keep going.
        return None if self.parked or self.released else Searcher.FINISHED

    def _launch(self, trial_id: str, proposal: _Proposal) -> dict[str, Any]:
        if self.dedupe:
            self.cache.start(proposal.key, trial_id)
        self.live[trial_id] = proposal
        return dict(proposal.config)

    def _label(self, proposal: _Proposal, trial_id: str) -> Any:
        return proposal.optuna_trial if proposal.optuna_trial is not None else trial_id

    def _answer_from_cache(self, proposal: _Proposal) -> bool:
        hit = self.cache.lookup(proposal.key)
        if hit is None:
            return False
        self._complete_duplicate(proposal, hit.trial, hit.value)
        return True

    def _complete_duplicate(self, proposal: _Proposal, of: Any, value: float) -> None:
        """Answer a duplicate: the value of the cell it duplicates — with several objectives, that
        accuracy and the duplicate's own costs (its latency is its network's, measured by a trial)."""
        self._record(proposal.optuna_trial, {ATTR_DUPLICATE_OF: of})
        values = [value] if self.objectives is None else self.objectives.vector(proposal.arch, value)
        self.base.on_trial_complete(proposal.base_id, dict(zip(self.metrics, values)))
        self._log(proposal, "COMPLETE", values if self.objectives is not None else value,
                  {ATTR_DUPLICATE_OF: of})

    def _log(self, proposal: _Proposal, state: str, value: Any, attrs: dict[str, Any],
             last_step: int | None = None) -> None:
        """The trial's progress line, as the Optuna backend prints it (:func:`trial_line`), with the
        best single-objective value so far."""
        if state == "COMPLETE" and ATTR_DUPLICATE_OF not in attrs:
            self._improve(proposal.name, value)
        best = self.best if self.objectives is None else None
        logger.info(trial_line(proposal.name, state, value, {ATTR_ARCH: proposal.arch, **attrs},
                               best=best, last_step=last_step, trained=ATTR_LR in attrs or self.trains))
        self.trains = self.trains or ATTR_LR in attrs

    def _improve(self, name: str, value: Any) -> None:
        """Keep ``(name, value)`` as the best so far if it is (single-objective searches)."""
        if self.objectives is None and (self.best is None or (
                value > self.best[1] if self.mode == "max" else value < self.best[1])):
            self.best = (name, value)

    def _reject(self, base_id: str, config: dict[str, Any]) -> None:
        self.rejected += 1
        name = getattr(self.keep.filter, "name", type(self.keep.filter).__name__)
        self._record(config.get(OPTUNA_TRIAL), {ATTR_REJECTED_BY: name})
        self.base.on_trial_complete(base_id, None)

    def _record(self, number: int | None, attrs: dict[str, Any]) -> None:
        """Write attributes to the Optuna trial ``number`` (when there is a study). A trial that is
        already finished is left alone: after a driver killed hard, Tune restores the searcher of
        its last snapshot and may finish again a trial the study had already recorded."""
        if self.study is None or number is None:
            return
        storage = self.study._storage
        trial_id = storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
        if storage.get_trial(trial_id).state.is_finished():
            logger.info("trial %s was recorded before the driver stopped: kept as it is", number)
            return
        for key, value in attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)

    def _key(self, arch: ArchGraph) -> str:
        """The cell's dedupe key (before hyper-parameters); with a latency objective it also names
        the network, whose latency only a trial can measure."""
        key = self.key(arch)
        if self.objectives is not None and self.objectives.latency is not None:
            key = f"{key}|network={live_cell(arch)}"
        return key

    def _catch_up(self, study: optuna.Study) -> None:
        """After a driver stopped between two snapshots (kill -9), the study holds what this
        searcher proposed after its last one: finished trials count towards ``n_trials`` and feed the
        cache; RUNNING ones never ran to the end (the runner fails them as a dead worker's)."""
        for t in study.get_trials(deepcopy=False):
            if t.number > self.last_number and t.state.is_finished() and ATTR_REJECTED_BY not in t.user_attrs:
                self.proposed += 1
                self.last_number = t.number
        self._seed_cache(study)

    def _seed_cache(self, study: optuna.Study) -> None:
        """The study's completed trials: their evaluated values, and the latencies they measured."""
        value = self.metrics.index(self.value_metric)
        latency = self.metrics.index("latency") if "latency" in self.metrics else None
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            key = t.user_attrs.get(ATTR_KEY)
            if key is None or t.values is None or len(t.values) != len(self.metrics):
                continue
            self.cache.record(with_hyperparameters(key, hyperparameters(t.params, self.space)),
                              t.number, t.values[value])  # trials come ordered: originals first
            self._improve(str(t.number), t.values[value])
            if latency is not None and ATTR_ARCH in t.user_attrs:
                self.objectives.latency.record(t.user_attrs[ATTR_ARCH], t.values[latency])


def optuna_searcher(space: DigitSpace | str = "nb201", *, filter: Any = "dag_box",
                    sampler: optuna.samplers.BaseSampler | None = None, scorer: Any = None,
                    scored_startup: int = 0, storage: optuna.storages.BaseStorage | None = None,
                    study_name: str = "nasplug", metric: str = METRIC, mode: str = "max",
                    extra: Callable[[optuna.Trial], Mapping[str, Any] | None] | None = None,
                    max_tries: int = 20, seed: int | None = None, objectives: ObjectiveSet | None = None,
                    **kwargs: Any) -> ArchSearcher:
    """The default architecture searcher: Ray's ``OptunaSearch`` on a :class:`ArchSpace`, sampled by
    :class:`~nasplug.optuna.FilteredSampler` around ``sampler`` (default TPE), wrapped in an
    :class:`ArchSearcher` that dedupes and records into the same study.

    ``storage`` is where the study lives (default: in memory; give a file/RDB storage, e.g.
    :func:`nasplug.optuna.open_storage`, for reports, the dashboard and ``Tuner.restore``).
    ``objectives`` makes it a multi-objective search: a study with one direction per objective,
    metrics :func:`objective_metrics` (give ``sampler`` a multi-objective one, e.g. NSGA-II; TPE is
    then MO-TPE), and no ``metric``/``mode`` in ``TuneConfig`` (Ray's rule for a list of metrics).
    ``kwargs`` go to :class:`ArchSearcher` (``n_trials``, ``timeout``, ``dedupe``, ``key``).

    Examples
    --------
    >>> from ray import tune
    >>> searcher = optuna_searcher("nb201", filter="dag_box", n_trials=20)
    >>> config = tune.TuneConfig(search_alg=searcher, metric="value", mode="max",
    ...                          num_samples=-1, max_concurrent_trials=2)
    """
    if objectives is not None:
        metric, mode = objective_metrics(objectives), objective_modes(objectives)
    elif mode not in ("max", "min"):
        raise NasplugError(f"mode must be max or min, got {mode!r}")
    space = resolve_space(space)
    filtered = FilteredSampler(sampler if sampler is not None else optuna.samplers.TPESampler(seed=seed),
                               filter=filter, scorer=scorer, max_tries=max_tries, space=space, seed=seed,
                               scored_startup=scored_startup)
    storage = storage if storage is not None else optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name=study_name, load_if_exists=True,
                                directions=["maximize" if m == "max" else "minimize"
                                            for m in (mode if objectives is not None else [mode])])
    base = OptunaSearch(space=ArchSpace(space, extra), metric=metric, mode=mode, sampler=filtered,
                        storage=storage, study_name=study_name)
    return ArchSearcher(base, space, filter=filtered.filter, metric=metric, mode=mode, study=study,
                        max_tries=max_tries, objectives=objectives, **kwargs)
