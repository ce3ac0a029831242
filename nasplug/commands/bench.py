"""``nasplug bench``: convert NAS-Bench-201 ground truth into a compact table, or summarize a file.

The official file takes minutes and gigabytes to unpickle; ``bench convert`` reads it once and
writes the few numbers ranking needs (``index, arch, dataset, test_accuracy, valid_accuracy``), so
``nasplug rank --benchmark table.csv`` loads in a fraction of a second.
"""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark files: convert to a compact table, or summarize",
        description="Read benchmark ground truth: NAS-Bench-201 (official .pth via nas_201_api at 200 "
        "epochs averaged over seeds, a compact table, or the CSV export), NAS-Bench-101 (the official "
        ".tfrecord, NASLib's .pkl), NAS-Bench-301 (NASLib's .pickle), NASLib's zero-cost .json, or a "
        "table of cells (docs/nasbench.md).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    conv = actions.add_parser("convert", help="write a compact .csv or .parquet table",
                              description="Convert any supported NAS-Bench-201 file into the compact "
                              "long table (index, arch, dataset, metrics).")
    conv.add_argument("file", help="official .pth, compact table, or CSV export")
    conv.add_argument("-o", "--output", required=True,
                      help="the compact table to write: PATH.csv or PATH.parquet (needs nasplug[parquet])")
    conv.add_argument("--datasets", default=None,
                      help="comma-separated datasets to keep (default: all in the file)")
    conv.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    conv.set_defaults(func=run_convert)
    info = actions.add_parser("info", help="summarize a benchmark file")
    info.add_argument("file", help="NAS-Bench-201 (.pth, compact table, CSV export), NAS-Bench-101 "
                      "(.tfrecord, NASLib .pkl), NAS-Bench-301 (NASLib .pickle), NASLib zero-cost .json, or "
                      "a table of cells")
    info.set_defaults(func=run_info)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _datasets(text: str | None) -> list[str] | None:
    from nasplug.nasbench import canonical_dataset

    if text is None:
        return None
    return [canonical_dataset(d) for d in text.split(",") if d.strip()]


def run_convert(args) -> int:
    import time

    from nasplug.nasbench import BenchmarkTable, load_benchmark
    from nasplug.nasbench.table import table_output

    table_output(args.output)  # before the (minutes-long) read of an official file
    wanted = _datasets(args.datasets)
    start = time.perf_counter()
    table = load_benchmark(args.file, datasets=wanted, progress=not args.no_progress)
    read_s = time.perf_counter() - start
    if wanted is not None:
        table = BenchmarkTable(table.indices, table.archs,
                               {k: v for k, v in table.values.items() if k[0] in wanted},
                               source=table.source)
        for d in wanted:
            table.column(d)
    path = table.write(args.output)
    start = time.perf_counter()
    load_benchmark(path)
    load_s = time.perf_counter() - start
    print(f"read {len(table):,} cells x {len(table.datasets)} datasets ({', '.join(table.datasets)}) "
          f"from {args.file} in {read_s:.2f} s")
    ratio = read_s / max(load_s, 1e-9)
    speed = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
    print(f"wrote {path}; it loads in {load_s:.2f} s ({speed} than the file it was read from)")
    return 0


def run_info(args) -> int:
    import numpy as np

    from nasplug.nasbench import load_benchmark

    table = load_benchmark(args.file)
    where = "arch indices" if table.benchmark == "nb201" else f"{table.benchmark} cells, rows"
    print(f"{args.file}: {len(table):,} cells, {where} {table.indices.min()}..{table.indices.max()}")
    for (dataset, metric), v in table.values.items():
        ok = np.isfinite(v)
        if ok.any():
            best = int(np.nanargmax(v))
            print(f"  {dataset:>15} {metric:<15} n={int(ok.sum()):,}  mean {np.nanmean(v):.2f}  "
                  f"max {v[best]:.2f} (index {int(table.indices[best])})")
    return 0
