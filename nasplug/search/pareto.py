"""Pareto fronts and hypervolume of objective vectors, with mixed directions.

A point ``a`` **dominates** ``b`` when it is at least as good in every objective and better in one;
the **Pareto front** is the set of points no other point dominates. The **hypervolume** of a set is
the volume of the region its points dominate, up to a reference point (Zitzler & Thiele, *Multi-
objective evolutionary algorithms: a comparative case study*, PPSN 1998); it grows when a front
moves forward or spreads, and is the standard single figure for comparing fronts.

Objectives are first normalized by :class:`Bounds` — ``ideal`` (the best value of each objective)
maps to 0 and ``nadir`` (the worst) to 1, as losses — so a hypervolume is a fraction of the unit box
in ``[0, 1]`` whatever the units (%, parameters, ms), with the reference point at the nadir.
The volume itself is Optuna's exact computation (``optuna._hypervolume.compute_hypervolume``: a 2-D
sweep, an O(N²) 3-D algorithm, WFG beyond), which its hypervolume history plots and samplers use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nasplug.errors import NasplugError

DIRECTIONS = ("maximize", "minimize")


def as_losses(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """``(N, M)`` values turned into losses (maximized objectives negated)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(directions):
        raise NasplugError(f"expected an (N, {len(directions)}) array of objective values, "
                           f"got {values.shape}")
    for d in directions:
        if d not in DIRECTIONS:
            raise NasplugError(f"direction must be maximize or minimize, got {d!r}")
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return values * sign


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """``(N,)`` bool: which of the ``(N, M)`` points no other point dominates.

    Rows with a NaN are never on the front. Equal points do not dominate each other (both are
    kept). Points are sorted lexicographically, so only earlier points can dominate a later one;
    each block of points is compared with the front found so far (O(N·F·M) for a front of F).
    """
    losses = as_losses(values, directions)
    n = len(losses)
    mask = np.zeros(n, dtype=bool)
    finite = np.flatnonzero(np.isfinite(losses).all(axis=1))
    order = finite[np.lexsort(losses[finite].T[::-1])]
    front: list[int] = []
    for i in order:
        if front:
            f = losses[front]
            if (np.all(f <= losses[i], axis=1) & np.any(f < losses[i], axis=1)).any():
                continue
        front.append(int(i))
    mask[front] = True
    return mask


@dataclass(frozen=True)
class Bounds:
    """Per-objective ``ideal`` (best) and ``nadir`` (worst) values that normalize a hypervolume."""

    ideal: tuple[float, ...]
    nadir: tuple[float, ...]
    directions: tuple[str, ...]

    @classmethod
    def of(cls, values: np.ndarray, directions: Sequence[str]) -> Bounds:
        """The best and worst value of each objective over ``values`` (NaN rows ignored)."""
        losses = as_losses(values, directions)
        losses = losses[np.isfinite(losses).all(axis=1)]
        if not len(losses):
            raise NasplugError("no finite objective values to take bounds from")
        sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
        return cls(tuple((losses.min(axis=0) * sign).tolist()), tuple((losses.max(axis=0) * sign).tolist()),
                   tuple(directions))

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """Losses scaled so that ``ideal`` → 0 and ``nadir`` → 1 (an objective whose bounds
        coincide is scaled by 1)."""
        losses = as_losses(values, self.directions)
        lo = as_losses(np.array([self.ideal]), self.directions)[0]
        hi = as_losses(np.array([self.nadir]), self.directions)[0]
        span = np.where(hi > lo, hi - lo, 1.0)
        return (losses - lo) / span


def hypervolume(values: np.ndarray, bounds: Bounds) -> float:
    """Hypervolume of the ``(N, M)`` points in the normalized box, reference point at the nadir.

    A fraction in ``[0, 1]``: 1 only if a single point is ideal in every objective. Points beyond
    the nadir in some objective add nothing there; NaN rows are ignored; no points give 0.
    """
    from optuna._hypervolume import compute_hypervolume

    losses = bounds.normalize(values)
    losses = np.minimum(losses[np.isfinite(losses).all(axis=1)], 1.0)
    if not len(losses):
        return 0.0
    return float(compute_hypervolume(losses, np.ones(losses.shape[1]), assume_pareto=False))


def hypervolume_history(values: np.ndarray, bounds: Bounds) -> np.ndarray:
    """``(N,)``: the hypervolume of the first ``n`` points, for every ``n`` (a search's progress).

    Keeps the running front, so each step costs one front's hypervolume, and only when the new point
    is not dominated.
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.zeros(len(values))
    front = np.empty((0, values.shape[1] if values.ndim == 2 else len(bounds.directions)))
    current = 0.0
    for i, v in enumerate(values):
        if np.isfinite(v).all():
            candidate = np.vstack([front, v[None, :]])
            mask = pareto_mask(candidate, bounds.directions)
            if mask[-1]:
                front = candidate[mask]
                current = hypervolume(front, bounds)
        out[i] = current
    return out
