"""Topology scorers and the [C22] filter box: path statistics of the cell, no weights, no data.

[C22 §5.3] observes that well-trainable cells have a *moderate* effective depth d̄ and effective
width m̄, and prunes a search space to a box around the centre of the (d̄, m̄) range before any
training. All statistics come from one dynamic programme over the whole batch
(:func:`nasplug.graph.depth_histograms`).
"""

from __future__ import annotations

import numpy as np

from nasplug.errors import NasplugError
from nasplug.graph import ArchBatch, depth_histograms, live_edge_mask, path_stats_arrays
from nasplug.ops import ROLE_CODES
from nasplug.scorers.base import Archs, BatchFilter, BatchScorer, fit_cells, map_batches
from nasplug.scorers.registry import register
from nasplug.search_spaces import DigitSpace


def topology_arrays(batch: ArchBatch) -> dict[str, np.ndarray]:
    """P, d̄, m̄ and Σd³ of every architecture in the batch (:func:`~nasplug.graph.path_stats_arrays`)."""
    return path_stats_arrays(depth_histograms(batch))


class TopologyStat(BatchScorer):
    """One field of :func:`topology_arrays` as a scorer."""

    def __init__(self, name: str, field: str, description: str):
        self.name, self.field, self.description = name, field, description

    def score_batch(self, batch: ArchBatch) -> np.ndarray:
        return topology_arrays(batch)[self.field]


@register("effective_depth", "scorer", "d̄ = mean number of parameterized edges per path [C22]")
def effective_depth() -> TopologyStat:
    return TopologyStat("effective_depth", "effective_depth", "effective depth d̄")


@register("effective_width", "scorer", "m̄ = #paths with d_p > 0 / d̄ [C22]")
def effective_width() -> TopologyStat:
    return TopologyStat("effective_width", "effective_width", "effective width m̄")


@register("num_paths", "scorer", "P = number of input→output paths")
def num_paths() -> TopologyStat:
    return TopologyStat("num_paths", "num_paths", "number of paths P")


@register("sum_depth_cubed", "scorer", "Σ_p d_p³, the path sum of the max-LR rule [C24]")
def sum_depth_cubed() -> TopologyStat:
    return TopologyStat("sum_depth_cubed", "sum_depth_cubed", "Σ d_p³")


class LiveParamCost(BatchScorer):
    """``Σ k²`` over the parameterized edges on an input→output path (``k`` = kernel size, 1 for
    linear layers).

    Why: it is the cell's live multiply-add count up to a constant. In the NAS-Bench-201 macro
    network every stage has the same ``C²·H·W`` (channels double while the resolution halves), so
    the whole network's FLOPs are an increasing affine function of this sum — the FLOPs proxy of
    the zero-cost literature, computed without building a network, and without the dead convs
    that NB201 instantiates but never runs.
    """

    name = "live_param_cost"
    description = "Σ k² over parameterized edges on an input→output path (live FLOPs up to a constant)"

    def score_batch(self, batch: ArchBatch) -> np.ndarray:
        live_param = live_edge_mask(batch) & (batch.roles == ROLE_CODES["param"])
        return (live_param * batch.kernel_sizes.astype(np.float64) ** 2).sum(axis=1)


@register("live_param_cost", "scorer", LiveParamCost.description)
def live_param_cost() -> LiveParamCost:
    return LiveParamCost()


class BoxFilter(BatchFilter):
    """Keep cells with a path whose (d̄, m̄) lies in a box (bounds inclusive).

    Parameters
    ----------
    depth_range, width_range
        ``(low, high)`` bounds on d̄ and m̄.
    """

    def __init__(self, depth_range: tuple[float, float], width_range: tuple[float, float],
                 name: str = "dag_box"):
        self.depth_range = tuple(map(float, depth_range))
        self.width_range = tuple(map(float, width_range))
        self.name = name
        self.description = (
            f"{depth_range[0]:.4g} <= d̄ <= {depth_range[1]:.4g}, "
            f"{width_range[0]:.4g} <= m̄ <= {width_range[1]:.4g}"
        )

    @classmethod
    def fit(cls, space: DigitSpace | str | Archs, fraction: float = 0.5, rng: int = 0) -> BoxFilter:
        """[C22 §5.3]'s box for a space or a list of cells: over cells with d̄ > 0, centre
        ``c = (max+min)/2`` and radius ``r = (max−min)/2`` of d̄ and of m̄; keep ``|x − c| <= fraction · r``.

        Spaces too large to enumerate are fitted on a seeded uniform sample
        (:meth:`~nasplug.search_spaces.DigitSpace.fit_batch`), which can only shrink the range; a list
        of cells (or an :class:`~nasplug.graph.ArchBatch`) is fitted on exactly those cells.
        """
        if not 0 < fraction <= 1:
            raise NasplugError(f"the box fraction must be in (0, 1], got {fraction}")
        cells = fit_cells(space, rng)
        if isinstance(cells, ArchBatch):
            stats = topology_arrays(cells)
        else:  # cells of several sizes: one batch per size
            stats = {key: map_batches(cells, lambda b, key=key: topology_arrays(b)[key], np.float64)
                     for key in ("effective_depth", "effective_width")}
        ok = stats["effective_depth"] > 0
        if not ok.any():
            raise NasplugError("no cell has a parameterized path to fit a box on")

        def bounds(values):
            lo, hi = values[ok].min(), values[ok].max()
            centre, radius = (hi + lo) / 2, (hi - lo) / 2
            return centre - fraction * radius, centre + fraction * radius

        return cls(bounds(stats["effective_depth"]), bounds(stats["effective_width"]))

    def keep_batch(self, batch: ArchBatch) -> np.ndarray:
        stats = topology_arrays(batch)
        d, m, eps = stats["effective_depth"], stats["effective_width"], 1e-9
        return (
            (stats["num_paths"] > 0)
            & (d >= self.depth_range[0] - eps) & (d <= self.depth_range[1] + eps)
            & (m >= self.width_range[0] - eps) & (m <= self.width_range[1] + eps)
        )


@register("dag_box", "filter",
          "[C22 §5.3] box around the centre of the space's (d̄, m̄) range (fraction ½)")
def dag_box(space: DigitSpace | str | Archs = "nb201", fraction: float = 0.5) -> BoxFilter:
    box = BoxFilter.fit(space, fraction)
    box.name = "dag_box"
    return box


@register("dag_box_authors", "filter",
          "the authors' released fixed box: 0.99 <= d̄ <= 2.51, 0.99 <= m̄ <= 3.01")
def dag_box_authors() -> BoxFilter:
    return BoxFilter((0.99, 2.51), (0.99, 3.01), name="dag_box_authors")
