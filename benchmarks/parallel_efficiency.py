"""Parallel efficiency of an architecture search: trainings to a top-0.1 % NB201 cell with K running.

A cluster runs K trainings at once, so a model-based sampler proposes K cells before the first
result returns. This simulates that with Optuna's ask/tell on the NAS-Bench-201 table (CIFAR-10
test accuracy as the training's outcome), exactly as the Ray backend schedules trials:

* K trainings are in flight; when one finishes (a uniformly random one of the K: trainings of
  different cells take different times) its value is told and a new cell is asked for;
* a cell with the canonical key of a finished one is answered from the cache (no training);
* a cell equal to a *running* one is parked and gets that training's value when it finishes —
  never trained twice (``nasplug.ray.ArchSearcher`` does the same).

The cost of a run is the number of trainings launched up to and including the first top-0.1 %
cell (for K = 1 that is the sequential search's "evaluations to a top cell",
benchmarks/search_efficiency.py). Configurations: random search and TPE (Optuna's default,
``constant_liar=True``), without a filter and with ``top_fraction`` (the top 10 % by
``live_param_cost``), with a blind start or a **scored start**: ``FilteredSampler(scored_startup=10,
scorer="live_param_cost")``, i.e. the first batch and TPE's 10 startup trials are the best-scored,
mutually distinct cells of the filtered space (nasplug.search.seeding).

Usage::

    .venv/bin/python benchmarks/parallel_efficiency.py [--seeds 30] [--k 1 8 32 64] [--jobs 2]

Writes docs/parallel_efficiency.md (``--dataset cifar100``/``ImageNet16-120``: held-out ground
truth, docs/parallel_efficiency_<dataset>.md).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np
from nb201_csv import add_csv_argument, csv_missing  # benchmarks/nb201_csv.py (scripts run from this folder)

ROOT = Path(__file__).resolve().parents[1]
#: (sampler, filter, start)
CONFIGS = (("random", "none", "blind"), ("random", "top_fraction", "blind"),
           ("tpe", "none", "blind"), ("tpe", "top_fraction", "blind"), ("tpe", "top_fraction", "scored"),
           ("tpe", "none", "scored"))
SCORER = "live_param_cost"
STARTUP = 10  # TPE's n_startup_trials

_TABLE: dict = {}


def _setup(csv: str, dataset: str) -> None:
    from nasplug import search_spaces
    from nasplug.nasbench import load_benchmark

    space = search_spaces.get("nb201")
    lookup = load_benchmark(csv).aligned(space, np.arange(space.size), dataset)  # NaN: not in the table
    known = np.sort(lookup[np.isfinite(lookup)])
    k = math.ceil(0.001 * len(known))
    _TABLE.update(space=space, lookup=lookup, threshold=float(known[-k]), k=k)


def _sampler(name: str, filter_name: str, start: str, seed: int):
    import optuna

    from nasplug.optuna import FilteredSampler

    base = (optuna.samplers.TPESampler(seed=seed) if name == "tpe"
            else optuna.samplers.RandomSampler(seed=seed))
    if filter_name == "none" and start == "blind":
        return base
    return FilteredSampler(base, filter=filter_name, space=_TABLE["space"], seed=seed,
                           scorer=SCORER if start == "scored" else None,
                           scored_startup=STARTUP if start == "scored" else 0)


def run_one(job: tuple) -> dict:
    """One simulated search with K trainings in flight; returns when the top was hit."""
    sampler_name, filter_name, start, k, seed, max_trainings, csv, dataset = job
    if not _TABLE:
        _setup(csv, dataset)
    import optuna

    from nasplug.optuna import suggest_architecture

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space, lookup, threshold = _TABLE["space"], _TABLE["lookup"], _TABLE["threshold"]
    rng = np.random.default_rng(10_000 + seed)
    sampler = _sampler(sampler_name, filter_name, start, seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    done: dict[str, float] = {}
    running: list[tuple[object, str, float]] = []     # (trial, key, value) in flight
    parked: dict[str, list] = {}
    trainings, trials, hit, parked_total = 0, 0, None, 0
    t0 = time.perf_counter()
    while hit is None and trainings < max_trainings and trials < 4 * max_trainings:
        while len(running) < k and trainings < max_trainings and trials < 4 * max_trainings:
            trial = study.ask()
            trials += 1
            arch = suggest_architecture(trial, space)
            key = arch.canonical_key()
            value = float(lookup[space.encode(arch)])
            if key in done:
                study.tell(trial, done[key])
            elif any(key == r[1] for r in running):
                parked.setdefault(key, []).append(trial)
                parked_total += 1
            else:
                trainings += 1
                running.append((trial, key, value))
                if value >= threshold:
                    hit = trainings
                    break
        if hit is not None or not running:
            break
        trial, key, value = running.pop(int(rng.integers(len(running))))
        study.tell(trial, value)
        done[key] = value
        for other in parked.pop(key, []):
            study.tell(other, value)
    return {"sampler": sampler_name, "filter": filter_name, "start": start, "k": k, "seed": seed,
            "hit": hit, "trials": trials, "parked": parked_total, "seconds": time.perf_counter() - t0}


def _quartiles(hits: list[int | None], budget: int) -> np.ndarray:
    """25th, 50th, 75th percentiles; a run without a hit counts as ``budget + 1`` (it sorts last,
    and a quantile that lands on it reads "> budget")."""
    return np.percentile(np.array([h if h is not None else budget + 1 for h in hits], dtype=float),
                         [25, 50, 75])


def _fmt(x: float, budget: int) -> str:
    return f"> {budget}" if x > budget else f"{x:.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_csv_argument(ap)
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--k", type=int, nargs="+", default=[1, 8, 32, 64], help="trainings in flight")
    ap.add_argument("--max-trainings", type=int, default=1000, help="budget per run (censored beyond)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--dataset", default="cifar10", choices=("cifar10", "cifar100", "ImageNet16-120"))
    ap.add_argument("--out", default=str(ROOT / "docs"))
    args = ap.parse_args(argv)
    if csv_missing(args.csv):
        return 2
    _setup(args.csv, args.dataset)
    jobs = [(s, f, st, k, seed, args.max_trainings, args.csv, args.dataset)
            for k in sorted(args.k, reverse=True) for s, f, st in CONFIGS for seed in range(args.seeds)]
    start = time.perf_counter()
    results = []
    with mp.get_context("fork").Pool(args.jobs) as pool:
        for i, r in enumerate(pool.imap_unordered(run_one, jobs, chunksize=1)):
            results.append(r)
            print(f"[{i + 1}/{len(jobs)}] K={r['k']:>2} {r['sampler']:>6} {r['filter']:>12} {r['start']:>6} "
                  f"seed {r['seed']:>2}: hit after {r['hit']} trainings ({r['seconds']:.1f} s)",
                  file=sys.stderr, flush=True)
    wall = time.perf_counter() - start

    ks = sorted(args.k)
    table = {}
    for s, f, st in CONFIGS:
        for k in ks:
            rs = [r for r in results if (r["sampler"], r["filter"], r["start"], r["k"]) == (s, f, st, k)]
            table[(s, f, st, k)] = {"q": _quartiles([r["hit"] for r in rs], args.max_trainings),
                                    "reached": sum(r["hit"] is not None for r in rs), "runs": len(rs),
                                    "parked": np.mean([r["parked"] for r in rs])}
    budget = args.max_trainings
    stem = "parallel_efficiency" if args.dataset == "cifar10" else f"parallel_efficiency_{args.dataset}"
    space, threshold, k_top = _TABLE["space"], _TABLE["threshold"], _TABLE["k"]
    lines = [
        f"# Parallel efficiency: trainings to a top-0.1 % NB201 cell with K in flight ({args.dataset})", "",
        f"Produced by `benchmarks/parallel_efficiency.py --seeds {args.seeds} --k {' '.join(map(str, ks))} "
        f"--max-trainings {budget}` ({wall:.0f} s wall on {args.jobs} processes). Optuna ask/tell on the "
        f"NAS-Bench-201 table: K trainings in flight, a random one of them finishes next, duplicates of "
        f"finished cells answered from the cache, duplicates of running cells parked until it finishes "
        f"(never trained twice). Cost = trainings launched up to and including the first cell of the top "
        f"0.1 % ({k_top} best of {space.size:,}: test accuracy ≥ {threshold:.2f} %). TPE is Optuna's "
        f"default (multivariate, `constant_liar=True`, 10 startup trials). *scored* start: "
        f"`FilteredSampler(scorer=\"{SCORER}\", scored_startup={STARTUP})` — while fewer than {STARTUP} "
        f"trials have finished, every proposal is the next best-scored, mutually distinct (canonical "
        f"key) cell of the filtered space. Runs without a hit within {budget} trainings are censored "
        f"(counted as ∞).", "",
        f"Median trainings [25th–75th percentile] over {args.seeds} seeds:", "",
        "| sampler | filter | start | " + " | ".join(f"K = {k}" for k in ks) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in ks) + " |",
    ]
    for s, f, st in CONFIGS:
        cells = []
        for k in ks:
            q = table[(s, f, st, k)]["q"]
            cells.append(f"{_fmt(q[1], budget)} [{_fmt(q[0], budget)}–{_fmt(q[2], budget)}]")
        lines.append(f"| {s} | {f} | {st} | " + " | ".join(cells) + " |")
    header = ["| sampler | filter | start | " + " | ".join(f"K = {k}" for k in ks) + " |",
              "| --- | --- | --- | " + " | ".join("---" for _ in ks) + " |"]
    lines += ["", "Slow-down against the same configuration run sequentially "
              "(median at K / median at K = 1):", "", *header]
    for s, f, st in CONFIGS:
        ref = table[(s, f, st, ks[0])]["q"][1]
        cells = []
        for k in ks:
            med = table[(s, f, st, k)]["q"][1]
            cells.append("n/a" if med > budget or ref > budget else f"{med / ref:.2f}×")
        lines.append(f"| {s} | {f} | {st} | " + " | ".join(cells) + " |")
    lines += ["", "Parked duplicates per run (mean; cells proposed while an equal cell was training):", "",
              "| sampler | filter | start | " + " | ".join(f"K = {k}" for k in ks) + " |",
              "| --- | --- | --- | " + " | ".join("---" for _ in ks) + " |"]
    for s, f, st in CONFIGS:
        lines.append(f"| {s} | {f} | {st} | "
                     + " | ".join(f"{table[(s, f, st, k)]['parked']:.1f}" for k in ks) + " |")

    seq_ref = table[("tpe", "none", "blind", ks[0])]["q"][1]
    lines += ["", "## Goals", ""]
    if 32 in ks:
        for f, st in (("top_fraction", "scored"), ("none", "scored"), ("top_fraction", "blind"),
                      ("none", "blind")):
            seq = table[("tpe", f, st, ks[0])]["q"][1]
            par = table[("tpe", f, st, 32)]["q"][1]
            ratio = par / seq if par <= budget and seq <= budget else math.inf
            lines.append(f"- TPE, filter {f}, {st} start: K = 32 needs {_fmt(par, budget)} trainings vs "
                         f"{_fmt(seq, budget)} sequentially ({ratio:.2f}×; goal ≤ 1.5×: "
                         f"{'met' if ratio <= 1.5 else 'not met'}).")
    for f, st in (("top_fraction", "scored"), ("none", "scored"), ("top_fraction", "blind")):
        seq = table[("tpe", f, st, ks[0])]["q"][1]
        gain = seq_ref / seq if seq <= budget and seq_ref <= budget else math.nan
        lines.append(f"- Sequential TPE, filter {f}, {st} start: {_fmt(seq, budget)} trainings vs "
                     f"{_fmt(seq_ref, budget)} unfiltered with a blind start ({gain:.2f}× fewer; "
                     f"goal ≥ 3×: {'met' if gain >= 3 else 'not met'}).")
    lines.append("")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
