"""Run (or resume) an Optuna study for a :class:`~nasplug.search.SearchConfig`: what ``nasplug
search`` does with the Optuna backend.

The study lives in the config's storage, so rerunning continues it, several worker processes can
share it (``jobs``), and ``optuna-dashboard`` can watch it. Each worker wraps the base sampler in a
:class:`~nasplug.optuna.FilteredSampler` (rejected cells are re-drawn, never trained) and runs an
:class:`~nasplug.optuna.ArchObjective` around the config's evaluator (dedupe, failure reasons).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nasplug.errors import NasplugError, require
from nasplug.optuna.objective import ArchObjective, optuna_report
from nasplug.optuna.report import SearchSummary, write_report
from nasplug.optuna.sampler import FilteredSampler
from nasplug.optuna.storage import (
    StopAtTrials,
    counted_trials,
    open_storage,
    recover_dead_trials,
    storage_url,
)
from nasplug.search import SearchConfig, resolve_filter
from nasplug.search_spaces import ProductSpace
from nasplug.search_spaces import get as get_space

#: The study's user attribute holding the evaluation identity it was created with.
CONFIG_ATTR = "nasplug:config"


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """The base Optuna sampler for ``--sampler``.

    TPE is Optuna's default (multivariate for one objective, so it models the edges jointly). CMA-ES
    models only numerical parameters: on an all-categorical cell space it samples the edges with its
    independent sampler (random), so it is meaningful only with extra numerical parameters. The GP
    sampler handles categoricals (Hamming-type kernel) but costs about a second per trial.
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
    raise NasplugError(f"unknown sampler {name!r}")


def open_study(config: SearchConfig, create: bool) -> optuna.Study:
    """The config's study in its storage (created when ``create``), with its pruner."""
    storage = open_storage(config.storage, heartbeat=config.heartbeat)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5) if config.pruner == "median" \
        else optuna.pruners.NopPruner()
    if create:
        return optuna.create_study(storage=storage, study_name=config.study_name,
                                   direction=config.direction, load_if_exists=True, pruner=pruner)
    return optuna.load_study(storage=storage, study_name=config.study_name, pruner=pruner)


def worker_seed(config: SearchConfig, study: optuna.Study, worker: int) -> int:
    """Reproducible for one process started on a fresh or resumed study; distinct per worker, per
    resume and — when another process is already searching this study — per process."""
    seed = config.seed * 1_000_003 + counted_trials(study) * 7_919 + worker * 104_729
    if worker == 0 and study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        seed += os.getpid()
    return seed % (2**31 - 1)


def work(config: SearchConfig, worker: int = 0) -> int:
    """One worker: search until the study has ``n_trials`` counted trials. Returns trials it ran."""
    optuna.logging.set_verbosity(logging.WARNING if config.quiet else logging.INFO)
    study = open_study(config, create=False)
    remaining = config.n_trials - counted_trials(study)
    if remaining <= 0:
        return 0
    seed = worker_seed(config, study, worker)
    evaluator = config.evaluator()
    sampler = FilteredSampler(make_sampler(config.sampler, seed), filter=config.filter,
                              max_tries=config.max_tries, space=config.space, seed=seed,
                              scorer=config.scorer, scored_startup=config.scored_startup)
    study.sampler = sampler

    def evaluate(arch, trial):
        return evaluator(arch, optuna_report(trial))

    # The objective re-checks the filter: a fallback "proposal" or an enqueued cell that fails it
    # is pruned before training rather than trained.
    objective = ArchObjective(evaluate, config.space, filter=sampler.filter, dedupe=config.dedupe,
                              pass_trial=True)
    before = len(study.get_trials(deepcopy=False))
    study.optimize(objective, n_trials=remaining, timeout=config.timeout, catch=objective.catch,
                   callbacks=[StopAtTrials(config.n_trials)], gc_after_trial=False)
    return len(study.get_trials(deepcopy=False)) - before


def check_inputs(config: SearchConfig) -> tuple[ProductSpace, Any]:
    """The config's space and filter, with its benchmark file / objective loaded once: a bad name,
    file or ``module:function`` is a one-line error before any work (a training objective loads its
    data in the workers)."""
    space = get_space(config.space)
    filt = resolve_filter(config.filter, space)
    if config.objective != "train":
        config.evaluator()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return space, filt


def _spawned(config: dict[str, Any], worker: int) -> None:
    work(SearchConfig.from_dict(config), worker)


def run_search(config: SearchConfig, out: str | Path, *, top: int = 10,
               echo: Callable[[str], None] = print) -> SearchSummary:
    """Create or resume the study, run ``config.jobs`` workers until it has ``config.n_trials``
    trials, and write the report (``summary.md/json``, plots) to ``out``."""
    space, filt = check_inputs(config)
    study = open_study(config, create=True)
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, {k: v for k, v in config.as_dict().items() if k != "quiet"})
    elif any(stored.get(k) != getattr(config, k) for k in ("space", "objective", "dataset", "benchmark",
                                                           "filter")):
        echo(f"nasplug search: warning: study {config.study_name!r} was created with other settings "
             f"({ {k: stored.get(k) for k in ('space', 'objective', 'dataset', 'filter')} })")
    recovered = recover_dead_trials(study)
    done = counted_trials(study)
    kept = ""
    if filt is not None and space.enumerable:
        kept = f"keeps {int(filt.keep_many(space.batch()).sum()):,} of {space.size:,} cells"
    echo(f"study {config.study_name} in {storage_url(config.storage)}")
    echo(f"space {config.space} ({space.size:,} cells), sampler {config.sampler}, filter "
         f"{config.filter} {kept}, objective {config.objective}"
         + (f" ({config.dataset})" if config.dataset else ""))
    if recovered:
        echo(f"recovered {len(recovered)} trial(s) whose worker had died: {recovered} (re-enqueued)")
    if done >= config.n_trials:
        echo(f"the study already has {done} trials (asked for {config.n_trials}); reporting only")
    elif done:
        echo(f"resuming: {done} trials stored, running up to {config.n_trials - done} more")
    if done < config.n_trials:
        if config.jobs == 1:
            work(config)
        else:
            ctx = mp.get_context("spawn")
            procs = [ctx.Process(target=_spawned, args=(config.as_dict(), w)) for w in range(config.jobs)]
            for proc in procs:
                proc.start()
            for proc in procs:
                proc.join()
            bad = [p.exitcode for p in procs if p.exitcode]
            if bad:
                raise NasplugError(f"{len(bad)} worker(s) failed (exit codes {bad})")
    study = open_study(config, create=False)
    report_config = {k: getattr(config, k) for k in ("space", "sampler", "filter", "objective", "dataset",
                                                     "benchmark", "n_trials", "seed")}
    report_config["storage_url"] = storage_url(config.storage)
    return write_report(study, Path(out), config=report_config, top=top)

