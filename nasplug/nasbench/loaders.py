"""Load benchmark ground truth with one call: NAS-Bench-201 in any of its three forms, and (through
:mod:`nasplug.nasbench.cells` and :mod:`nasplug.nasbench.nb101_records`) NAS-Bench-101, DARTS /
NAS-Bench-301 and generic tables of cells. NAS-Bench-201's forms:

* the **official file** (``NAS-Bench-201-v1_*.pth``, or the dict it unpickles to), read through
  the ``nas_201_api`` package. Its API defaults to the *12-epoch* results of *one random seed*
  (``get_more_info(..., hp='12', is_random=True)``); rankings in the literature use the 200-epoch
  schedule averaged over seeds, so this loader always asks for ``hp='200', is_random=False``;
* the **compact table** written by :meth:`BenchmarkTable.write` / ``nasplug bench convert``
  (long layout ``index, arch, dataset, test_accuracy, valid_accuracy``; CSV or Parquet);
* the **CSV export** in ``../shared/data/nb201`` (one row per arch index with the columns
  ``CIFAR10TestAccuracy200Epochs, CIFAR100TestAccuracy200Epochs, ImageNetTestAccuracy200Epochs,
  ArchitectureString, UniqueString``).

Every problem with a file — missing, empty, truncated, wrong columns or row count, a value that is
not a number, an arch string that is not an NB201 cell — raises :class:`~nasplug.DataError` naming
the file and the problem, which the CLI prints as one line.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nasplug.errors import DataError, require
from nasplug.nasbench import cells, nb101_records
from nasplug.nasbench.table import DATASETS, KEY_COLUMNS, BenchmarkTable, _parquet_engine, canonical_dataset
from nasplug.search_spaces import NB201Space

#: Number of cells of NAS-Bench-201 (5 ops on 6 edges).
NB201_SIZE = 15_625
#: Columns of the CSV export and the dataset each accuracy column belongs to.
CSV_ACCURACY_COLUMNS = {
    "CIFAR10TestAccuracy200Epochs": "cifar10",
    "CIFAR100TestAccuracy200Epochs": "cifar100",
    "ImageNetTestAccuracy200Epochs": "ImageNet16-120",
}
CSV_COLUMNS = (*CSV_ACCURACY_COLUMNS, "ArchitectureString", "UniqueString")
OFFICIAL_SUFFIXES = (".pth", ".pt")
PICKLE_SUFFIXES = (".pkl", ".pickle")
#: Columns that mark a generic table of cells (:mod:`nasplug.nasbench.cells`).
CELL_COLUMNS = ("arch", "matrix", "normal")


def load_benchmark(source: str | Path | Mapping[str, Any], *, datasets: Iterable[str] | None = None,
                   progress: bool = False) -> BenchmarkTable:
    """Load a benchmark file of any supported form into a :class:`BenchmarkTable`.

    Parameters
    ----------
    source
        NAS-Bench-201: the official ``.pth`` file (or its dict), a compact ``.csv``/``.parquet``
        table, or the CSV export. NAS-Bench-101: the official ``.tfrecord`` file or NASLib's
        ``nasbench_only108.pkl``. NAS-Bench-301: NASLib's ``nb301_full_training.pickle``. NASLib's
        zero-cost ``.json`` files. Any generic table of cells (``.csv``, ``.json``, ``.parquet``:
        :mod:`nasplug.nasbench.cells`).
    datasets
        Official file only: which datasets to extract (default all four). The other forms are small
        enough to read whole.
    progress
        Show a progress bar on stderr while reading the official file (minutes for the real one).
    """
    if isinstance(source, Mapping):
        return load_official(source, datasets=datasets, progress=progress)
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    if suffix in OFFICIAL_SUFFIXES:
        return load_official(path, datasets=datasets, progress=progress)
    if suffix in nb101_records.SUFFIXES:
        return nb101_records.read_nb101_records(path, progress=progress)
    if suffix in PICKLE_SUFFIXES:
        data = cells.read_pickle(path)
        if isinstance(data, Mapping) and "meta_archs" in data:
            return load_official(data, datasets=datasets, progress=progress)
        return cells.read_naslib_pickle(data, str(path))
    if suffix == ".json":
        return cells.read_table_file(path)
    if suffix == ".parquet":
        _parquet_engine(path)
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except Exception as err:  # pyarrow raises many types for corrupt files
            raise DataError(f"{path}: cannot read Parquet ({type(err).__name__}: {err})") from None
        if tuple(names[:3]) == KEY_COLUMNS:
            return _read_compact_parquet(path)
        return cells.read_table_file(path)
    with path.open(newline="") as fh:
        try:
            header = next(csv.reader(fh))
        except (StopIteration, csv.Error, UnicodeDecodeError) as err:
            raise DataError(f"{path}: cannot read a CSV header ({err})") from None
    header = [h.strip() for h in header]
    if "ArchitectureString" in header or any(c in header for c in CSV_ACCURACY_COLUMNS):
        return load_nb201_csv(path)
    if tuple(header[:3]) == KEY_COLUMNS:
        return _read_compact_csv(path)
    if any(c in header for c in CELL_COLUMNS):
        return cells.read_table_file(path)
    raise DataError(f"{path}: unrecognised columns {header[:6]}; expected the compact table "
                    f"({', '.join(KEY_COLUMNS)}, metrics...), the NAS-Bench-201 CSV export "
                    f"({', '.join(CSV_COLUMNS)}) or a table of cells (an 'arch', 'matrix' + 'ops' or "
                    "'normal' + 'reduce' column, then metric columns)")


# ---------------------------------------------------------------------- helpers
def _float(text: str, where: str) -> float:
    text = text.strip()
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{where}: {text!r} is not a number") from None


def _check_archs(table: BenchmarkTable) -> BenchmarkTable:
    """Map every arch string to the NB201 space now, so bad strings fail at load time; a table of
    other cells (e.g. a compact table converted from NB101) is checked and labelled by its cells."""
    if table.archs and not table.archs[0].startswith("|"):
        return cells._table(table.archs, table.values, table.source)
    table.space_indices(NB201Space())
    return table


# ---------------------------------------------------------------------- the CSV export
def load_nb201_csv(path: str | Path) -> BenchmarkTable:
    """The CSV export (row ``i`` = benchmark arch index ``i``; test accuracy after 200 epochs).

    Exactly :data:`NB201_SIZE` rows are required: the export is documented to hold every cell in
    index order, so a different count means a truncated or foreign file, and row positions would
    no longer be arch indices.
    """
    path = Path(path)
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(f"{path}: the file is empty") from None
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(header)})")
        rows = list(reader)
    col = {name: header.index(name) for name in CSV_COLUMNS}
    rows = [r for r in rows if r]  # a trailing blank line is harmless
    if len(rows) != NB201_SIZE:
        raise DataError(f"{path}: {len(rows):,} data rows, expected {NB201_SIZE:,} "
                        f"(one per NAS-Bench-201 cell, in index order)")
    values = {}
    for name, dataset in CSV_ACCURACY_COLUMNS.items():
        c = col[name]
        out = np.empty(len(rows))
        for i, row in enumerate(rows):
            if len(row) != len(header):
                raise DataError(f"{path}: line {i + 2} has {len(row)} fields, expected {len(header)}")
            out[i] = _float(row[c], f"{path}: line {i + 2}, column {name}")
        bad = ~np.isfinite(out) | (out < 0) | (out > 100)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}: line {i + 2}, column {name}: {rows[i][c]!r} is not an "
                            f"accuracy in [0, 100] %")
        values[(dataset, "test_accuracy")] = out
    archs = [row[col["ArchitectureString"]].strip() for row in rows]
    table = BenchmarkTable(np.arange(len(rows)), archs, values, source=str(path))
    return _check_archs(table)


# ---------------------------------------------------------------------- the compact table
def _from_long(path: Path, index: list[int], arch: list[str], dataset: list[str],
               metrics: dict[str, np.ndarray]) -> BenchmarkTable:
    """Rebuild the wide table from long rows, checking every (cell, dataset) pair appears once."""
    if not index:
        raise DataError(f"{path}: the table has no rows")
    idx = np.asarray(index, dtype=np.int64)
    if (idx < 0).any():
        raise DataError(f"{path}: negative arch index {int(idx[idx < 0][0])}")
    cells, first, inverse = np.unique(idx, return_index=True, return_inverse=True)
    names = sorted(set(dataset), key=lambda d: (DATASETS.index(d) if d in DATASETS else 99, d))
    ds_pos = {d: i for i, d in enumerate(names)}
    ds_idx = np.fromiter((ds_pos[d] for d in dataset), dtype=np.int64, count=len(dataset))
    slot = inverse * len(names) + ds_idx
    counts = np.bincount(slot, minlength=len(cells) * len(names))
    if (counts > 1).any():
        s = int(np.flatnonzero(counts > 1)[0])
        raise DataError(f"{path}: cell {int(cells[s // len(names)])} appears twice for dataset "
                        f"{names[s % len(names)]}")
    if (counts == 0).any():
        s = int(np.flatnonzero(counts == 0)[0])
        raise DataError(f"{path}: {len(index):,} rows, expected {len(cells) * len(names):,} "
                        f"({len(cells):,} cells x {len(names)} datasets); cell "
                        f"{int(cells[s // len(names)])} has no row for {names[s % len(names)]}")
    archs_by_cell = [arch[i] for i in first]
    for i, a in enumerate(arch):
        if a != archs_by_cell[inverse[i]]:
            raise DataError(f"{path}: cell {index[i]} has two arch strings ({archs_by_cell[inverse[i]]} "
                            f"and {a})")
    values = {}
    for m, column in metrics.items():
        for d, j in ds_pos.items():
            out = np.full(len(cells), np.nan)
            rows = ds_idx == j
            out[inverse[rows]] = column[rows]
            if np.isfinite(out).any():  # the long layout pads absent (dataset, metric) pairs
                values[(d, m)] = out
    if not values:
        raise DataError(f"{path}: no numeric values in the metric columns")
    return _check_archs(BenchmarkTable(cells, archs_by_cell, values, source=str(path)))


def _read_compact_csv(path: Path) -> BenchmarkTable:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        metric_names = header[3:]
        if not metric_names:
            raise DataError(f"{path}: the compact table has no metric columns after {', '.join(KEY_COLUMNS)}")
        index: list[int] = []
        arch: list[str] = []
        dataset: list[str] = []
        metric_cols: list[list[float]] = [[] for _ in metric_names]
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(f"{path}: line {line} has {len(row)} fields, expected {len(header)} "
                                f"(truncated or malformed file?)")
            try:
                index.append(int(row[0]))
            except ValueError:
                raise DataError(f"{path}: line {line}: arch index {row[0]!r} is not an integer") from None
            arch.append(row[1].strip())
            dataset.append(row[2].strip())
            for j, name in enumerate(metric_names):
                metric_cols[j].append(_float(row[3 + j], f"{path}: line {line}, column {name}"))
    metrics = {m: np.asarray(v, dtype=np.float64) for m, v in zip(metric_names, metric_cols)}
    return _from_long(path, index, arch, dataset, metrics)


def _read_compact_parquet(path: Path) -> BenchmarkTable:
    _parquet_engine(path)
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises many types for corrupt files
        raise DataError(f"{path}: cannot read Parquet ({type(err).__name__}: {err})") from None
    header = list(frame.columns)
    if tuple(header[:3]) != KEY_COLUMNS or len(header) < 4:
        raise DataError(f"{path}: columns {header[:6]}, expected {', '.join(KEY_COLUMNS)}, metrics...")
    metrics = {}
    for name in header[3:]:
        col = pd.to_numeric(frame[name], errors="coerce")
        bad = col.isna() & frame[name].notna()
        if bad.any():
            raise DataError(f"{path}: column {name}: {frame[name][bad].iloc[0]!r} is not a number")
        metrics[name] = col.to_numpy(dtype=np.float64)
    try:
        index = [int(i) for i in frame["index"]]
    except (TypeError, ValueError):
        raise DataError(f"{path}: column index holds non-integer arch indices") from None
    return _from_long(path, index, [str(a) for a in frame["arch"]], [str(d) for d in frame["dataset"]],
                      metrics)


# ---------------------------------------------------------------------- the official file
def load_official(source: str | Path | Mapping[str, Any], *, datasets: Iterable[str] | None = None,
                  progress: bool = False) -> BenchmarkTable:
    """Read the official NAS-Bench-201 file (or its dict) through ``nas_201_api``.

    For every evaluated arch and dataset this calls
    ``api.get_more_info(index, dataset, iepoch=None, hp='200', is_random=False)``: the metrics
    after the last of 200 epochs, averaged over all seeds the benchmark trained. ``test_accuracy``
    is the API's ``test-accuracy`` (CIFAR-10: the original test set; CIFAR-100/ImageNet16-120: the
    benchmark's x-test split), ``valid_accuracy`` its ``valid-accuracy`` where one exists.

    The stored network weights are dropped before the API copies the dict (only metrics are
    needed, and the weights are most of the file's memory). Loading a ``.pth`` file unpickles it:
    only load files you trust.
    """
    api_module = require("nas_201_api", "nb201", "reading the official NAS-Bench-201 file")
    name = "NAS-Bench-201 dict"
    if isinstance(source, Mapping):
        data: Any = source
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        import torch

        try:
            data = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # truncated zip, bad pickle, ...: all mean "not a readable file"
            raise DataError(f"{path}: cannot read as a NAS-Bench-201 .pth file "
                            f"({type(err).__name__}: {err})") from None
    if not isinstance(data, Mapping):
        raise DataError(f"{name}: expected a dict, found {type(data).__name__}")
    missing = [k for k in ("meta_archs", "arch2infos", "evaluated_indexes") if k not in data]
    if missing:
        raise DataError(f"{name}: not a NAS-Bench-201 file (missing key(s) {', '.join(missing)})")
    data = {**data, "arch2infos": {k: _without_weights(v) for k, v in data["arch2infos"].items()}}
    try:
        api = api_module.NASBench201API(data, verbose=False)
    except Exception as err:
        raise DataError(f"{name}: not in the NAS-Bench-201 format ({type(err).__name__}: {err})") from None
    wanted = list(DATASETS) if datasets is None else [_dataset_name(d) for d in datasets]
    indexes = list(api.evaluated_indexes)
    if not indexes:
        raise DataError(f"{name}: no evaluated architectures")
    values = {(d, m): np.full(len(indexes), np.nan) for d in wanted for m in ("test_accuracy",
                                                                            "valid_accuracy")}
    iterator: Iterable[tuple[int, int]] = enumerate(indexes)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(indexes), desc="reading NAS-Bench-201", unit="arch")
    for row, index in iterator:
        try:
            have = set(api.arch2infos_dict[index]["200"].get_dataset_names())
        except KeyError:
            raise DataError(f"{name}: arch {index} has no 200-epoch results") from None
        for d in wanted:
            if d not in have:
                continue
            try:
                info = api.get_more_info(index, d, iepoch=None, hp="200", is_random=False)
            except Exception as err:
                raise DataError(f"{name}: arch {index}, {d}: unreadable results "
                                f"({type(err).__name__}: {err})") from None
            for key, metric in (("test-accuracy", "test_accuracy"), ("valid-accuracy", "valid_accuracy")):
                if info.get(key) is not None:
                    values[(d, metric)][row] = float(info[key])
    values = {k: v for k, v in values.items() if np.isfinite(v).any()}
    if not values:
        raise DataError(f"{name}: no 200-epoch results for {', '.join(wanted)}")
    try:
        archs = [str(api.meta_archs[i]) for i in indexes]
    except IndexError:
        raise DataError(f"{name}: evaluated index outside meta_archs") from None
    return _check_archs(BenchmarkTable(np.asarray(indexes), archs, values, source=name))


def _dataset_name(name: str) -> str:
    return canonical_dataset(name)


def _without_weights(info: Any) -> Any:
    """A shallow copy of one arch's ``{'less': ..., 'full': ...}`` entry with weights set to None."""
    if not isinstance(info, Mapping):
        return info
    out = {}
    for hp, state in info.items():
        if isinstance(state, Mapping) and isinstance(state.get("all_results"), Mapping):
            results = {
                key: ({**r, "net_state_dict": None} if isinstance(r, Mapping) else r)
                for key, r in state["all_results"].items()
            }
            state = {**state, "all_results": results}
        out[hp] = state
    return out
