"""The scorer and filter protocols and their batched base classes.

A *scorer* ranks architectures without training: ``score(arch) -> float`` and the vectorized
``score_many(archs) -> ndarray``, which is the primary implementation (scoring a whole search space
is one batched call). A *filter* decides which architectures are worth training:
``keep(arch) -> bool`` and ``keep_many(archs) -> bool ndarray``. Registered by name in
:mod:`nasplug.scorers.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from nasplug.errors import ArchError
from nasplug.graph import ArchBatch, ArchGraph, as_batch, batch_of_encodings
from nasplug.search_spaces import DigitSpace, resolve_space

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
    archs = list(archs)
    try:  # cells in one benchmark's own form: straight into arrays, no per-cell objects
        fast = batch_of_encodings(archs)
    except ArchError:
        fast = None  # e.g. mixed node counts; a bad cell is reported by the per-cell path below
    if fast is not None:
        return np.asarray(fn(fast), dtype=dtype)
    archs = [ArchGraph.parse(a) for a in archs]
    out = np.empty(len(archs), dtype=dtype)
    by_size: dict[int, list[int]] = {}
    for i, arch in enumerate(archs):
        by_size.setdefault(arch.n_nodes, []).append(i)
    for positions in by_size.values():
        out[positions] = fn(as_batch([archs[i] for i in positions]))
    return out


def fit_cells(source: Any, rng: int = 0) -> Archs:
    """What a filter is fitted on: a space (or its name) gives its
    :meth:`~nasplug.search_spaces.DigitSpace.fit_batch` (the whole space, or a seeded sample of a
    large one); a list of cells or an :class:`~nasplug.graph.ArchBatch` (e.g. a benchmark's cells, of
    any sizes: :func:`map_batches` splits them) is used as it is."""
    if isinstance(source, (str, DigitSpace)):
        return resolve_space(source).fit_batch(rng)
    return source


def oriented(values: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """``values`` as float64, negated when lower is better, so that larger always means better
    (NaN stays NaN). The one place a score's direction is applied: pass
    ``scorer.higher_is_better`` for a scorer's values."""
    values = np.asarray(values, dtype=np.float64)
    return values if higher_is_better else -values


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
