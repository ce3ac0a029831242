"""The official NAS-Bench-101 record files (``nasbench_only108.tfrecord``, ``nasbench_full.tfrecord``)
read without TensorFlow.

The files are TFRecord files: each record is ``uint64 length`` (little-endian), ``uint32`` masked
CRC-32C of those 8 bytes, ``length`` bytes of data, ``uint32`` masked CRC-32C of the data, where the
mask is ``((crc >> 15) | (crc << 17)) + 0xa282ead8`` modulo 2³² (TensorFlow's ``record_writer``).
The data is what the benchmark's ``api.py`` reads: a JSON list ``[module_hash, epochs,
raw_adjacency, raw_operations, raw_metrics]`` — the pruned matrix as a row-major string of 0/1
characters, the vertex ops joined by commas, and a base64-encoded ``nasbench.ModelMetrics``
protocol buffer (``evaluation_data`` = 1, repeated ``EvaluationData``; ``trainable_parameters`` = 2;
``total_time`` = 3; in ``EvaluationData``: ``current_epoch`` 1, ``training_time`` 2,
``train_accuracy`` 3, ``validation_accuracy`` 4, ``test_accuracy`` 5, ``checkpoint_path`` 6).

Two well-kept libraries do the binary work: ``google-crc32c`` checks every CRC and ``protobuf``
decodes the metrics with message classes built at run time from that schema (no generated code).
Both come with ``pip install 'nasplug[nb101]'``.

One record is one training run of one cell at one epoch budget; the benchmark trained every cell 3
times per budget. :func:`read_nb101_records` keeps one budget (108 epochs by default) and reports
the mean over the repeats of the final evaluation, as the NAS-Bench-201 loaders report seed means:
test, validation and train accuracy in %, training time in seconds, and the parameter count.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from nasplug.errors import ArchError, DataError, require
from nasplug.graph import nb101
from nasplug.nasbench.table import BenchmarkTable

SUFFIXES = (".tfrecord", ".tfrecords")
_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    """TensorFlow's masked CRC-32C of ``data``."""
    crc = require("google_crc32c", "nb101", "reading NAS-Bench-101 record files").value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def iter_records(path: str | Path) -> Iterator[bytes]:
    """The data of every record of a TFRecord file, CRCs checked; a truncated or corrupt file is a
    :class:`~nasplug.errors.DataError` naming the record."""
    path = Path(path)
    with path.open("rb") as fh:
        number = 0
        while True:
            header = fh.read(12)
            if not header:
                return
            if len(header) < 12:
                raise DataError(f"{path}: record {number} is truncated (incomplete header)")
            (length,), (crc,) = struct.unpack("<Q", header[:8]), struct.unpack("<I", header[8:])
            if masked_crc32c(header[:8]) != crc:
                raise DataError(f"{path}: record {number}: corrupt length (CRC mismatch); not a TFRecord "
                                "file?")
            data, footer = fh.read(length), fh.read(4)
            if len(data) < length or len(footer) < 4:
                raise DataError(f"{path}: record {number} is truncated")
            if masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                raise DataError(f"{path}: record {number}: corrupt data (CRC mismatch)")
            yield data
            number += 1


@lru_cache(maxsize=1)
def metrics_class() -> Any:
    """``nasbench.ModelMetrics`` as a protobuf message class, built from the schema above."""
    require("google.protobuf", "nb101", "reading NAS-Bench-101 record files")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="nasplug_nasbench_model_metrics.proto",
                                               package="nasplug_nasbench", syntax="proto2")
    evaluation = proto.message_type.add(name="EvaluationData")
    for number, name in enumerate(("current_epoch", "training_time", "train_accuracy", "validation_accuracy",
                                   "test_accuracy"), start=1):
        evaluation.field.add(name=name, number=number, type=fdp.TYPE_DOUBLE, label=fdp.LABEL_OPTIONAL)
    evaluation.field.add(name="checkpoint_path", number=6, type=fdp.TYPE_STRING, label=fdp.LABEL_OPTIONAL)
    metrics = proto.message_type.add(name="ModelMetrics")
    metrics.field.add(name="evaluation_data", number=1, type=fdp.TYPE_MESSAGE, label=fdp.LABEL_REPEATED,
                      type_name=".nasplug_nasbench.EvaluationData")
    metrics.field.add(name="trainable_parameters", number=2, type=fdp.TYPE_INT32, label=fdp.LABEL_OPTIONAL)
    metrics.field.add(name="total_time", number=3, type=fdp.TYPE_DOUBLE, label=fdp.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("nasplug_nasbench.ModelMetrics"))


def decode_record(data: bytes) -> tuple[str, int, list[list[int]], list[str], Any]:
    """``(module_hash, epochs, matrix, ops, ModelMetrics)`` of one record's data."""
    module_hash, epochs, adjacency, operations, raw_metrics = json.loads(data.decode("utf-8"))
    n = int(round(len(adjacency) ** 0.5))
    if n * n != len(adjacency) or set(adjacency) - {"0", "1"}:
        raise ValueError(f"adjacency {adjacency[:20]!r} is not a square 0/1 matrix")
    matrix = [[int(c) for c in adjacency[i * n:(i + 1) * n]] for i in range(n)]
    metrics = metrics_class()()
    metrics.ParseFromString(base64.b64decode(raw_metrics, validate=True))
    return module_hash, int(epochs), matrix, operations.split(","), metrics


def read_nb101_records(path: str | Path, *, epochs: int = 108, progress: bool = False) -> BenchmarkTable:
    """Read an official NAS-Bench-101 record file into a :class:`BenchmarkTable` (module docstring):
    one row per cell (``archs`` = the pruned spec as JSON), dataset ``cifar10``, metrics
    ``test_accuracy``, ``valid_accuracy``, ``train_accuracy`` (%, mean over the repeats of the final
    evaluation at ``epochs``), ``training_time`` (s) and ``params``."""
    path = Path(path)
    cells: dict[str, dict[str, Any]] = {}
    records: Any = iter_records(path)
    if progress:
        from tqdm import tqdm

        records = tqdm(records, desc="reading NAS-Bench-101", unit="record", unit_scale=True)
    for number, data in enumerate(records):
        try:
            module_hash, budget, matrix, ops, metrics = decode_record(data)
        except Exception as err:  # JSON, base64 and protobuf errors: all mean a foreign record
            raise DataError(f"{path}: record {number} is not a NAS-Bench-101 record "
                            f"({type(err).__name__}: {err})") from None
        if budget != epochs:
            continue
        if not metrics.evaluation_data:
            raise DataError(f"{path}: record {number} has no evaluation data")
        cell = cells.get(module_hash)
        if cell is None:
            try:
                text = nb101.format_spec_json(*nb101.prune(matrix, ops))
            except ArchError as err:
                raise DataError(f"{path}: record {number}: {err}") from None
            cell = cells[module_hash] = {"arch": text, "params": metrics.trainable_parameters, "runs": []}
        final = metrics.evaluation_data[-1]
        cell["runs"].append((final.test_accuracy, final.validation_accuracy, final.train_accuracy,
                             final.training_time))
    if not cells:
        raise DataError(f"{path}: no records with {epochs} epochs")
    runs = [np.mean(c["runs"], axis=0) for c in cells.values()]
    values = {("cifar10", name): np.array([r[i] for r in runs]) * scale
              for i, (name, scale) in enumerate((("test_accuracy", 100.0), ("valid_accuracy", 100.0),
                                                 ("train_accuracy", 100.0), ("training_time", 1.0)))}
    values[("cifar10", "params")] = np.array([c["params"] for c in cells.values()], dtype=np.float64)
    archs = [c["arch"] for c in cells.values()]
    return BenchmarkTable(np.arange(len(archs)), archs, values, source=str(path), benchmark="nb101")
