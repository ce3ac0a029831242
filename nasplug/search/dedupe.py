"""Never evaluate the same function twice: results cached by canonical key.

Two cells with equal :meth:`~nasplug.ArchGraph.canonical_key` compute the same function (dead edges
removed, sums commutative, skips transparent), so a search evaluates the first and answers the
others from :class:`ResultCache`. A backend feeds the cache from where its results live (Optuna: the
study's storage, so processes sharing a storage share the cache; Ray: the searcher's state) and
asks it before launching an evaluation. Keys being evaluated right now are tracked too, so a
backend that runs trials concurrently can park a duplicate of a *running* cell instead of training
it a second time.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def evaluation_key(arch_key: str, params: Mapping[str, Any] | None = None) -> str:
    """The dedupe key of an evaluation: the cell's canonical key, plus the trial's other
    hyper-parameters (sorted by name) when it has any — the same cell with another learning rate is
    another evaluation. ``evaluation_key(k) == k``."""
    if not params:
        return arch_key
    return arch_key + "|" + ",".join(f"{name}={params[name]!r}" for name in sorted(params))


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
