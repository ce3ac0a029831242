"""Path statistics of [C22 §4] by dynamic programming over the topological order.

Path counts grow exponentially with a DAG's size, so nothing here enumerates paths: node ``t``
inherits the depth histograms of its sources (shifted by one along parameterized edges), which costs
``O(E · H)`` per architecture, batched over an :class:`~nasplug.graph.ArchBatch`.

Terms of [C22]: ``P`` = number of input→output paths (zero edges do not exist), ``d_p`` = number of
parameterized edges on path ``p``, **effective depth** ``d̄ = Σ_p d_p / P``, **effective width**
``m̄ = #{p : d_p > 0} / d̄`` (0 when ``d̄ = 0``). See docs/theory.md §2.

A ``concat`` edge (one block of a concatenating node, :mod:`nasplug.ops`) is transparent for the path
counts, like a skip: a path through any block reaches the output. This is also [C22]'s convention for
DARTS cells, whose concatenated output it treats as a parameter-free sum (docs/nasbench.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasplug.graph.batch import ArchBatch
from nasplug.ops import ROLE_CODES


@dataclass(frozen=True)
class PathStats:
    """Statistics of the input→output paths of one architecture.

    Attributes
    ----------
    num_paths
        ``P``, the number of input→output paths.
    depth_histogram
        ``depth_histogram[d]`` = number of paths with ``d`` parameterized edges.
    effective_depth
        ``d̄ = Σ_p d_p / P`` (0 without paths) [C22 §4].
    effective_width
        ``m̄ = #{p : d_p > 0} / d̄`` (0 when ``d̄ = 0``) [C22 §4].
    max_depth
        Largest ``d_p`` (−1 without paths).
    sum_depth_cubed
        ``Σ_p d_p³``, the path sum of the maximal-learning-rate rule [C24 eq. 8].
    """

    num_paths: int
    depth_histogram: tuple[int, ...]
    effective_depth: float
    effective_width: float
    max_depth: int
    sum_depth_cubed: int

    @classmethod
    def from_histogram(cls, hist: Sequence[int]) -> PathStats:
        hist = [int(h) for h in hist]
        last = max((d for d, h in enumerate(hist) if h), default=-1)
        hist = hist[: last + 1]
        num_paths = sum(hist)
        depth = sum(d * h for d, h in enumerate(hist)) / num_paths if num_paths else 0.0
        width = (num_paths - hist[0]) / depth if depth > 0 else 0.0
        cubes = sum(d**3 * h for d, h in enumerate(hist))
        return cls(num_paths, tuple(hist), depth, width, last, cubes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "num_paths": self.num_paths,
            "effective_depth": self.effective_depth,
            "effective_width": self.effective_width,
            "max_depth": self.max_depth,
            "sum_depth_cubed": self.sum_depth_cubed,
            "depth_histogram": list(self.depth_histogram),
        }


def depth_histograms(batch: ArchBatch, dtype: Any = np.float64,
                     param_weights: np.ndarray | None = None) -> np.ndarray:
    """Histograms of path depths, ``(B, n_nodes)``: entry ``[b, d]`` counts the input→output paths
    of architecture ``b`` with ``d`` parameterized edges.

    ``dtype=object`` gives exact Python-int counts; float64 is exact up to 2**53 paths and is what
    batched scorers use. ``param_weights`` (``(B, E)``, optional) multiplies what each
    parameterized edge passes on, and then each ``concat`` edge passes on its block's share ``1/k``
    (``k`` = concat in-edges of its target), so entry ``[b, d]`` becomes ``Σ_p Π_{e ∈ p} w_e`` over the
    paths of depth ``d`` (a path's share of the output variance,
    :func:`nasplug.theory.hparams.weighted_depth_histograms`).
    """
    n, size = batch.n_nodes, len(batch)
    roles = batch.roles
    skip_like = np.isin(roles, [ROLE_CODES["skip"], ROLE_CODES["pool"], ROLE_CODES["concat"]])
    param = roles == ROLE_CODES["param"]
    weight, skip_weight = param, skip_like
    if param_weights is not None:
        weight = np.where(param, param_weights, 0)
        share = 1.0 / np.maximum(concat_fan_in(batch), 1)[:, [t for _, t in batch.pairs]]
        skip_weight = np.where(roles == ROLE_CODES["concat"], share, skip_like)
    # edge-major copies: one edge's values over the cells are contiguous
    skip_weight, weight = (np.ascontiguousarray(w.T.astype(dtype)) for w in (skip_weight, weight))
    any_skip, any_param = skip_like.any(axis=0), param.any(axis=0)
    # histograms only as long as the deepest path of the batch; (node, cell, depth) layout so that a
    # node's histograms are contiguous; chunks of cells bound the working memory
    size_d = max(1, int(max_path_depth(batch).max(initial=0)) + 1)
    out = np.zeros((size, n), dtype=dtype)
    chunk = max(1, HIST_CHUNK_BYTES // (8 * n * size_d))
    for start in range(0, size, chunk):
        rows = slice(start, start + chunk)
        hist = np.zeros((n, len(range(size)[rows]), size_d), dtype=dtype)
        hist[0, :, 0] = 1
        for e, (s, t) in enumerate(batch.pairs):
            if any_skip[e]:
                hist[t] += hist[s] * skip_weight[e, rows, None]
            if any_param[e] and size_d > 1:
                hist[t, :, 1:] += hist[s, :, :-1] * weight[e, rows, None]
        out[rows, :size_d] = hist[n - 1]
    return out


#: Working-memory budget (bytes) of one chunk of :func:`depth_histograms`.
HIST_CHUNK_BYTES = 32 * 2**20


def max_path_depth(batch: ArchBatch) -> np.ndarray:
    """``(B,)`` int64: the largest number of parameterized edges on an input→output path (−1 when
    there is no path), by a longest-path pass over the topological order."""
    roles = batch.roles.T  # edge-major: one edge's roles over the cells are contiguous
    present = np.flatnonzero((roles != ROLE_CODES["zero"]).any(axis=1))
    roles = np.ascontiguousarray(roles[present])
    longest = np.full((batch.n_nodes, len(batch)), -1, dtype=np.int64)
    longest[0] = 0
    for row, e in enumerate(present):
        s, t = batch.pairs[e]
        param = (roles[row] == ROLE_CODES["param"]).astype(np.int64)
        step = np.where(roles[row] == ROLE_CODES["zero"], -1, param)
        candidate = np.where((step >= 0) & (longest[s] >= 0), longest[s] + step, -1)
        np.maximum(longest[t], candidate, out=longest[t])
    return longest[-1]


def concat_fan_in(batch: ArchBatch) -> np.ndarray:
    """``(B, n_nodes)`` int64: per node, its number ``k`` of ``concat`` in-edges (0 for nodes that do
    not concatenate). Each block is ``1/k`` of the node's channels."""
    concat = (batch.roles == ROLE_CODES["concat"]).astype(np.int64)
    out = np.zeros((len(batch), batch.n_nodes), dtype=np.int64)
    targets = np.array([t for _, t in batch.pairs], dtype=np.int64)
    np.add.at(out.T, targets, concat.T)
    return out


def live_edge_mask(batch: ArchBatch) -> np.ndarray:
    """``(B, E)`` bool: edge ``pairs[e]`` is non-zero and lies on an input→output path.

    Two sweeps over the pairs (sorted by target): forward reachability from the input, then
    backward reachability to the output; an edge is live when its source is reached from the
    input and its target reaches the output.
    """
    n, pairs = batch.n_nodes, batch.pairs
    nonzero = batch.roles != ROLE_CODES["zero"]
    forward = np.zeros((len(batch), n), dtype=bool)
    forward[:, 0] = True
    for e, (s, t) in enumerate(pairs):
        forward[:, t] |= forward[:, s] & nonzero[:, e]
    backward = np.zeros((len(batch), n), dtype=bool)
    backward[:, n - 1] = True
    for e in range(len(pairs) - 1, -1, -1):
        s, t = pairs[e]
        backward[:, s] |= backward[:, t] & nonzero[:, e]
    sources = [s for s, _ in pairs]
    targets = [t for _, t in pairs]
    return nonzero & forward[:, sources] & backward[:, targets]


def live_in_degree_matrix(batch: ArchBatch) -> np.ndarray:
    """``(B, n_nodes)`` int64: per node, the number of non-zero in-edges whose source is reachable
    from the input (pairs are ordered by target, so a source is final before its out-edges). The
    ``d_in`` of the architecture-aware init [C24 eq. 4]. The concat blocks of a node count once
    together: stacked blocks of equal variance have the variance of one block, not their sum."""
    nonzero = batch.roles != ROLE_CODES["zero"]
    concat = batch.roles == ROLE_CODES["concat"]
    reachable = np.zeros((len(batch), batch.n_nodes), dtype=bool)
    reachable[:, 0] = True
    degree = np.zeros((len(batch), batch.n_nodes), dtype=np.int64)
    stacked = np.zeros((len(batch), batch.n_nodes), dtype=bool)
    for e, (s, t) in enumerate(batch.pairs):
        live = reachable[:, s] & nonzero[:, e]
        reachable[:, t] |= live
        degree[:, t] += live & ~concat[:, e]
        stacked[:, t] |= live & concat[:, e]
    return degree + stacked


def path_stats_arrays(hist: np.ndarray) -> dict[str, np.ndarray]:
    """Vectorized :class:`PathStats` fields from a ``(B, D)`` float histogram array: ``num_paths``,
    ``effective_depth``, ``effective_width``, ``sum_depth_cubed``, each ``(B,)``."""
    depths = np.arange(hist.shape[1], dtype=np.float64)
    num_paths = hist.sum(axis=1)
    total = hist @ depths
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(num_paths > 0, total / num_paths, 0.0)
        width = np.where(depth > 0, (num_paths - hist[:, 0]) / depth, 0.0)
    return {
        "num_paths": num_paths,
        "effective_depth": depth,
        "effective_width": width,
        "sum_depth_cubed": hist @ depths**3,
    }
