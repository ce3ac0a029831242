"""The compact benchmark table every NAS-Bench-201 source is loaded into.

The official NAS-Bench-201 file is a multi-gigabyte pickle of per-seed training curves and
weights; ranking needs one number per cell and dataset. :class:`BenchmarkTable` holds exactly
that — benchmark arch index, NB201 string, and per-(dataset, metric) value arrays — and writes
itself in a *long* layout (one row per cell and dataset) to CSV or Parquet, so converting the
official file once makes every later load take a fraction of a second.

Rows keep the benchmark's own arch index; our search space enumerates cells in a different
(lexicographic) order, so :meth:`BenchmarkTable.space_indices` maps rows by NB201 string.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasplug.checks import writable_file
from nasplug.errors import ArchError, DataError, require
from nasplug.graph import as_batch

#: The benchmark's dataset names (as the NAS-Bench-201 API spells them).
DATASETS = ("cifar10", "cifar10-valid", "cifar100", "ImageNet16-120")
#: Metric columns the loaders fill (accuracy in %, averaged over the benchmark's seeds).
METRICS = ("test_accuracy", "valid_accuracy")
#: Leading columns of the compact long layout; metric columns follow.
KEY_COLUMNS = ("index", "arch", "dataset")

_ALIASES = {
    "c10": "cifar10", "cifar-10": "cifar10", "cifar10": "cifar10",
    "c10-valid": "cifar10-valid", "cifar10-valid": "cifar10-valid", "cifar-10-valid": "cifar10-valid",
    "c100": "cifar100", "cifar-100": "cifar100", "cifar100": "cifar100",
    "in16": "ImageNet16-120", "imagenet16-120": "ImageNet16-120", "imagenet16": "ImageNet16-120",
    "imagenet": "ImageNet16-120", "in16-120": "ImageNet16-120",
}

#: Short labels for reports and plots.
SHORT_NAMES = {"cifar10": "C10", "cifar10-valid": "C10-valid", "cifar100": "C100", "ImageNet16-120": "IN16"}


def canonical_dataset(name: str) -> str:
    """The benchmark's spelling of a dataset name (accepts ``c10``, ``cifar-100``, ``in16``, ...)."""
    try:
        return _ALIASES[name.strip().lower()]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)} "
                        f"(or c10, c10-valid, c100, in16)") from None


@dataclass(eq=False)
class BenchmarkTable:
    """Per-cell benchmark results: ``values[(dataset, metric)][i]`` belongs to row ``i``.

    Attributes
    ----------
    indices
        ``(n,)`` int64 benchmark arch indices (unique).
    archs
        ``n`` NB201 cell strings, row-aligned with ``indices``.
    values
        ``(dataset, metric) -> (n,)`` float64 arrays; NaN where the benchmark has no value.
    source
        Where the table came from (for error messages and reports).
    benchmark
        ``"nb201"`` (rows are the benchmark's arch indices, ``archs`` NB201 strings), ``"nb101"``,
        ``"nb301"`` or ``"cells"`` (rows numbered 0..n−1, ``archs`` any text form of a cell:
        :mod:`nasplug.nasbench.cells`).
    """

    indices: np.ndarray
    archs: list[str]
    values: dict[tuple[str, str], np.ndarray]
    source: str = ""
    benchmark: str = "nb201"
    _space_cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.indices = np.asarray(self.indices, dtype=np.int64)
        n = len(self.indices)
        if len(self.archs) != n or any(len(v) != n for v in self.values.values()):
            raise DataError(f"{self.source or 'table'}: columns have different lengths")
        if len(np.unique(self.indices)) != n:
            raise DataError(f"{self.source or 'table'}: duplicate arch indices")

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        return f"BenchmarkTable({len(self)} cells, datasets={self.datasets}, source={self.source!r})"

    @property
    def datasets(self) -> list[str]:
        """Datasets with at least one value, in :data:`DATASETS` order."""
        present = {d for (d, _), v in self.values.items() if np.isfinite(v).any()}
        return [d for d in DATASETS if d in present] + sorted(present - set(DATASETS))

    @property
    def metrics(self) -> list[str]:
        names = {m for _, m in self.values}
        return [m for m in METRICS if m in names] + sorted(names - set(METRICS))

    @property
    def default_metric(self) -> str:
        """What rankings are measured against: ``test_accuracy`` when the table has it, else
        ``valid_accuracy``, else its first metric."""
        metrics = self.metrics
        for name in METRICS:
            if name in metrics:
                return name
        return metrics[0]

    def labelled(self, datasets: list[str]) -> BenchmarkTable:
        """This table, or — when it names no dataset (a table of cells without a ``dataset`` column)
        and one dataset is given — the same values labelled with that dataset."""
        names = {d for d, _ in self.values}
        if names != {"unspecified"} or len(datasets) != 1:
            return self
        values = {(datasets[0], m): v for (_, m), v in self.values.items()}
        return BenchmarkTable(self.indices, self.archs, values, self.source, self.benchmark)

    def batch(self):
        """The :class:`~nasplug.graph.ArchBatch` of the rows' cells, read from their text without a
        cell object per row where they share a benchmark's form (:func:`nasplug.graph.as_batch`)."""
        return as_batch(self.archs)

    def column(self, dataset: str, metric: str = "test_accuracy") -> np.ndarray:
        """The ``(n,)`` values of one dataset and metric (row order of the table)."""
        if dataset not in {d for d, _ in self.values}:
            dataset = canonical_dataset(dataset)  # an alias, or an unknown name (a clear error)
        values = self.values.get((dataset, metric))
        if values is None or not np.isfinite(values).any():
            have = ", ".join(f"{d}/{m}" for (d, m), v in self.values.items() if np.isfinite(v).any())
            raise DataError(f"{self.source or 'benchmark'} has no {metric} for {dataset} (it has: {have})")
        return values

    # ------------------------------------------------------------------ mapping to a space
    def space_indices(self, space) -> np.ndarray:
        """Index in ``space`` of every row, matched by NB201 string (cached per space).

        Raises :class:`DataError` naming the first string that is not a cell of the space.
        """
        key = repr(space)
        if key not in self._space_cache:
            self._space_cache[key] = _encode_all(space, self.archs, self.source,
                                                 unique=self.benchmark == "nb201")
        return self._space_cache[key]

    def aligned(self, space, space_indices: np.ndarray, dataset: str,
                metric: str = "test_accuracy") -> np.ndarray:
        """Values for the given cells of ``space`` (NaN for cells the benchmark lacks)."""
        column = self.column(dataset, metric)
        rows = self.space_indices(space)
        lookup = np.full(int(space.size), np.nan)
        lookup[rows] = column
        return lookup[np.asarray(space_indices, dtype=np.int64)]

    # ------------------------------------------------------------------ writing
    def to_columns(self) -> dict[str, list]:
        """The long layout: one row per (cell, dataset) with every metric as a column."""
        datasets, metrics = self.datasets, self.metrics
        cols: dict[str, list] = {c: [] for c in (*KEY_COLUMNS, *metrics)}
        for d in datasets:
            cols["index"].extend(self.indices.tolist())
            cols["arch"].extend(self.archs)
            cols["dataset"].extend([d] * len(self))
            for m in metrics:
                v = self.values.get((d, m), np.full(len(self), np.nan))
                cols[m].extend(v.tolist())
        return cols

    def write(self, path: str | Path) -> Path:
        """Write the compact table as ``.csv`` or ``.parquet`` (Parquet needs pandas + pyarrow)."""
        path = table_output(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        cols = self.to_columns()
        if path.suffix == ".parquet":
            import pandas as pd

            pd.DataFrame(cols).to_parquet(path, index=False)
            return path
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(cols)
            for row in zip(*cols.values()):
                head, vals = row[:3], row[3:]
                writer.writerow([*head, *("" if np.isnan(v) else repr(float(v)) for v in vals)])
        return path


def table_output(path: str | Path) -> Path:
    """Check an output path for a compact table before any work: a ``.csv`` or ``.parquet`` file
    (Parquet needs its extra) that can be written. Raises a one-line
    :class:`~nasplug.errors.NasplugError` otherwise."""
    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise DataError(f"{path}: write the compact table as .csv or .parquet")
    if path.suffix == ".parquet":
        _parquet_engine(path)
    return writable_file(path, "table file")


def _parquet_engine(path: Path) -> None:
    for module in ("pandas", "pyarrow"):
        require(module, "parquet", f"{path}: a Parquet table (or use a .csv table)")


# ---------------------------------------------------------------------- NB201 string → index
def _encode_all(space, archs: list[str], source: str, unique: bool = True) -> np.ndarray:
    """Space indices of the rows' arch strings (:meth:`DigitSpace.encode_many`), as a
    :class:`DataError` naming the row when one is not a cell of the space or (``unique``: NAS-Bench-201
    lists every cell once) repeats another. Other tables may measure one cell more than once (NB101
    isomorphs, repeated runs)."""
    try:
        out = space.encode_many(archs)
    except ArchError:
        for i, arch in enumerate(archs):  # rare: find the row again, for the message
            try:
                space.encode(arch)
            except ArchError as err:
                raise DataError(f"{source or 'benchmark'}: row {i} has an arch string that is not a "
                                f"{getattr(space, 'name', 'space')} cell: {err}") from None
        raise
    if unique and len(np.unique(out)) != len(out):
        _, first = np.unique(out, return_index=True)
        dup = sorted(set(range(len(out))) - set(first.tolist()))[0]
        raise DataError(f"{source or 'benchmark'}: row {dup} repeats cell {archs[dup]}")
    return out
