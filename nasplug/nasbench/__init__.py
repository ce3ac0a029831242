"""NAS-Bench-201 ground truth and rank-quality metrics.

``load_benchmark(path)`` reads the official file, a compact table or the CSV export into one
:class:`BenchmarkTable`; :mod:`nasplug.nasbench.metrics` compares scores with it (Kendall τ,
Spearman ρ, top-k precision, pre-filter curves). Heavy imports (torch, nas_201_api, matplotlib)
happen only inside the functions that need them.
"""

from nasplug.nasbench.loaders import NB201_SIZE, load_benchmark, load_nb201_csv, load_official
from nasplug.nasbench.table import DATASETS, SHORT_NAMES, BenchmarkTable, canonical_dataset

__all__ = [
    "BenchmarkTable",
    "DATASETS",
    "NB201_SIZE",
    "SHORT_NAMES",
    "canonical_dataset",
    "load_benchmark",
    "load_nb201_csv",
    "load_official",
]
