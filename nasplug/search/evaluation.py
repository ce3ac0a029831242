"""Evaluating one architecture, independently of the search framework.

An **evaluator** is ``evaluate(arch, report=None, store=None) -> float | Evaluation``: it trains the
cell (or looks it up, or calls user code) and returns the value the search optimizes, optionally with
attributes to record on the trial (:class:`Evaluation`). ``report(step, value)``, when
given, receives intermediate values (one per epoch while training); a framework adapter turns
that into ``optuna.Trial.report`` + pruning or ``ray.tune.report``, and may raise its own
exception from ``report`` to stop the evaluation early. ``store``, when given, is a
:class:`StateStore`: an evaluation that can resume (training) saves its state there after every step,
*before* reporting it, and starts from the stored state if there is one — a backend that restarts
a trial on another worker (Ray Tune's checkpoints) plugs in there. A failed evaluation raises
:class:`EvaluationFailed` with a short reason.

* :func:`table_evaluator` — a NAS-Bench-201 table lookup (fast, reproducible search experiments);
* :func:`train_evaluator` — training with the cell's principled initialization and maximal learning
  rate [C24] (digits by default, CIFAR/ImageNet16-120 from a folder), valued on the validation split;
* :func:`load_callable` — a user's ``module:function``.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from nasplug.errors import ArchError, NasplugError
from nasplug.graph import ArchGraph
from nasplug.nasbench import load_benchmark
from nasplug.search.attrs import ATTR_LR, ATTR_TRAIN_SECONDS
from nasplug.search_spaces import DigitSpace, resolve_space

Report = Callable[[int, float], None]


@dataclass(frozen=True)
class Evaluation:
    """A value with attributes to record on the trial (e.g. ``{ATTR_LR: 0.03}``)."""

    value: float
    attrs: dict[str, Any] = field(default_factory=dict)


class StateStore(Protocol):
    """Where a resumable evaluation keeps its state between steps (e.g. a Ray Tune checkpoint)."""

    def load(self) -> dict[str, Any] | None:
        """The latest saved state of this evaluation, or ``None`` to start from scratch."""

    def save(self, step: int, state: dict[str, Any]) -> None:
        """Keep ``state`` after ``step``; called before ``report(step, value)`` of the same step."""


class Evaluator(Protocol):
    def __call__(self, arch: ArchGraph, report: Report | None = None,
                 store: StateStore | None = None) -> float | Evaluation: ...


class EvaluationFailed(NasplugError):
    """An evaluation that produced no usable value (e.g. the training diverged to NaN).

    ``reason`` is a short machine-readable status (``"diverged"``, ``"untrainable"``,
    ``"missing"``) and ``detail`` a human-readable explanation; search backends record
    ``"<reason>: <detail>"`` as the trial's fail reason.
    """

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)

    def __reduce__(self):  # picklable across processes (Ray, multiprocessing)
        return (type(self), (self.reason, self.detail))


def check_value(result: Any) -> Evaluation:
    """An evaluator's return value as an :class:`Evaluation` with a finite value; NaN/inf is
    :class:`EvaluationFailed` (``diverged``), a non-number ``error``."""
    attrs = {}
    if isinstance(result, Evaluation):
        result, attrs = result.value, result.attrs
    try:
        value = float(result)
    except (TypeError, ValueError):
        raise EvaluationFailed("error", f"evaluation returned {result!r}, not a number") from None
    if not math.isfinite(value):
        raise EvaluationFailed("diverged", f"evaluation returned {value}")
    return Evaluation(value, dict(attrs))


def table_evaluator(path: str, dataset: str = "cifar10", space: DigitSpace | str = "nb201",
                    metric: str | None = None) -> Evaluator:
    """Look up ``metric`` (default: the table's, ``test_accuracy`` when it has one) of ``dataset``
    for a cell in a benchmark file (any form :func:`nasplug.nasbench.load_benchmark` reads: an
    NB201 file for ``nb201``, an NB101 / NB301 file or table of cells for ``nb101`` / ``nb301``). A
    cell missing from the table fails with reason ``missing``. ``report`` and ``store`` are not
    used (a lookup has no intermediate values)."""
    space = resolve_space(space)
    table = load_benchmark(path).labelled([dataset])
    metric = metric or table.default_metric
    rows = table.space_indices(space)
    values = table.column(dataset, metric)
    cells, where = np.unique(rows, return_inverse=True)  # a cell measured more than once: the mean
    with np.errstate(invalid="ignore"):
        means = (np.bincount(where, weights=np.nan_to_num(values))
                 / np.bincount(where, weights=np.isfinite(values)))
    lookup = dict(zip(cells.tolist(), means.tolist()))

    def evaluate(arch: ArchGraph, report: Report | None = None, store: StateStore | None = None) -> float:
        value = lookup.get(space.encode(arch))
        if value is None or not math.isfinite(value):
            raise EvaluationFailed("missing", f"{arch} has no {dataset} {metric} in {path}")
        return float(value)

    return evaluate


#: Fraction of the training split held out for validation when a dataset has no validation split.
VALID_FRACTION = 0.1


def train_evaluator(dataset: str = "digits", *, data_root: str | None = None, model: str = "cnn",
                    width: int | None = None, init: str = "arch_aware", epochs: int = 10,
                    base_lr: float | None = None, seed: int = 0, device: str = "auto",
                    **train_kwargs: Any) -> Evaluator:
    """Train each cell with its principled init and LR; its value is the **validation** accuracy
    (in %) after the last epoch, with the learning rate and training seconds as attributes
    (``nasplug:lr``, ``nasplug:train_seconds``). The test split is never evaluated: a search
    selects on validation, and only its best cells are tested, once (:mod:`nasplug.search.final`).

    The dataset is loaded once (a dataset without a validation split gets
    :data:`VALID_FRACTION` of its training split held out). ``report(epoch, validation accuracy
    in %)`` is called after every epoch (epochs count from 1). On CPU, training uses one thread
    per worker process (tiny networks lose more to thread contention than they gain; use
    several workers for several cores). With a ``store`` the run saves its state (model, optimizer,
    epoch, RNG states: :func:`nasplug.train.train`'s ``on_state``) there after every epoch and
    resumes from the stored state, bit-identically on the CPU. A cell without an input→output
    path fails as
    ``untrainable``, a diverged run as ``diverged``.
    """
    data = evaluation_data(dataset, data_root)

    def evaluate(arch: ArchGraph, report: Report | None = None,
                 store: StateStore | None = None) -> Evaluation:
        def callback(epoch: int, metrics: dict[str, float]) -> None:
            if report is not None and "valid_acc" in metrics and math.isfinite(metrics["valid_acc"]):
                report(int(epoch), 100.0 * metrics["valid_acc"])

        result = train_once(arch, data, model=model, width=width, init=init, epochs=epochs,
                            base_lr=base_lr, seed=seed, device=device, callback=callback, test=False,
                            state=None if store is None else store.load(),
                            on_state=None if store is None else store.save, **train_kwargs)
        return Evaluation(100.0 * float(result.valid_acc),
                          {ATTR_LR: float(result.lr), ATTR_TRAIN_SECONDS: round(result.seconds, 3)})

    return evaluate


def evaluation_data(dataset: str, data_root: str | None = None):
    """The dataset a training search uses: train / validation / test splits (a validation split
    carved from the training split when the dataset has none)."""
    from nasplug.data import load_dataset

    return load_dataset(dataset, data_root).with_validation(VALID_FRACTION)


def train_once(arch: ArchGraph, data, **kwargs: Any):
    """:func:`nasplug.train.train_arch` as a search runs it (one CPU thread, no progress bar);
    an untrainable cell or a diverged run raises :class:`EvaluationFailed`."""
    import torch

    from nasplug.train import resolve_device, train_arch

    if resolve_device(kwargs.get("device", "auto")).type == "cpu":
        torch.set_num_threads(1)
    try:
        result = train_arch(arch, data, progress=False, **kwargs)
    except ArchError as err:  # e.g. no input→output path: no principled LR exists
        raise EvaluationFailed("untrainable", str(err)) from None
    if not result.ok:
        raise EvaluationFailed(result.status, result.reason)
    return result


def load_callable(spec: str) -> Evaluator:
    """Import a user's ``module:function`` (e.g. ``mypkg.search:evaluate``).

    The function may take ``(arch)``, ``(arch, report)`` or ``(arch, report, store)``; the returned
    evaluator has the ``(arch, report=None, store=None)`` signature either way.
    """
    module, _, name = spec.partition(":")
    if not module or not name:
        raise NasplugError(f"--objective must be MODULE:FUNCTION, got {spec!r}")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise NasplugError(f"cannot load objective {spec!r}: {err}") from None
    if not callable(fn):
        raise NasplugError(f"{spec!r} is not callable")
    return as_evaluator(fn)


def as_evaluator(fn: Callable[..., float]) -> Evaluator:
    """Adapt ``fn(arch)``, ``fn(arch, report)`` or ``fn(arch, report, store)`` to the evaluator
    signature (the arguments ``fn`` does not take are dropped)."""
    try:
        params = inspect.signature(fn).parameters
        positional = len(params)
        if any(p.kind == p.VAR_POSITIONAL for p in params.values()):
            positional = 3
    except (TypeError, ValueError):  # builtins without a signature
        positional = 1
    if positional >= 3:
        return fn

    def evaluate(arch: ArchGraph, report: Report | None = None, store: StateStore | None = None) -> float:
        return fn(arch, report) if positional == 2 else fn(arch)

    return evaluate
