"""Filter and scorer resolution, and the keep-mask of a space with its fallbacks.

Every search backend (Optuna's sampler wrapper, Ray's searcher) decides with :class:`KeepMask`
whether a proposed cell may be trained, and where to go when no proposal passes.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from nasplug import scorers
from nasplug.errors import NasplugError
from nasplug.search_spaces import DigitSpace, resolve_space

#: How many random cells at Hamming distance 2 the large-space ``nearest`` search tries.
RADIUS2_SAMPLES = 4000


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))


def resolve_filter(filter: Any, space: Any) -> Any:
    """A filter object from itself, ``None``/``"none"`` (no filter) or a registered filter name.

    A registered factory with a ``space`` parameter (``dag_box``, ``top_fraction``: fitted on the
    space) gets the space — a space or its name, or the cells to fit on (a list of cells or an
    :class:`~nasplug.graph.ArchBatch`, e.g. a benchmark's). Raises
    :class:`~nasplug.errors.NasplugError` for unknown names and for names that are scorers.
    """
    if _is_none(filter):
        return None
    if not isinstance(filter, str):
        if not hasattr(filter, "keep_many"):
            raise NasplugError(f"{filter!r} is not a filter (needs keep/keep_many)")
        return filter
    name = filter.strip()
    try:
        found = scorers.entry(name)
    except NasplugError:
        found = None
    if found is None or found.kind != "filter":
        filters = ", ".join(n for n in scorers.names() if _kind(n) == "filter")
        if found is None:
            raise NasplugError(f"unknown filter {name!r}; available: {filters} or none")
        raise NasplugError(f"{name!r} is a scorer, not a filter; filters: {filters} or none")
    if found.takes_space:
        return scorers.get(name, space=resolve_space(space) if isinstance(space, str) else space)
    return scorers.get(name)


def _kind(name: str) -> str | None:
    try:
        return scorers.entry(name).kind
    except Exception:  # a broken third-party plugin must not hide the list of working filters
        return None


def resolve_scorer(scorer: Any, space: Any = None) -> Any:
    """A scorer object from itself, ``None``/``"none"`` or a registered scorer name.

    A registered factory with a ``space`` parameter (``rank_ensemble``: ranks against the space) is
    fitted on ``space`` when one is given — a space or its name, or the cells to fit on, as for
    :func:`resolve_filter` — else on its own default.
    """
    if _is_none(scorer):
        return None
    if not isinstance(scorer, str):
        if not hasattr(scorer, "score_many"):
            raise NasplugError(f"{scorer!r} is not a scorer (needs score/score_many)")
        return scorer
    name = scorer.strip()
    found = scorers.entry(name)
    if found.kind != "scorer":
        raise NasplugError(f"{name!r} is a filter, not a scorer")
    if found.takes_space and space is not None:
        return scorers.get(name, space=resolve_space(space) if isinstance(space, str) else space)
    return scorers.get(name)


class KeepMask:
    """Fast filter decisions over a digit space, by cell digits (e.g. op index per edge).

    For spaces that can be enumerated (:attr:`~nasplug.search_spaces.DigitSpace.enumerable`) the
    whole keep-mask is computed once with the filter's vectorized ``keep_many`` (15,625 NB201
    cells: ~10 ms), which also makes the ``nearest`` and ``uniform`` fallbacks exact. Larger spaces
    ask the filter per proposal and search locally, by digits, so any space size works. Digit
    vectors that are not cells of the space (:meth:`~nasplug.search_spaces.DigitSpace.valid_digits`,
    e.g. an NB101 cell without an input→output path) are never kept. ``filter=None`` keeps every
    valid cell.
    """

    def __init__(self, space: DigitSpace, filter: Any):
        self.space, self.filter = space, filter
        self._mask: np.ndarray | None = None
        self._passing: np.ndarray | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def exact(self) -> bool:
        return self.space.enumerable

    def _ensure_mask(self) -> None:
        with self._lock:
            if self._mask is None:
                digits = self.space.digit_matrix(np.arange(self.space.size))
                mask = self.space.valid_digits(digits) & np.asarray(
                    self.filter.keep_many(self.space.batch_digits(digits)), dtype=bool)
                self._passing = np.flatnonzero(mask)
                self._mask = mask

    def mask(self) -> np.ndarray | None:
        """The ``(size,)`` keep-mask of an enumerable space (``None`` when there is no filter)."""
        if self.filter is None or not self.exact:
            return None
        self._ensure_mask()
        return self._mask

    def keep(self, digits: Sequence[int]) -> bool:
        return bool(self.keep_many(np.asarray([digits]))[0])

    def keep_many(self, digits: np.ndarray) -> np.ndarray:
        """``(B,)`` bool for a ``(B, D)`` digit matrix."""
        digits = np.asarray(digits, dtype=np.int64).reshape(-1, len(self.space.radices))
        valid = self.space.valid_digits(digits)
        if self.filter is None:
            return valid
        if self.exact:
            self._ensure_mask()
            return self._mask[self.space.indices_of(digits)]
        keep = np.zeros(len(digits), dtype=bool)
        if valid.any():
            passed = self.filter.keep_many(self.space.batch_digits(digits[valid]))
            keep[valid] = np.asarray(passed, dtype=bool)
        return keep

    def count(self) -> int | None:
        """Passing cells of an enumerable space (``None`` when unknown without enumerating)."""
        if self.filter is None:
            return self.space.size if self.exact else None
        if not self.exact:
            return None
        self._ensure_mask()
        return len(self._passing)

    def nearest(self, digits: Sequence[int], rng: np.random.Generator,
                fixed: Sequence[bool] | None = None) -> tuple[int, ...] | None:
        """A passing cell at the smallest Hamming distance from ``digits`` (ties at random);
        ``None`` when no cell passes. ``fixed`` (``(D,)`` bools) marks digits whose value must stay
        as in ``digits`` (e.g. edges enqueued with ``study.enqueue_trial``); only the others change."""
        digits = np.asarray(digits, dtype=np.int64)
        free = self._free(fixed)
        if self.filter is None and self.keep(digits):
            return tuple(int(d) for d in digits)
        if self.exact and self.filter is not None:
            self._ensure_mask()
            candidates = self.space.digit_matrix(self._passing)
            candidates = candidates[(candidates[:, ~free] == digits[None, ~free]).all(axis=1)]
            if len(candidates) == 0:
                return None
            distance = (candidates != digits[None, :]).sum(axis=1)
            best = np.flatnonzero(distance == distance.min())
            return tuple(int(d) for d in candidates[rng.choice(best)])
        if self.keep(digits):
            return tuple(int(d) for d in digits)
        # Large space: every cell at distance 1, then random cells at distance 2, then uniform
        # (changing free digits only).
        neighbours = self.space.neighbour_digits(digits)
        neighbours = neighbours[(neighbours[:, ~free] == digits[None, ~free]).all(axis=1)]
        for cells in (neighbours, self._radius2(digits, free, rng)):
            keep = self.keep_many(cells) if len(cells) else np.zeros(0, dtype=bool)
            if keep.any():
                return tuple(int(x) for x in cells[int(rng.choice(np.flatnonzero(keep)))])
        return self.uniform(rng, fixed=None if free.all() else np.where(free, -1, digits))

    def _free(self, fixed: Sequence[bool] | None) -> np.ndarray:
        if fixed is None:
            return np.ones(len(self.space.radices), dtype=bool)
        return ~np.asarray(fixed, dtype=bool).reshape(len(self.space.radices))

    def _radius2(self, digits: np.ndarray, free: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        radices = np.array(self.space.radices)
        changeable = np.flatnonzero(free & (radices > 1))
        if len(changeable) == 0:
            return np.zeros((0, len(digits)), dtype=np.int64)
        cells = np.repeat(digits[None, :], RADIUS2_SAMPLES, axis=0)
        for row in cells:
            for e in rng.choice(changeable, size=min(2, len(changeable)), replace=False):
                row[e] = (row[e] + rng.integers(1, radices[e])) % radices[e]
        return cells

    def uniform(self, rng: np.random.Generator, max_draws: int = 20_000,
                fixed: Sequence[int] | None = None) -> tuple[int, ...] | None:
        """A uniformly drawn passing cell (rejection sampling on large spaces; ``None`` if none is
        found in ``max_draws`` draws). ``fixed`` (``(D,)`` digits, ``-1`` for free ones) pins some
        digits."""
        pinned = None if fixed is None else np.asarray(fixed, dtype=np.int64)
        if self.exact and self.filter is not None:
            self._ensure_mask()
            candidates = self._passing
            if pinned is not None:
                rows = self.space.digit_matrix(candidates)
                keep = ((rows == pinned[None, :]) | (pinned[None, :] < 0)).all(axis=1)
                candidates = candidates[keep]
            if len(candidates) == 0:
                return None
            return self.space.digits(int(rng.choice(candidates)))
        for _ in range(0, max_draws, 1000):
            block = self.space.sample_digits(1000, rng)
            if pinned is not None:
                block = np.where(pinned[None, :] >= 0, pinned[None, :], block)
            keep = self.keep_many(block)
            if keep.any():
                return tuple(int(x) for x in block[int(np.flatnonzero(keep)[0])])
        return None
def keep_mask(space: DigitSpace, filter: Any) -> KeepMask:
    """The :class:`KeepMask` of ``filter`` on ``space``, shared by everything in this process that
    asks for the same filter object on an equal space (the run's header, the sampler, the Ray
    searcher, the scored start): a filter that scores cells (``top_fraction`` scores the whole space
    per pass, seconds with the NTK) is applied to the space once. Held while the filter lives."""
    if filter is None:
        return KeepMask(space, None)
    key = (id(filter), repr(space))
    with _MASKS_LOCK:
        held = _MASKS.get(key)
        if held is not None and held[0]() is filter:
            return held[1]
        mask = KeepMask(space, filter)
        try:
            ref = weakref.ref(filter, lambda _, key=key: _MASKS.pop(key, None))
        except TypeError:  # an object without weak references: not shared
            return mask
        _MASKS[key] = (ref, mask)
        return mask


_MASKS: dict[tuple[int, str], tuple[weakref.ref, KeepMask]] = {}
_MASKS_LOCK = threading.Lock()


