"""Layer 1: architectures as DAGs — :class:`ArchGraph`, its codecs, batches and path statistics.

* :mod:`nasplug.graph.arch` — :class:`ArchGraph` (immutable DAG, canonical form and key);
* :mod:`nasplug.graph.canonical` — the canonical expression, its length and key, by one polynomial fold;
* :mod:`nasplug.graph.codecs` — NB201 strings, [C22] DAG codes, NASLib tuples;
* :mod:`nasplug.graph.nb101` — NAS-Bench-101 cells (ModelSpec, pruning, NASLib tuple, batched layout);
* :mod:`nasplug.graph.darts` — DARTS / NAS-Bench-301 genotypes (text forms, pair and cell DAGs, batched);
* :mod:`nasplug.graph.batch` — :class:`ArchBatch`, many cells as arrays for vectorized scoring;
* :mod:`nasplug.graph.paths` — :class:`PathStats` and the batched path dynamic programmes.
"""

from nasplug.graph.arch import ArchGraph, as_batch, batch_of_encodings
from nasplug.graph.batch import ArchBatch, all_pairs
from nasplug.graph.codecs import NASLIB_EDGES
from nasplug.graph.paths import (
    PathStats,
    depth_histograms,
    live_edge_mask,
    live_in_degree_matrix,
    path_stats_arrays,
)

__all__ = [
    "ArchGraph",
    "ArchBatch",
    "PathStats",
    "NASLIB_EDGES",
    "all_pairs",
    "as_batch",
    "batch_of_encodings",
    "depth_histograms",
    "live_edge_mask",
    "live_in_degree_matrix",
    "path_stats_arrays",
]
