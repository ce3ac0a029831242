"""Run (or resume) an Optuna study for a :class:`~nasplug.search.SearchConfig`: what ``nasplug
search`` does with the Optuna backend.

The study lives in the config's storage, so rerunning continues it, several worker processes can
share it (``jobs``), and ``optuna-dashboard`` can watch it. It carries the config's evaluation
identity (:meth:`~nasplug.search.SearchConfig.identity`): a rerun with other evaluation settings
is refused before any trial is created. Each worker wraps the base sampler in a
:class:`~nasplug.optuna.FilteredSampler` (rejected cells are re-drawn, never trained) and runs an
:class:`~nasplug.optuna.ArchObjective` around the config's evaluator (model-aware dedupe, failure
reasons, Ctrl-C → retried), printing one line per finished trial. A training search ends with its
best cells retrained with several seeds and tested once (:mod:`nasplug.search.final`), stored with
the study so a rerun only reports.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nasplug.checks import format_count, writable_dir
from nasplug.errors import NasplugError, require
from nasplug.optuna.objective import ArchObjective, optuna_report
from nasplug.optuna.pareto import write_pareto_report
from nasplug.optuna.report import SearchSummary, best_cells, report_settings, write_report
from nasplug.optuna.sampler import FilteredSampler
from nasplug.optuna.storage import (
    StopAtTrials,
    counted_trials,
    host_lock,
    open_storage,
    recover_dead_trials,
    storage_location,
    storage_url,
)
from nasplug.processes import die_with_parent
from nasplug.search import SearchConfig, keep_mask, resolve_filter, resolve_scorer
from nasplug.search.attrs import ATTR_EVALUATED, ATTR_RETRY_OF
from nasplug.search.evaluation import Evaluator
from nasplug.search.final import compare, final_seeds, retrain_best
from nasplug.search.progress import trial_line
from nasplug.search_spaces import DigitSpace
from nasplug.search_spaces import get as get_space

#: The study's user attribute holding the evaluation identity it was created with.
CONFIG_ATTR = "nasplug:config"
#: The study's user attribute holding the final runs: ``{key: {seed: run}}``.
FINAL_ATTR = "nasplug:final"
#: What each key rule means, for the header.
KEY_RULE_TEXT = {"function": "function (canonical form)",
                 "mlp_function": "MLP (convs are linear layers, pooling the identity, in the theory MLP)",
                 "cell": "cell (the table has an entry per cell)"}


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """The base Optuna sampler for ``--sampler``.

    TPE is Optuna's default (multivariate for one objective, so it models the edges jointly). The
    GP sampler handles categoricals (Hamming-type kernel) but costs about a second per trial.
    CMA-ES models only numerical parameters, so :class:`~nasplug.search.SearchConfig` refuses it
    for a search of cells alone; it is built here for library users who add numerical ones. NSGA-II
    (Deb et al. 2002) evolves generations of 50 cells by crossover and mutation; with several
    objectives (``--objectives``), TPE is Optuna's multi-objective TPE (Ozaki et al. 2020/2022).
    """
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        require("cmaes", "cmaes", "--sampler cmaes")
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    raise NasplugError(f"unknown sampler {name!r}")


def _pruner(config: SearchConfig) -> optuna.pruners.BasePruner:
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5)
    return optuna.pruners.NopPruner()


def open_study(config: SearchConfig) -> optuna.Study:
    """The config's existing study in its storage, with its pruner."""
    storage = open_storage(config.storage, heartbeat=config.heartbeat)
    return optuna.load_study(storage=storage, study_name=config.study_name, pruner=_pruner(config))


def prepare_study(config: SearchConfig) -> optuna.Study:
    """Create the config's study with its identity, or open it after checking that it was created
    with the same identity (a one-line :class:`~nasplug.errors.NasplugError` otherwise). Runs under
    a host lock, so searches started together on a new storage agree on one study."""
    storage = open_storage(config.storage, heartbeat=config.heartbeat)
    where = storage_location(storage)
    with host_lock(where, str(config.study_name), "setup"):
        try:
            study = optuna.load_study(storage=storage, study_name=config.study_name, pruner=_pruner(config))
        except KeyError:
            study = None
        if study is not None:
            stored = study.user_attrs.get(CONFIG_ATTR)
            if stored is None and study.get_trials(deepcopy=False):
                raise NasplugError(f"study {config.study_name!r} in {where} was not created by nasplug "
                                   "search (no recorded settings): give --study-name NEW")
            config.check_identity(stored, where)
        else:
            study = optuna.create_study(storage=storage, study_name=config.study_name,
                                        directions=list(config.directions), load_if_exists=True,
                                        pruner=_pruner(config))
            config.check_identity(study.user_attrs.get(CONFIG_ATTR), where)  # another host's, same instant
        stored = [d.name.lower() for d in study.directions]
        if stored != list(config.directions):  # a study made outside nasplug: load_if_exists ignores it
            raise NasplugError(f"study {config.study_name!r} in {where} optimizes {', '.join(stored)}, not "
                               f"{', '.join(config.directions)}: give --study-name NEW")
        if study.user_attrs.get(CONFIG_ATTR) is None:
            study.set_user_attr(CONFIG_ATTR, config.identity())
    return study


def worker_seed(config: SearchConfig, study: optuna.Study, worker: int) -> int:
    """Reproducible for one process started on a fresh or resumed study; distinct per worker, per
    resume and — when another process is already searching this study — per process."""
    seed = config.seed * 1_000_003 + counted_trials(study) * 7_919 + worker * 104_729
    if worker == 0 and study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        seed += os.getpid()
    return seed % (2**31 - 1)


class Progress:
    """Optuna callback: one :func:`~nasplug.search.progress.trial_line` per finished trial."""

    def __init__(self, config: SearchConfig, echo: Callable[[str], None] = print):
        self.trained = config.objective == "train"
        self.multi = config.objectives is not None
        self.echo = echo

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        best_pair = None
        if not self.multi:  # a multi-objective study has a front, not a best trial
            try:
                best = study.best_trial
                best_pair = (best.number, float(best.value))
            except ValueError:  # nothing completed yet
                pass
        value = trial.values if self.multi and trial.values is not None else \
            (None if trial.values is None else trial.values[0])
        steps = sorted(trial.intermediate_values)
        self.echo(trial_line(trial.number, trial.state.name, value, trial.user_attrs,
                             best=best_pair, last_step=steps[-1] if steps else None, trained=self.trained))


def work(config: SearchConfig, worker: int = 0, evaluator: Any = None, filter: Any = None,
         echo: Callable[[str], None] = print) -> int:
    """One worker: search until the study has ``n_trials`` counted trials. Returns trials it ran.
    ``evaluator`` and ``filter`` are built from the config unless given (already built)."""
    optuna.logging.set_verbosity(logging.ERROR)  # one line per trial is printed by Progress
    study = open_study(config)
    remaining = config.n_trials - counted_trials(study)
    if remaining <= 0:
        return 0
    seed = worker_seed(config, study, worker)
    evaluator = evaluator or config.evaluator()
    sampler = FilteredSampler(make_sampler(config.sampler, seed),
                              filter=config.filter if filter is None else filter,
                              max_tries=config.max_tries, space=config.space, seed=seed,
                              scorer=config.scorer, scored_startup=config.scored_startup)
    study.sampler = sampler
    objectives = config.objective_set()

    def evaluate(arch, trial):  # Optuna reports intermediate values of single-objective studies only
        return evaluator(arch, optuna_report(trial) if objectives is None else None)

    location = storage_location(study._storage)

    def key_lock(key: str):  # workers of this host wait for a cell another one is evaluating
        return host_lock(location, str(config.study_name), "key", key)

    # The objective re-checks the filter: a fallback "proposal" or an enqueued cell that fails it
    # is pruned before training rather than trained.
    objective = ArchObjective(evaluate, config.space, filter=sampler.filter, dedupe=config.dedupe,
                              key=config.key_rule, key_lock=key_lock, pass_trial=True,
                              objectives=objectives)
    callbacks: list[Any] = [StopAtTrials(config.n_trials)]
    if not config.quiet:
        callbacks.append(Progress(config, echo))
    before = len(study.get_trials(deepcopy=False))
    study.optimize(objective, n_trials=remaining, timeout=config.timeout, catch=objective.catch,
                   callbacks=callbacks, gc_after_trial=False)
    return len(study.get_trials(deepcopy=False)) - before


def check_inputs(config: SearchConfig) -> tuple[DigitSpace, Any, Evaluator]:
    """The config's space, filter and evaluator: the filter fitted, the scorer resolved and the
    data, benchmark table or ``module:function`` loaded once, so that a bad name, file or function
    is a one-line error before any work (both backends call this first)."""
    space = get_space(config.space)
    filt = resolve_filter(config.filter, space)
    resolve_scorer(config.scorer)
    evaluator = config.evaluator()
    optuna.logging.set_verbosity(logging.ERROR)
    return space, filt, evaluator


def _interrupt_once() -> None:
    """Raise ``KeyboardInterrupt`` on the first SIGINT or SIGTERM and ignore later ones, so that a
    second Ctrl-C (or the parent forwarding the first) cannot cut short the marking of the trial.
    SIGTERM is what a worker gets when its parent dies (:func:`~nasplug.processes.die_with_parent`)."""

    def handler(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _spawned(config: dict[str, Any], worker: int) -> None:
    die_with_parent()  # a parent killed outright (SIGKILL) takes its workers down: no orphans
    _interrupt_once()
    try:
        work(SearchConfig.from_dict(config), worker)
    except KeyboardInterrupt:  # the trial is marked and re-enqueued; the parent says so once
        sys.exit(130)


def _run_workers(config: SearchConfig, evaluator: Any, filter: Any, echo: Callable[[str], None]) -> None:
    if config.jobs == 1:
        work(config, evaluator=evaluator, filter=filter, echo=echo)
        return
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_spawned, args=(config.as_dict(), w)) for w in range(config.jobs)]
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
    except KeyboardInterrupt:
        for proc in procs:  # Ctrl-C in a terminal reached them too; a kill of the parent did not
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGINT)
        for proc in procs:
            proc.join()
        raise
    bad = [p.exitcode for p in procs if p.exitcode]
    if 130 in bad:  # a worker was interrupted on its own (kill -INT of one worker)
        raise KeyboardInterrupt
    if bad:
        raise NasplugError(f"{len(bad)} worker(s) failed (exit codes {bad})")


def _waiting_retries(study: optuna.Study) -> list[int]:
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return sorted(t.user_attrs[ATTR_RETRY_OF] for t in waiting if ATTR_RETRY_OF in t.user_attrs)


def run_search(config: SearchConfig, out: str | Path, *, top: int = 10,
               echo: Callable[[str], None] = print) -> SearchSummary:
    """Create or resume the study, run ``config.jobs`` workers until it has ``config.n_trials``
    trials, test its best cells once (single-objective training), and write the report
    (``summary.md``, ``summary.json``, plots) to ``out`` — with several objectives, the Pareto-front
    report of :mod:`nasplug.optuna.pareto`. Everything that can be checked — the output folder, the
    storage, the filter, the data or table or user function, the study's identity — is checked
    before the first trial. Ctrl-C raises ``KeyboardInterrupt`` naming the trials that will be
    retried."""
    out = writable_dir(out, "output folder (--out)")
    space, filt, evaluator = check_inputs(config)
    if config.objective == "train":  # the workers train here: a device this machine lacks is an error now
        from nasplug.train import resolve_device

        resolve_device(config.device)
    study = prepare_study(config)
    recovered = recover_dead_trials(study)
    done = counted_trials(study)
    echo(f"study {config.study_name} in {storage_url(config.storage)}")
    kept = ""
    if filt is not None and space.enumerable:
        kept = f" keeps {keep_mask(space, filt).count():,} of {space.size:,} cells"
    echo(f"space {config.space} ({format_count(space.size)} cells); filter {config.filter}{kept}; "
         f"proposals it rejects are re-drawn, never trained; sampler {config.sampler}, seed {config.seed}")
    echo(f"objective: {config.describe()}")
    if config.dedupe:
        echo(f"dedupe: one evaluation per {KEY_RULE_TEXT[config.key_rule]}; duplicates reuse its value")
    if recovered:
        echo(f"recovered {len(recovered)} trial(s) whose worker had died: {recovered} (re-enqueued)")
    waiting = _waiting_retries(study)
    if waiting:
        echo(f"retrying {len(waiting)} interrupted trial(s) first: {waiting}")
    if done >= config.n_trials:
        echo(f"the study already has {done} trials (asked for {config.n_trials}); reporting only")
    elif done:
        echo(f"resuming: {done} trials stored, running up to {config.n_trials - done} more")
    try:
        if done < config.n_trials:
            _run_workers(config, evaluator, filt, echo)
        study = open_study(config)
        final = comparison = None
        if config.objective == "train" and config.final_top > 0 and config.objectives is None:
            final, comparison = final_stage(config, study, echo)
    except KeyboardInterrupt:
        retry = _waiting_retries(open_study(config))
        detail = (f"trial(s) {retry} will be retried" if retry else "finished trials are kept")
        raise KeyboardInterrupt(f"{detail}; rerun the same command to resume") from None
    if config.objectives is not None:  # the best cells are a Pareto front; summary.best holds it
        return write_pareto_report(study, out, config, settings=report_settings(config)).summary
    return write_report(study, out, config=config, top=top, final=final, comparison=comparison)


def final_stage(config: SearchConfig, study: optuna.Study, echo: Callable[[str], None]):
    """Retrain the best distinct cells with several seeds and test them once; runs are stored in
    the study (``nasplug:final``) as they finish, so an interrupted or repeated report reuses them."""
    cells = best_cells(study, config.final_top)
    if not cells:
        return None, None
    stored = study.user_attrs.get(FINAL_ATTR, {})
    done = {k: {int(s): r for s, r in runs.items()} for k, runs in stored.items()}
    seeds = final_seeds(config)
    todo = sum(len(set(seeds) - set(done.get(c["key"], {}))) for c in cells)
    if todo:
        echo(f"final: retraining the best {len(cells)} cells with seeds {', '.join(map(str, seeds))} and "
             f"testing each run once ({todo} runs)")

    def save(key: str, seed: int, run: dict[str, Any]) -> None:
        current = study.user_attrs.get(FINAL_ATTR, {})
        current.setdefault(key, {})[str(seed)] = run
        study.set_user_attr(FINAL_ATTR, current)

    final = retrain_best(config, [(c["arch"], c["key"], c["value"]) for c in cells], done=done, save=save,
                         echo=None if config.quiet else echo)
    evaluated = [t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if t.user_attrs.get(ATTR_EVALUATED)]
    return final, compare(final, evaluated)
