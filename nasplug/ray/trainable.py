"""The Ray Tune trainable of ``nasplug search --backend ray``: evaluate one cell on a Ray worker.

:func:`evaluate_trial` runs the search's evaluator (:meth:`nasplug.search.SearchConfig.evaluator`:
training with the cell's principled init and learning rate [C24], a NAS-Bench-201 table lookup, or
the user's ``module:function``) on the cell of the trial's config and reports to Tune:

* every intermediate value as ``{"value": v, "epoch": step}`` — ASHA's time attribute is ``epoch`` —
  with a checkpoint of the evaluation's state (model, optimizer, epoch, RNG states: :class:`TrialStore`);
  a trial restarted by Tune (its worker died, ``FailureConfig(max_failures)``; or the driver was
  interrupted and the experiment restored) resumes from it instead of starting over;
* the final value with ``nasplug:evaluated`` and the evaluator's attributes (learning rate,
  training seconds) — in one report with the last epoch (``epoch >= --epochs``), so a scheduler
  that stops trials at their last epoch (ASHA's ``max_t``) cannot cut a finished training off
  before its final value;
* a failed evaluation (:class:`~nasplug.search.EvaluationFailed`: a diverged training, a cell
  missing from the table) as a result with ``nasplug:fail_reason`` — not as an exception, so Tune
  does not retry a deterministic failure ``max_failures`` times; the searcher records it as FAIL;
* in a multi-objective search (``--objectives``), the costs of the cell's network next to the
  accuracy in every report (Tune wants every searcher metric in every result), by name:
  ``params`` and ``flops`` in closed form, ``latency`` measured on the trial's device before the
  evaluation (:class:`~nasplug.search.objectives.ObjectiveSet`, as the Optuna backend computes them).

**Device.** Inside Ray the device comes from the GPUs Ray assigned to the trial
(``ray.get_gpu_ids()``, :func:`trial_device`), never from "is CUDA visible": Ray ≥ 2.60 no longer
hides the GPUs of a node from a trial that asked for none, so a CPU-only trial on a GPU node would
otherwise take ``cuda:0``. Such a trial also gets ``CUDA_VISIBLE_DEVICES=""`` for any user code.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import ray
from ray import tune

from nasplug.errors import NasplugError
from nasplug.ray.space import METRIC, TIME_ATTR, arch_from_config, objective_metrics
from nasplug.search import EvaluationFailed, Evaluator, SearchConfig, check_value
from nasplug.search.attrs import ATTR_EVALUATED, ATTR_FAIL_REASON
from nasplug.search.objectives import ObjectiveSet
from nasplug.search_spaces import get as get_space

STATE_FILE = "state.pt"

#: Evaluators and objective sets built in this worker process, by settings (a reused actor loads
#: its data once and measures each network's latency once).
_EVALUATORS: dict[str, tuple[Evaluator, ObjectiveSet | None]] = {}


def trial_device(requested: str = "auto") -> str:
    """The torch device of the running Ray trial.

    ``"auto"`` is ``"cuda"`` when Ray assigned GPUs to the trial (Ray then sets
    ``CUDA_VISIBLE_DEVICES`` to them, so ``cuda`` is the first assigned one) and ``"cpu"``
    otherwise — whatever CUDA devices the node has. A trial without GPUs also gets
    ``CUDA_VISIBLE_DEVICES=""`` so that user code cannot pick one up either.

    Raises
    ------
    NasplugError
        ``requested`` is a CUDA device but Ray assigned no GPU to the trial.
    """
    gpus = ray.get_gpu_ids()
    if not gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if requested == "auto":
        return "cuda" if gpus else "cpu"
    if requested.startswith("cuda") and not gpus:
        raise NasplugError(f"device {requested!r} requested, but Ray assigned no GPU to this trial "
                           "(give trials GPUs: --gpus-per-trial)")
    return requested


class TrialStore:
    """A :class:`~nasplug.search.StateStore` on Tune checkpoints.

    ``load`` reads the trial's latest checkpoint (``tune.get_checkpoint()``); ``save`` keeps the
    state until the next :meth:`report`, which writes it (``torch.save``) next to the metrics in one
    ``tune.report(metrics, checkpoint=...)`` — so a checkpoint always matches a reported step.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def load(self) -> dict[str, Any] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        import torch

        with checkpoint.as_directory() as folder:
            return torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=False)

    def save(self, step: int, state: dict[str, Any]) -> None:
        self._pending = state

    def report(self, metrics: dict[str, Any]) -> None:
        if self._pending is None:
            tune.report(metrics)
            return
        import torch

        with tempfile.TemporaryDirectory() as folder:
            torch.save(self._pending, Path(folder) / STATE_FILE)
            self._pending = None
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _evaluator(search: SearchConfig, device: str) -> tuple[Evaluator, ObjectiveSet | None]:
    key = json.dumps({**search.identity(), "device": device, "data_root": search.data_root,
                      "seed": search.seed}, sort_keys=True, default=str)
    if key not in _EVALUATORS:
        search.device = device
        _EVALUATORS[key] = search.evaluator(), search.objective_set()
    return _EVALUATORS[key]


def evaluate_trial(config: dict[str, Any], search: dict[str, Any]) -> None:
    """Tune function trainable: evaluate the cell of ``config`` as ``search`` (a
    :meth:`SearchConfig.as_dict`, paths absolute) says; pass it with ``tune.with_parameters``."""
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)  # a line per checkpoint
    settings = SearchConfig.from_dict(search)
    arch = arch_from_config(config, get_space(settings.space))
    store = TrialStore()
    last: dict[str, Any] = {}
    costs: dict[str, float] = {}  # the network's costs, by name, in every report

    def report(step: int, value: float) -> None:
        if not math.isfinite(value):
            return
        if step >= settings.epochs:  # the last epoch: reported once, with the final value
            last[TIME_ATTR] = int(step)
        else:
            store.report({METRIC: float(value), TIME_ATTR: int(step), **costs})

    def fail(reason: str) -> None:  # every metric, NaN: Tune checks each result for all of them
        objectives = settings.objective_set()
        metrics = objective_metrics(objectives) if objectives is not None else [METRIC]
        tune.report({**dict.fromkeys(metrics, float("nan")), ATTR_FAIL_REASON: reason})

    try:
        evaluator, objectives = _evaluator(settings, trial_device(settings.device))
        if objectives is not None:
            costs.update(objectives.costs(arch))
        result = check_value(evaluator(arch, report, store))
    except EvaluationFailed as err:
        fail(str(err))
        return
    except NasplugError as err:  # a setting this worker cannot honour (no GPU, missing data)
        fail(f"error: {err}")
        return
    store.report({METRIC: result.value, ATTR_EVALUATED: True, **result.attrs, **last, **costs})
