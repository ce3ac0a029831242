"""What a Ray Tune trial of an architecture search carries: its config (the cell's edges, the other
hyper-parameters, the Optuna trial behind it) and the metrics it reports.

:class:`ArchSpace` is the define-by-run space Ray's ``OptunaSearch`` samples; a trainable reads the
cell back with :func:`arch_from_config` and its other hyper-parameters with :func:`hyperparameters`,
and reports :data:`METRIC` (plus, in a multi-objective search, each cost under its name:
:func:`objective_metrics`, :func:`objective_modes`) at step :data:`TIME_ATTR`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optuna

from nasplug.graph import ArchGraph
from nasplug.optuna.params import arch_distributions, params_to_arch, suggest_architecture
from nasplug.search.objectives import ObjectiveSet
from nasplug.search_spaces import DigitSpace

#: The value a trial reports (accuracy in %, or the custom objective's value).
METRIC = "value"
#: The step of an intermediate report (epoch); ASHA's time attribute.
TIME_ATTR = "epoch"
#: Config key holding the number of the Optuna trial behind a Ray trial.
OPTUNA_TRIAL = "optuna_trial"


class ArchSpace:
    """A define-by-run space for Ray's ``OptunaSearch``: the cell's edges, then ``extra(trial)``.

    A module-level callable class, so Tune's snapshots can pickle it (a closure cannot be).
    ``extra`` — a module-level function ``extra(trial) -> dict`` — suggests the non-architecture
    hyper-parameters (``trial.suggest_float("lr", ...)``); they reach the trainable's config
    unchanged. The config also carries ``optuna_trial``, the Optuna trial's number.
    """

    def __init__(self, space: DigitSpace | str = "nb201",
                 extra: Callable[[optuna.Trial], Mapping[str, Any] | None] | None = None):
        self.space, self.extra = space, extra

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        suggest_architecture(trial, self.space)  # sets nasplug:arch / nasplug:key
        out = dict(self.extra(trial) or {}) if self.extra is not None else {}
        out[OPTUNA_TRIAL] = trial.number
        return out


def objective_metrics(objectives: ObjectiveSet) -> list[str]:
    """The Tune metrics of a multi-objective search, in the objectives' order: :data:`METRIC` for
    the accuracy, the cost names (``params``, ``flops``, ``latency``) for the costs."""
    return [METRIC if name == "accuracy" else name for name in objectives.names]


def objective_modes(objectives: ObjectiveSet) -> list[str]:
    """Tune's ``"max"``/``"min"`` of each objective, in order."""
    return ["max" if direction == "maximize" else "min" for direction in objectives.directions]


def arch_from_config(config: Mapping[str, Any], space: DigitSpace | str = "nb201") -> ArchGraph:
    """The cell of a trial's config (its ``edge_{s}_{t}`` entries: op names)."""
    return params_to_arch(config, space)


def hyperparameters(config: Mapping[str, Any], space: DigitSpace | str = "nb201") -> dict[str, Any]:
    """The non-architecture entries of a trial's config (without nasplug's bookkeeping)."""
    edges = arch_distributions(space)
    return {k: v for k, v in config.items() if k not in edges and k != OPTUNA_TRIAL}
