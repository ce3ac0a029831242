"""Optuna integration: define-by-run architecture parameters, a filtering sampler wrapper, an
objective that prunes before training and never trains a cell twice, and resumable storages.

Quick use::

    import optuna
    from nasplug.optuna import ArchObjective, PruningSampler

    sampler = PruningSampler(optuna.samplers.TPESampler(seed=0), filter="dag_box", space="nb201")
    study = optuna.create_study(direction="maximize", sampler=sampler)
    objective = ArchObjective(my_evaluate, "nb201")          # my_evaluate(arch) -> accuracy
    study.optimize(objective, n_trials=100, catch=objective.catch)

See docs/optuna.md. Importing this package imports Optuna (not torch).
"""

from nasplug.optuna.objective import ArchObjective, DuplicateCache, EvaluationFailed, prune_before_training
from nasplug.optuna.params import (
    arch_distributions,
    arch_to_params,
    param_name,
    params_to_arch,
    suggest_architecture,
)
from nasplug.optuna.sampler import PruningSampler, resolve_filter
from nasplug.optuna.storage import StopAtTrials, open_storage, recover_dead_trials, tag_worker

__all__ = [
    "ArchObjective",
    "DuplicateCache",
    "EvaluationFailed",
    "PruningSampler",
    "StopAtTrials",
    "arch_distributions",
    "arch_to_params",
    "open_storage",
    "param_name",
    "params_to_arch",
    "prune_before_training",
    "recover_dead_trials",
    "resolve_filter",
    "suggest_architecture",
    "tag_worker",
]
