"""Ground truth for cells of any benchmark: NAS-Bench-101 and DARTS / NAS-Bench-301 files, and generic
tables of an encoding column plus metric columns.

Every reader returns a :class:`~nasplug.nasbench.table.BenchmarkTable` whose ``archs`` are the cells'
text forms (an NB201 string, an NB101 spec as JSON — pruned —, a DARTS ``Genotype(...)``) and whose
``benchmark`` says which (``"nb101"``, ``"nb301"``, ``"cells"`` for a mixture); rows are numbered
0..n−1. Forms read here (docs/nasbench.md):

* **generic tables** — CSV, JSON (a list of records) or Parquet with either an ``arch`` column (any
  encoding :meth:`nasplug.ArchGraph.parse` reads), ``matrix`` + ``ops`` (NB101, JSON lists, raw or
  pruned) or ``normal`` + ``reduce`` (DARTS pairs, JSON lists), an optional ``dataset`` column, and
  numeric metric columns; ``val_accuracy`` is read as ``valid_accuracy``. The shared NB101/NB301
  samples are such tables;
* **NASLib's zero-cost files** (``zc_nasbench101.json``, ``zc_nasbench301.json``): ``{space: {dataset:
  {key: {metric: value}}}}`` (May 2022) or ``{dataset: {key: {...}}}`` with ``{"score", "time"}``
  proxy values (later versions); keys are NASLib's NB101 56-integer tuples or NB301 compact pairs;
* **NASLib's pickles**: ``nasbench_only108.pkl`` (NB101, ``hash → (fixed, computed)``; the mean over
  the 3 repeats at 108 epochs) and ``nb301_full_training.pickle`` (compact key → per-epoch
  ``val_accuracies``; the last epoch).

The official NAS-Bench-101 record file is :mod:`nasplug.nasbench.nb101_records`. Unpickling runs
code from the file: only load files you trust. Every problem is a one-line
:class:`~nasplug.errors.DataError` naming the file and the row.
"""

from __future__ import annotations

import ast
import json
import math
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasplug.errors import ArchError, DataError
from nasplug.graph import ArchGraph, batch_of_encodings, darts, nb101
from nasplug.nasbench.table import BenchmarkTable, _parquet_engine

#: Metric columns renamed on reading (NASLib spells validation accuracy ``val_accuracy``).
METRIC_ALIASES = {"val_accuracy": "valid_accuracy", "validation_accuracy": "valid_accuracy"}
#: Dataset label of a table that does not name one.
UNSPECIFIED = "unspecified"


# ---------------------------------------------------------------------- cells as text
def nb101_text(matrix: Any, ops: Sequence[str]) -> str:
    """The pruned spec of an NB101 cell as one line of JSON (an :class:`ArchError` if invalid)."""
    m, o = nb101.prune(matrix, ops)
    return nb101.format_spec_json(m.tolist(), o)


def darts_text(value: Any) -> str:
    """A DARTS genotype as DARTS prints it (any form :func:`nasplug.graph.darts.parse_genotype` reads)."""
    return str(darts.parse_genotype(value))


def _json_cell(text: Any, where: str) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise DataError(f"{where}: {text[:60]!r} is not a JSON list") from None


def _kind(archs: Sequence[str]) -> str:
    kinds = {"nb101" if a.startswith("{") else "nb301" if a.startswith("Genotype(") else
             "nb201" if a.startswith("|") else "cells" for a in archs}
    return kinds.pop() if len(kinds) == 1 else "cells"


# ---------------------------------------------------------------------- generic tables
def table_from_records(records: Sequence[Mapping[str, Any]], source: str, dataset: str | None = None
                       ) -> BenchmarkTable:
    """A table from records (dicts): the encoding column(s), an optional ``dataset`` column and numeric
    metric columns (module docstring). ``dataset`` labels a table without a dataset column."""
    if not records:
        raise DataError(f"{source}: the table has no rows")
    columns = list(records[0])
    if "matrix" in columns and "ops" in columns:
        encoding = ("matrix", "ops")
    elif "normal" in columns and "reduce" in columns:
        encoding = ("normal", "reduce")
    elif "arch" in columns:
        encoding = ("arch",)
    else:
        raise DataError(f"{source}: no cell column: expected 'arch', 'matrix' + 'ops' (NB101) or "
                        f"'normal' + 'reduce' (DARTS); got {', '.join(columns[:8])}")
    metrics = [c for c in columns if c not in (*encoding, "dataset", "index")]
    archs, datasets, values = [], [], {m: [] for m in metrics}
    for row, record in enumerate(records):
        where = f"{source}: row {row}"
        try:
            if encoding == ("matrix", "ops"):
                matrix, ops = _json_cell(record["matrix"], where), _json_cell(record["ops"], where)
                archs.append(nb101_text(matrix, ops))
            elif encoding == ("normal", "reduce"):
                archs.append(darts_text({"normal": _json_cell(record["normal"], where),
                                         "reduce": _json_cell(record["reduce"], where)}))
            else:
                arch = record["arch"]
                archs.append(arch.strip() if _text_form(arch) else str(ArchGraph.parse(arch)))
        except ArchError as err:
            raise DataError(f"{where}: {err}") from None
        except KeyError as err:
            raise DataError(f"{where}: missing column {err}") from None
        datasets.append(str(record.get("dataset") or dataset or UNSPECIFIED))
        for m in metrics:
            values[m].append(_number(record.get(m), f"{where}, column {m}"))
    if not metrics:
        raise DataError(f"{source}: no metric columns besides the cells")
    by = sorted(set(datasets))
    out = {}
    ds = np.asarray(datasets)
    for m in metrics:
        column = np.asarray(values[m], dtype=np.float64)
        for d in by:
            out[(d, METRIC_ALIASES.get(m, m))] = np.where(ds == d, column, np.nan)
    return _table(archs, out, source)


def _text_form(value: Any) -> bool:
    """An encoding that is already a text form nasplug reads in batches (kept as written; checked
    by :func:`_table`)."""
    return isinstance(value, str) and value.strip().startswith(("|", "Genotype(", "{\"matrix\""))


def _number(value: Any, where: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    if isinstance(value, Mapping) and "score" in value:  # NASLib's later zero-cost files
        value = value["score"]
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {value!r} is not a number") from None


def _table(archs: list[str], values: dict[tuple[str, str], np.ndarray], source: str) -> BenchmarkTable:
    """The table, its cells checked now (batched where they share a benchmark's form)."""
    try:
        if batch_of_encodings(archs) is None:
            for row, arch in enumerate(archs):
                try:
                    ArchGraph.parse(arch)
                except ArchError as err:
                    raise ArchError(f"row {row}: {err}") from None
    except ArchError as err:
        raise DataError(f"{source}: {err}") from None
    return BenchmarkTable(np.arange(len(archs)), archs, values, source=source, benchmark=_kind(archs))


def read_table_file(path: Path, dataset: str | None = None) -> BenchmarkTable:
    """A generic table from CSV (``,``-separated, header row), JSON or Parquet (by suffix)."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = _read_json(path)
        if isinstance(data, list):
            return table_from_records(data, str(path), dataset)
        return read_naslib_zc(data, str(path))
    if suffix == ".parquet":
        _parquet_engine(path)
        import pandas as pd

        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises many types for corrupt files
            raise DataError(f"{path}: cannot read Parquet ({type(err).__name__}: {err})") from None
        return table_from_records(frame.to_dict("records"), str(path), dataset)
    import csv

    with path.open(newline="") as fh:
        try:
            rows = list(csv.DictReader(fh))
        except (csv.Error, UnicodeDecodeError) as err:
            raise DataError(f"{path}: cannot read CSV ({err})") from None
    for i, row in enumerate(rows):
        if None in row or any(v is None for v in row.values()):
            raise DataError(f"{path}: line {i + 2} has a different number of fields than the header")
    return table_from_records(rows, str(path), dataset)


def _read_json(path: Path) -> Any:
    try:
        with path.open() as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None


# ---------------------------------------------------------------------- NASLib's files
def read_naslib_zc(data: Mapping[str, Any], source: str) -> BenchmarkTable:
    """NASLib's zero-cost benchmark JSON (module docstring): every proxy becomes a metric column,
    ``val_accuracy`` is ``valid_accuracy``."""
    if not isinstance(data, Mapping) or not data:
        raise DataError(f"{source}: expected a JSON object or a list of records")
    level = data
    if all(k.startswith("nasbench") for k in level):  # {space: {dataset: {...}}}
        if len(level) != 1:
            raise DataError(f"{source}: several search spaces in one file ({', '.join(level)})")
        level = next(iter(level.values()))
    records = []
    for dataset, cells in level.items():
        if not isinstance(cells, Mapping):
            raise DataError(f"{source}: dataset {dataset!r} does not map cells to metrics")
        for key, metrics in cells.items():
            if not isinstance(metrics, Mapping):
                raise DataError(f"{source}: cell {key[:60]!r} of {dataset} has no metrics")
            records.append({"arch": _naslib_key(key, source), "dataset": dataset,
                            **{m: v for m, v in metrics.items() if m != "id"}})
    return table_from_records(records, source)


def _naslib_key(key: str, source: str) -> str:
    """A NASLib cell key (``str`` of an NB101 56-tuple or of NB301 compact pairs) as nasplug's text."""
    try:
        value = ast.literal_eval(key)
    except (ValueError, SyntaxError):
        raise DataError(f"{source}: cell key {key[:60]!r} is not a NASLib tuple") from None
    try:
        return str(ArchGraph.parse(value))
    except ArchError as err:
        raise DataError(f"{source}: cell key {key[:60]!r}: {err}") from None


def read_pickle(path: Path) -> Any:
    """Unpickle a benchmark file (code from the file runs: only load files you trust)."""
    try:
        with path.open("rb") as fh:
            return pickle.load(fh)
    except Exception as err:  # truncated or foreign pickles raise many types
        raise DataError(f"{path}: cannot unpickle ({type(err).__name__}: {err})") from None


def read_naslib_nb101(data: Mapping[Any, Any], source: str) -> BenchmarkTable:
    """NASLib's ``nasbench_only108.pkl``: ``hash → (fixed stats, {108: [3 repeats]})``; accuracies
    (fractions in the file) in %, the mean over the repeats, plus ``params`` and ``training_time``."""
    archs: list[str] = []
    cols: dict[str, list[float]] = {"test_accuracy": [], "valid_accuracy": [], "train_accuracy": [],
                                    "training_time": [], "params": []}
    for key, entry in data.items():
        try:
            fixed, computed = entry
            runs = computed[108]
            archs.append(nb101_text(np.asarray(fixed["module_adjacency"]), list(fixed["module_operations"])))
            for name, field in (("test_accuracy", "final_test_accuracy"),
                                ("valid_accuracy", "final_validation_accuracy"),
                                ("train_accuracy", "final_train_accuracy")):
                cols[name].append(100.0 * float(np.mean([r[field] for r in runs])))
            cols["training_time"].append(float(np.mean([r["final_training_time"] for r in runs])))
            cols["params"].append(float(fixed["trainable_parameters"]))
        except (TypeError, KeyError, ValueError) as err:
            raise DataError(f"{source}: entry {str(key)[:40]!r} is not in NASLib's NB101 layout ({err!r})") \
                from None
        except ArchError as err:
            raise DataError(f"{source}: entry {str(key)[:40]!r}: {err}") from None
    return _table(archs, {("cifar10", k): np.asarray(v) for k, v in cols.items()}, source)


def read_naslib_nb301(data: Mapping[Any, Any], source: str) -> BenchmarkTable:
    """NASLib's ``nb301_full_training.pickle``: compact genotype → ``{"val_accuracies": [...],
    "runtime": ...}``; the last epoch's validation accuracy and the runtime."""
    archs, valid, runtime = [], [], []
    for key, entry in data.items():
        try:
            archs.append(darts_text(darts.parse_compact(key)))
            valid.append(float(entry["val_accuracies"][-1]))
            runtime.append(float(entry.get("runtime", math.nan)))
        except (TypeError, KeyError, ValueError, IndexError) as err:
            raise DataError(f"{source}: entry {str(key)[:60]!r} is not in NASLib's NB301 layout ({err!r})") \
                from None
        except ArchError as err:
            raise DataError(f"{source}: entry {str(key)[:60]!r}: {err}") from None
    return _table(archs, {("cifar10", "valid_accuracy"): np.asarray(valid),
                          ("cifar10", "runtime"): np.asarray(runtime)}, source)


def read_naslib_pickle(data: Any, source: str) -> BenchmarkTable:
    """Dispatch an unpickled NASLib file by its layout."""
    if not isinstance(data, Mapping) or not data:
        raise DataError(f"{source}: expected a dict of cells")
    key, entry = next(iter(data.items()))
    if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], Mapping) \
            and "module_adjacency" in entry[0]:
        return read_naslib_nb101(data, source)
    if isinstance(entry, Mapping) and "val_accuracies" in entry:
        return read_naslib_nb301(data, source)
    raise DataError(f"{source}: not a NAS-Bench-201, NASLib NB101 or NASLib NB301 pickle")
