"""Layer 5: the Optuna integration — define-by-run architecture parameters, a sampler wrapper that
rejects filtered cells before they become trials, an objective that never trains a cell twice,
resumable storages and the ``nasplug search`` runner.

Quick use::

    import optuna
    from nasplug.optuna import ArchObjective, FilteredSampler

    sampler = FilteredSampler(optuna.samplers.TPESampler(seed=0), filter="dag_box", space="nb201")
    study = optuna.create_study(direction="maximize", sampler=sampler)
    objective = ArchObjective(my_evaluate, "nb201")          # my_evaluate(arch) -> accuracy
    study.optimize(objective, n_trials=100, catch=objective.catch)

A thin adapter over the framework-neutral core :mod:`nasplug.search`. See docs/optuna.md.
Importing this package imports Optuna (not torch).
"""

from nasplug.optuna.objective import (
    ArchObjective,
    DuplicateCache,
    EvaluationFailed,
    optuna_report,
    prune_before_training,
)
from nasplug.optuna.params import (
    arch_distributions,
    arch_to_params,
    param_name,
    params_to_arch,
    suggest_architecture,
)
from nasplug.optuna.sampler import FilteredSampler, PruningSampler
from nasplug.optuna.storage import StopAtTrials, open_storage, recover_dead_trials, tag_worker
from nasplug.search import resolve_filter

__all__ = [
    "ArchObjective",
    "DuplicateCache",
    "EvaluationFailed",
    "FilteredSampler",
    "PruningSampler",
    "StopAtTrials",
    "arch_distributions",
    "arch_to_params",
    "open_storage",
    "optuna_report",
    "param_name",
    "params_to_arch",
    "prune_before_training",
    "recover_dead_trials",
    "resolve_filter",
    "suggest_architecture",
    "tag_worker",
]
