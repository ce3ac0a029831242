"""What the Ray backend costs and buys, measured in one process against the Optuna backend.

1. **Per-trial overhead** on the NAS-Bench-201 table (a lookup: the trial itself costs nothing, so
   the time is all framework): ``nasplug search`` with ``--backend optuna`` and ``--backend ray``
   (random search without a filter: the frameworks alone; TPE with ``dag_box``: plus the driver's
   sampling), one trial at a time, each timed at two budgets; the per-trial cost is the
   slope between them, so the fixed costs (study, Tune experiment setup, report) cancel out and
   are reported separately. Ray's own start-up (``ray.init``) is timed once.
2. **Throughput** with 1 vs 2 workers: a real training per trial (MLP-DAG on digits, 2 epochs,
   ``{"cpu": 1}`` each), ``--max-concurrent 1`` vs ``2``: trials per minute.
3. **Search efficiency through Ray**: evaluations until a top-0.1 % NB201 cell (CIFAR-10) with
   TPE, without a filter and with ``top_fraction``, one trial at a time, over several seeds — the
   Optuna backend's figures (docs/search_efficiency.md) reproduced through Ray Tune.

Usage::

    .venv/bin/python benchmarks/ray_overhead.py [--seeds 30] [--cpus 2]

Writes docs/ray_overhead.md. Timings are wall-clock on the machine it runs on; the load average
at the start and the end is printed with them (a shared machine slows both backends alike).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from nb201_csv import add_csv_argument, csv_missing  # benchmarks/nb201_csv.py (scripts run from this folder)

ROOT = Path(__file__).resolve().parents[1]


def _timed_search(backend: str, folder: Path, n_trials: int, *, max_concurrent: int = 1, **settings) -> float:
    from nasplug.optuna.runner import run_search
    from nasplug.ray import RayOptions, run_ray_search
    from nasplug.search import SearchConfig

    config = SearchConfig(n_trials=n_trials, storage=str(folder / "study.db"), quiet=True, **settings)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        if backend == "ray":
            run_ray_search(config, RayOptions(max_concurrent=max_concurrent), folder, echo=lambda s: None)
        else:
            run_search(config, folder, echo=lambda s: None)
    return time.perf_counter() - start


def _hit(folder: Path, threshold: float) -> int | None:
    """Evaluations (in trial order) until the first evaluated cell at or above ``threshold``."""
    import optuna

    from nasplug.optuna import open_storage

    storage = open_storage(folder / "study.db")
    study = optuna.load_study(storage=storage, study_name=optuna.get_all_study_names(storage)[0])
    n = 0
    for t in study.get_trials():
        if t.user_attrs.get("nasplug:evaluated"):
            n += 1
            if t.value >= threshold:
                return n
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_csv_argument(ap)
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--budgets", type=int, nargs=2, default=[20, 60], help="trials of the two timed runs")
    ap.add_argument("--train-trials", type=int, default=12)
    ap.add_argument("--max-trials", type=int, default=150, help="budget of each efficiency run")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "docs"))
    args = ap.parse_args(argv)
    if csv_missing(args.csv):
        return 2
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import logging

    import optuna
    import ray

    from nasplug.nasbench import load_benchmark

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    init_seconds = time.perf_counter() - t0
    lo, hi = args.budgets
    #: (sampler, filter): random/none isolates the framework; tpe/dag_box is a real search's driver
    settings = (("random", "none"), ("tpe", "dag_box"))
    times: dict[tuple[str, str, str], dict[int, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for sampler, filt in settings:
            for backend in ("optuna", "ray"):
                row = times.setdefault((sampler, filt, backend), {})
                for n in (lo, hi):
                    folder = Path(tmp) / f"{sampler}-{filt}-{backend}-{n}"
                    row[n] = _timed_search(backend, folder, n, benchmark=args.csv, objective="table",
                                           sampler=sampler, filter=filt)
                    print(f"{sampler}/{filt} {backend} {n} trials: {row[n]:.1f} s", file=sys.stderr,
                          flush=True)
        slope = {k: (v[hi] - v[lo]) / (hi - lo) for k, v in times.items()}
        fixed = {k: v[lo] - lo * slope[k] for k, v in times.items()}

        train = {"objective": "train", "dataset": "digits", "model": "mlp", "epochs": 2, "filter": "dag_box"}
        throughput = {}
        for k in (1, 2):
            folder = Path(tmp) / f"train-{k}"
            seconds = _timed_search("ray", folder, args.train_trials, max_concurrent=k, **train)
            throughput[k] = args.train_trials / seconds * 60
            print(f"training, {k} worker(s): {throughput[k]:.1f} trials/min", file=sys.stderr, flush=True)

        values = load_benchmark(args.csv).column("cifar10")
        k_top = math.ceil(0.001 * int(np.isfinite(values).sum()))
        threshold = float(np.sort(values[np.isfinite(values)])[-k_top])
        hits: dict[str, list[int | None]] = {}
        for filt in ("none", "top_fraction"):
            hits[filt] = []
            for seed in range(args.seeds):
                folder = Path(tmp) / f"eff-{filt}-{seed}"
                _timed_search("ray", folder, args.max_trials, benchmark=args.csv, objective="table",
                              filter=filt, seed=seed)
                hits[filt].append(_hit(folder, threshold))
                print(f"efficiency {filt} seed {seed}: {hits[filt][-1]}", file=sys.stderr, flush=True)
    ray.shutdown()
    load_end = os.getloadavg()[0]

    def quartiles(h):  # a run without a hit counts as one more than the budget (it sorts last)
        return np.percentile(np.array([x if x is not None else args.max_trials + 1 for x in h], float),
                             [25, 50, 75])

    def fmt(x):
        return f"> {args.max_trials}" if x > args.max_trials else f"{x:.0f}"

    lines = [
        "# Ray backend: overhead, throughput and search efficiency", "",
        f"Produced by `benchmarks/ray_overhead.py --seeds {args.seeds} --budgets {lo} {hi} "
        f"--cpus {args.cpus}` on {os.cpu_count()} cores (load average {load_start:.1f} at the start, "
        f"{load_end:.1f} at the end: "
        "a shared machine slows both backends alike, read the ratios). Ray "
        f"{ray.__version__}, `reuse_actors=True`, one local node with {args.cpus} CPUs.", "",
        "## Per-trial cost on the NAS-Bench-201 table (a lookup per trial)", "",
        f"`nasplug search --benchmark …` with {lo} and {hi} trials, one at a time; per trial = the slope "
        "between the two runs (fixed costs — study, Tune experiment, report — cancel). Random search "
        "without a filter isolates the framework; TPE with `dag_box` adds the driver's sampling "
        "(joint TPE draws until a cell passes), which both backends pay.", "",
        "| sampler, filter | backend | per trial | fixed cost per run | total for " f"{hi} trials |",
        "| --- | --- | --- | --- | --- |",
    ]
    for (sampler, filt, backend), row in times.items():
        key = (sampler, filt, backend)
        lines.append(f"| {sampler}, {filt} | {backend} | {slope[key] * 1000:.0f} ms | {fixed[key]:.1f} s | "
                     f"{row[hi]:.1f} s |")
    lines.append("")
    for sampler, filt in settings:
        ray_s, opt_s = slope[(sampler, filt, "ray")], slope[(sampler, filt, "optuna")]
        lines.append(f"- {sampler}, {filt}: Ray takes {ray_s / opt_s:.1f}× the Optuna backend's time per "
                     f"trial ({(ray_s - opt_s) * 1000:+.0f} ms).")
    lines += [f"- Starting Ray (`ray.init`, {args.cpus} CPUs) took {init_seconds:.1f} s, once per command.",
              "", "Against a training of minutes per trial this is noise; for table lookups the Optuna "
              "backend is the faster tool.", "",
              "## Throughput with 1 and 2 workers (training per trial)", "",
              f"{args.train_trials} trials of MLP-DAG training on digits (2 epochs), "
              "`{'cpu': 1}` each:", "",
              "| workers (`--max-concurrent`) | trials per minute |", "| --- | --- |"]
    lines += [f"| {k} | {throughput[k]:.1f} |" for k in (1, 2)]
    lines += ["", f"2 workers: **{throughput[2] / throughput[1]:.2f}×** the trials per minute of one.", "",
              "## Search efficiency through Ray (evaluations to a top-0.1 % cell, CIFAR-10)", "",
              f"TPE one trial at a time, {args.seeds} seeds, at most {args.max_trials} trials per run; "
              f"top 0.1 % = test accuracy ≥ {threshold:.2f} %. The Optuna backend's figures on 30 seeds "
              "(docs/search_efficiency.md): 40 without a filter, 30 with `top_fraction`.", "",
              "| filter | median evaluations [25th–75th] | reached |", "| --- | --- | --- |"]
    for filt, h in hits.items():
        q = quartiles(h)
        lines.append(f"| {filt} | {fmt(q[1])} [{fmt(q[0])}–{fmt(q[2])}] | {sum(x is not None for x in h)}"
                     f"/{len(h)} |")
    lines.append("")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ray_overhead.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
