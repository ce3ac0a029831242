"""``evaluate(arch) -> float`` functions for :class:`~nasplug.optuna.ArchObjective`.

* :func:`table_evaluator` — a NAS-Bench-201 table lookup (fast, reproducible search experiments),
  through :func:`nasplug.benchmarks.load_benchmark`.
* :func:`train_evaluator` — training with the architecture's principled initialization and maximal
  learning rate [C24] through :func:`nasplug.train.train_arch` (sklearn digits by default, CIFAR from
  a folder). A diverged run (NaN/inf loss) becomes :class:`~nasplug.optuna.EvaluationFailed`.
* :func:`load_callable` — a user's ``module:function``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nasplug.errors import ArchError, NasplugError
from nasplug.graph import ArchGraph
from nasplug.optuna.objective import EvaluationFailed
from nasplug.optuna.params import resolve_space

if TYPE_CHECKING:
    import optuna

    from search_spaces.base import ProductSpace


def table_evaluator(path: str, dataset: str = "cifar10", space: ProductSpace | str = "nb201",
                    metric: str = "test_accuracy") -> Callable[[ArchGraph], float]:
    """Look up ``metric`` of ``dataset`` for a cell in a NAS-Bench-201 file (any form the benchmark
    loader reads). A cell missing from the table fails its trial with reason ``missing``."""
    from nasplug.benchmarks import load_benchmark

    space = resolve_space(space)
    table = load_benchmark(path)
    rows = table.space_indices(space)
    values = table.column(dataset, metric)
    lookup = dict(zip(rows.tolist(), values.tolist()))

    def evaluate(arch: ArchGraph) -> float:
        value = lookup.get(space.encode(arch))
        if value is None or not math.isfinite(value):
            raise EvaluationFailed("missing", f"{arch} has no {dataset} {metric} in {path}")
        return float(value)

    return evaluate


def train_evaluator(dataset: str = "digits", *, data_root: str | None = None, model: str = "mlp",
                    epochs: int = 3, base_lr: float | None = None, seed: int = 0, device: str = "auto",
                    **train_kwargs: Any) -> Callable[[ArchGraph, optuna.Trial | None], float]:
    """Train each cell with its principled init and LR; returns its test accuracy (in %).

    The dataset is loaded once. The returned function takes ``(arch, trial)``: with a trial it
    reports the test accuracy after every epoch (steps 1, 2, ...) and honours an Optuna pruner.
    """
    import optuna

    from nasplug.data import load_dataset
    from nasplug.train import train_arch

    data = load_dataset(dataset, data_root)

    def evaluate(arch: ArchGraph, trial: optuna.Trial | None = None) -> float:
        def callback(epoch: int, metrics: dict[str, float]) -> None:
            if trial is not None and "test_acc" in metrics and math.isfinite(metrics["test_acc"]):
                trial.report(100.0 * metrics["test_acc"], step=int(epoch))  # epochs count from 1
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned by {trial.study.pruner.__class__.__name__} "
                                             f"after epoch {epoch}")

        try:
            result = train_arch(arch, data, model=model, epochs=epochs, base_lr=base_lr, seed=seed,
                                device=device, callback=callback, progress=False, **train_kwargs)
        except ArchError as err:  # e.g. no input→output path: no principled LR exists
            raise EvaluationFailed("untrainable", str(err)) from None
        if trial is not None:
            trial.set_user_attr("nasplug:lr", float(result.lr))
            trial.set_user_attr("nasplug:train_seconds", round(float(result.seconds), 3))
        if not result.ok:
            raise EvaluationFailed(result.status, result.reason)
        return 100.0 * float(result.test_acc)

    return evaluate


def load_callable(spec: str) -> Callable[..., float]:
    """Import ``module:function`` (e.g. ``mypkg.search:evaluate``)."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise NasplugError(f"--objective must be MODULE:FUNCTION, got {spec!r}")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise NasplugError(f"cannot load objective {spec!r}: {err}") from None
    if not callable(fn):
        raise NasplugError(f"{spec!r} is not callable")
    return fn
