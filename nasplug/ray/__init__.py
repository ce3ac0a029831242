"""Layer 5: the Ray Tune integration — distributed architecture search, pruned in the driver.

* :class:`ArchSearcher` wraps any Ray Tune searcher: cells failing the filter never become trials,
  duplicates of finished cells are answered from the cache, duplicates of running cells wait for
  them, outcomes (complete / stopped early / failed) are recorded in the Optuna study;
  :func:`optuna_searcher` builds the default one — Ray's ``OptunaSearch`` with nasplug's
  :class:`~nasplug.optuna.FilteredSampler` and an :class:`ArchSpace` — with an
  :class:`~nasplug.search.objectives.ObjectiveSet`, a multi-objective search
  (:func:`objective_metrics`: accuracy and costs);
* :func:`evaluate_trial` — the trainable: principled init and LR, a report and a checkpoint per
  epoch, resume from the checkpoint; :func:`trial_device` picks the device from the GPUs Ray
  assigned; :class:`TrialStore` keeps an evaluation's state in Tune checkpoints;
* :func:`run_ray_search` and :class:`RayOptions` — ``nasplug search --backend ray``;
* :mod:`nasplug.ray.train` — data-parallel (re)training jobs on Ray Train's ``TorchTrainer``
  (``nasplug retrain --launcher ray``), imported on its own.

Importing this package imports Ray (the optional extra ``nasplug[ray]``). See docs/ray.md.
"""

from nasplug.ray.runner import RayOptions, connect, run_ray_search
from nasplug.ray.searcher import ArchSearcher, optuna_searcher
from nasplug.ray.space import (
    METRIC,
    TIME_ATTR,
    ArchSpace,
    arch_from_config,
    hyperparameters,
    objective_metrics,
    objective_modes,
)
from nasplug.ray.trainable import TrialStore, evaluate_trial, trial_device

__all__ = [
    "METRIC", "TIME_ATTR", "ArchSearcher", "ArchSpace", "RayOptions", "TrialStore", "arch_from_config",
    "connect", "evaluate_trial", "hyperparameters", "objective_metrics", "objective_modes", "optuna_searcher",
    "run_ray_search", "trial_device",
]
