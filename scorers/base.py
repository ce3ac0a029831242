"""The scorer and filter protocols, and the one registry the CLI, Optuna and Ray resolve names in.

A *scorer* ranks architectures without training: ``score(arch) -> float`` and the vectorized
``score_many(archs) -> ndarray``, which is the primary implementation (scoring a whole search space
is one batched call). A *filter* decides which architectures are worth training:
``keep(arch) -> bool`` and ``keep_many(archs) -> bool ndarray``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from nasplug.errors import NasplugError
from nasplug.graph import ArchBatch, ArchGraph, as_batch

Archs = Iterable[ArchGraph | str] | ArchBatch


@runtime_checkable
class Scorer(Protocol):
    name: str
    higher_is_better: bool

    def score(self, arch: ArchGraph | str) -> float: ...

    def score_many(self, archs: Archs) -> np.ndarray: ...


@runtime_checkable
class Filter(Protocol):
    name: str

    def keep(self, arch: ArchGraph | str) -> bool: ...

    def keep_many(self, archs: Archs) -> np.ndarray: ...


def map_batches(archs: Archs, fn: Callable[[ArchBatch], np.ndarray], dtype: Any) -> np.ndarray:
    """Apply a batched function to any collection of architectures.

    Architectures with different numbers of nodes are split into same-size batches and the
    results put back in input order, so callers may mix them freely.
    """
    if isinstance(archs, ArchBatch):
        return np.asarray(fn(archs), dtype=dtype)
    archs = [ArchGraph.parse(a) for a in archs]
    out = np.empty(len(archs), dtype=dtype)
    by_size: dict[int, list[int]] = {}
    for i, arch in enumerate(archs):
        by_size.setdefault(arch.n_nodes, []).append(i)
    for positions in by_size.values():
        out[positions] = fn(as_batch([archs[i] for i in positions]))
    return out


def oriented(scorer: Scorer, values: np.ndarray) -> np.ndarray:
    """``values`` of ``scorer`` as floats signed so that higher is better (NaN stays NaN)."""
    values = np.asarray(values, dtype=np.float64)
    return values if getattr(scorer, "higher_is_better", True) else -values


class BatchScorer:
    """Base class: implement :meth:`score_batch` on an :class:`ArchBatch`; the rest follows."""

    name: str = ""
    higher_is_better: bool = True
    description: str = ""

    def score_batch(self, batch: ArchBatch) -> np.ndarray:
        raise NotImplementedError

    def score_many(self, archs: Archs) -> np.ndarray:
        return map_batches(archs, self.score_batch, np.float64)

    def score(self, arch: ArchGraph | str) -> float:
        return float(self.score_many([arch])[0])

    def __repr__(self) -> str:
        return f"<scorer {self.name}>"


class BatchFilter:
    """Base class of filters: implement :meth:`keep_batch`."""

    name: str = ""
    description: str = ""

    def keep_batch(self, batch: ArchBatch) -> np.ndarray:
        raise NotImplementedError

    def keep_many(self, archs: Archs) -> np.ndarray:
        return map_batches(archs, self.keep_batch, bool)

    def keep(self, arch: ArchGraph | str) -> bool:
        return bool(self.keep_many([arch])[0])

    def __repr__(self) -> str:
        return f"<filter {self.name}>"


# ---------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # "scorer" or "filter"
    factory: Callable[..., Any]
    description: str
    slow: bool = False  # builds a torch network per cell: too slow to score whole spaces on a CPU


_REGISTRY: dict[str, Entry] = {}


def register(name: str, kind: str, description: str, *, slow: bool = False) -> Callable:
    """Class/function decorator adding a scorer or filter factory to the registry.

    ``slow`` marks per-cell scorers (a torch network built and run for every cell) so that tools
    scoring whole spaces can leave them out or run them on a sample.
    """
    if kind not in ("scorer", "filter"):
        raise ValueError(f"kind must be 'scorer' or 'filter', got {kind!r}")

    def decorate(factory):
        _REGISTRY[name] = Entry(name, kind, factory, description, slow)
        return factory

    return decorate


def get(name: str, **params: Any) -> Any:
    """Build the registered scorer or filter ``name`` with optional keyword parameters."""
    _load_all()
    try:
        entry = _REGISTRY[name]
    except KeyError:
        raise NasplugError(
            f"unknown scorer or filter {name!r}; available: {', '.join(sorted(_REGISTRY))}"
        ) from None
    try:
        return entry.factory(**params)
    except TypeError as err:
        raise NasplugError(f"bad parameters for {name!r}: {err}") from None


def available(kind: str | None = None, *, include_slow: bool = True) -> dict[str, str]:
    """Registered names (optionally only ``"scorer"`` or ``"filter"``, optionally without the
    slow per-cell ones) with descriptions."""
    _load_all()
    return {
        n: e.description for n, e in sorted(_REGISTRY.items())
        if kind in (None, e.kind) and (include_slow or not e.slow)
    }


def is_slow(name: str) -> bool:
    """Whether the registered scorer ``name`` builds a network per cell (see :func:`register`)."""
    _load_all()
    if name not in _REGISTRY:
        raise NasplugError(f"unknown scorer or filter {name!r}")
    return _REGISTRY[name].slow


def _load_all() -> None:
    """Import the modules that register entries; lazily, so heavy ones (torch) load on demand."""
    import importlib

    for module in _MODULES:
        importlib.import_module(module)


#: Modules whose import registers scorers. Add new scorer modules here.
_MODULES: list[str] = [
    "scorers.topology", "scorers.hparams", "scorers.nngp", "scorers.baselines", "scorers.quantile",
]
