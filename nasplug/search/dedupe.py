"""Never evaluate the same network twice: results cached by the key of what is evaluated.

Which cells are "the same" depends on the evaluation (:func:`key_rule`, :func:`evaluation_key`):

* ``"function"`` — :meth:`~nasplug.ArchGraph.canonical_key`: equal for cells that compute the same
  function (dead edges removed, sums commutative, skips transparent); NB201's 15,625 cells are
  4,930 functions. Used when cells are trained as convolutional networks (``cnn``, ``nb201``)
  and for user objectives.
* ``"mlp_function"`` — the canonical key of :meth:`~nasplug.ArchGraph.abstract`: the theory MLP
  trains every conv as a linear layer and pooling as the identity, so NB201's cells are only 78
  distinct MLPs.
* ``"cell"`` — the cell itself: a benchmark table has its own entry for every cell.

A search evaluates the first cell of a key and answers the others from :class:`ResultCache`. A
backend feeds the cache from where its results live (Optuna: the study's storage, so processes
sharing a storage share the cache; Ray: the searcher's state) and asks it before launching an
evaluation. Keys being evaluated right now are tracked too, so a backend that runs trials
concurrently can park a duplicate of a *running* cell instead of training it a second time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nasplug.errors import NasplugError
from nasplug.graph import ArchGraph

KEY_RULES = ("function", "mlp_function", "cell")


def key_rule(objective: str, model: str | None = None) -> str:
    """The key rule of an evaluation: ``"cell"`` for a table lookup, ``"mlp_function"`` for
    training the theory MLP (``model="mlp"``), ``"function"`` otherwise."""
    if objective == "table":
        return "cell"
    if objective == "train" and model == "mlp":
        return "mlp_function"
    return "function"


def evaluation_key(rule: str) -> Callable[[ArchGraph], str]:
    """``arch -> key`` of a rule (:data:`KEY_RULES`); equal keys share one evaluation. The functions
    are module-level, so searchers holding them pickle (Ray Tune's snapshots, spawned workers)."""
    try:
        return _KEYS[rule]
    except KeyError:
        raise NasplugError(f"key rule must be one of {', '.join(KEY_RULES)}, got {rule!r}") from None


def function_key(arch: ArchGraph) -> str:
    """The function the cell computes (:meth:`~nasplug.ArchGraph.canonical_key`)."""
    return arch.canonical_key()


def mlp_function_key(arch: ArchGraph) -> str:
    """The function of the cell's MLP abstraction (convs as linear layers, pooling the identity)."""
    return arch.abstract().canonical_key()


def cell_key(arch: ArchGraph) -> str:
    """The cell itself (a benchmark table has one entry per cell)."""
    return f"cell:{arch}"


_KEYS: dict[str, Callable[[ArchGraph], str]] = {
    "function": function_key, "mlp_function": mlp_function_key, "cell": cell_key}


def with_hyperparameters(key: str, params: Mapping[str, Any] | None = None) -> str:
    """The dedupe key of a trial: its cell's key (:func:`evaluation_key`), plus the trial's other
    hyper-parameters (sorted by name) when it has any — the same cell with another learning rate is
    another evaluation. ``with_hyperparameters(k) == k``."""
    if not params:
        return key
    return key + "|" + ",".join(f"{name}={params[name]!r}" for name in sorted(params))


@dataclass(frozen=True)
class CachedResult:
    """The value of an evaluated cell and the trial (number or id) that evaluated it."""

    trial: Any
    value: float


class ResultCache:
    """Finished results and running evaluations by canonical key (thread-safe, picklable)."""

    def __init__(self) -> None:
        self._done: dict[str, CachedResult] = {}
        self._running: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._done)

    def lookup(self, key: str) -> CachedResult | None:
        """The finished result of ``key``, if any."""
        with self._lock:
            return self._done.get(key)

    def record(self, key: str, trial: Any, value: float) -> None:
        """Store a finished result (the first one of a key wins) and clear its running mark."""
        with self._lock:
            self._done.setdefault(key, CachedResult(trial, float(value)))
            if self._running.get(key) == trial:
                del self._running[key]

    def start(self, key: str, trial: Any) -> Any | None:
        """Mark ``key`` as being evaluated by ``trial``; returns the trial already evaluating it
        (then the caller should wait for that one instead), else ``None``."""
        with self._lock:
            other = self._running.get(key)
            if other is not None and other != trial:
                return other
            self._running[key] = trial
            return None

    def abandon(self, key: str, trial: Any) -> None:
        """Drop the running mark of a failed or stopped evaluation (its key may be tried again)."""
        with self._lock:
            if self._running.get(key) == trial:
                del self._running[key]

    def running(self, key: str) -> Any | None:
        with self._lock:
            return self._running.get(key)

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            return {"_done": dict(self._done), "_running": dict(self._running)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._done, self._running = state["_done"], state["_running"]
        self._lock = threading.Lock()
