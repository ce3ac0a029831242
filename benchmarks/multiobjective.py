"""Multi-objective search on the NAS-Bench-201 table: accuracy against parameters, with and without a
pre-training filter, for NSGA-II, multi-objective TPE and random search.

Each run is an Optuna study with directions (maximize accuracy, minimize parameters) searched as
``nasplug search --objectives accuracy,params --benchmark FILE`` searches: the sampler (optionally
wrapped in :class:`nasplug.optuna.FilteredSampler`), :class:`nasplug.optuna.ArchObjective` with the
objective set (a cell equal to an evaluated one reuses its accuracy: not an evaluation). An
*evaluation* is one table lookup standing in for a training. The cells a run has found are scored
by the table (CIFAR-10 test accuracy, 200 epochs) and the live parameters of NB201's CIFAR-10
network; the quality of a run after ``n`` evaluations is the hypervolume of those cells, normalized
by the ideal and nadir of the space's true Pareto front (``nasplug.search.pareto``) and reported as
a fraction of the true front's hypervolume. Runs stop at the evaluation budget, at three times as
many trials (a sampler that only re-proposes known cells), or at a wall-clock cap.

Usage::

    .venv/bin/python benchmarks/multiobjective.py [--seeds 30] [--max-evals 200] [--jobs 2]

Writes docs/multiobjective_benchmark.md and docs/multiobjective_benchmark.png.
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
CHECKPOINTS = (10, 25, 50, 100, 150, 200, 300)
SAMPLERS = ("nsga2", "tpe", "random")
FILTERS = ("none", "dag_box", "top_fraction")
#: (sampler, filter) pairs run. Multi-objective TPE with a filter re-draws every edge of each
#: rejected proposal through TPE (seconds per trial late in a run); with `top_fraction`, which
#: rejects 87 % of the cells, that is minutes per run for a result bounded by the filter's ceiling
#: anyway, so top_fraction is measured with NSGA-II and random search only.
CONFIGS = (("tpe", "none"), ("tpe", "dag_box"),
           *((s, f) for s in ("nsga2", "random") for f in FILTERS))
TARGET = 0.95

_SETUP: dict = {}


def _setup(csv: str, dataset: str) -> None:
    """Per process: the space's true vectors, its true front, the bounds and the true hypervolume."""
    from nasplug import search_spaces
    from nasplug.nasbench import load_benchmark
    from nasplug.search.costs import Network
    from nasplug.search.objectives import ObjectiveSet
    from nasplug.search.pareto import Bounds, hypervolume, pareto_mask

    space = search_spaces.get("nb201")
    accuracy = load_benchmark(csv).aligned(space, np.arange(space.size), dataset)
    objectives = ObjectiveSet("accuracy,params", Network.for_dataset("nb201", dataset))
    truth = objectives.space_vectors(space, accuracy)
    front = truth[pareto_mask(truth, objectives.directions)]
    bounds = Bounds.of(front, objectives.directions)
    _SETUP.update(space=space, accuracy=accuracy, objectives=objectives, truth=truth, front=front,
                  bounds=bounds, true_hv=hypervolume(front, bounds))


def run_one(job: tuple) -> dict:
    """One search; returns the found cells' true hypervolume (fraction of the true front's) after each
    evaluation, and when it first reached :data:`TARGET`."""
    sampler_name, filter_name, seed, max_evals, csv, dataset, max_seconds = job
    if not _SETUP:
        _setup(csv, dataset)
    import optuna

    from nasplug.optuna import ArchObjective, FilteredSampler
    from nasplug.search.pareto import hypervolume_history

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space, accuracy, objectives = _SETUP["space"], _SETUP["accuracy"], _SETUP["objectives"]
    found: list[int] = []          # space index of every completed trial's cell
    evaluations: list[int] = []    # evaluations run by the end of that trial

    def evaluate(arch) -> float:
        return float(accuracy[space.encode(arch)])

    base = {"nsga2": optuna.samplers.NSGAIISampler, "tpe": optuna.samplers.TPESampler,
            "random": optuna.samplers.RandomSampler}[sampler_name](seed=seed)
    sampler = base if filter_name == "none" else FilteredSampler(base, filter=filter_name, space=space,
                                                                seed=seed)
    study = optuna.create_study(directions=list(objectives.directions), sampler=sampler)
    objective = ArchObjective(evaluate, space, objectives=objectives)
    start = time.perf_counter()

    def record(study, trial) -> None:
        if trial.values is not None:
            found.append(space.encode(trial.user_attrs["nasplug:arch"]))
            evaluations.append(objective.n_evaluations)
        if objective.n_evaluations >= max_evals or time.perf_counter() - start > max_seconds:
            study.stop()

    study.optimize(objective, n_trials=3 * max_evals, callbacks=[record], catch=objective.catch)
    history = hypervolume_history(_SETUP["truth"][found], _SETUP["bounds"]) / _SETUP["true_hv"]
    # the fraction reached after n evaluations = the value at the last trial with <= n evaluations
    evaluations = np.asarray(evaluations)
    curve = np.array([history[np.searchsorted(evaluations, n, side="right") - 1]
                      if len(evaluations) and evaluations[0] <= n else 0.0 for n in range(1, max_evals + 1)])
    reached = np.flatnonzero(curve >= TARGET)
    return {"sampler": sampler_name, "filter": filter_name, "seed": seed, "curve": curve,
            "n_evals": int(objective.n_evaluations), "trials": len(study.trials),
            "hit": int(reached[0]) + 1 if len(reached) else None,
            "capped": objective.n_evaluations < max_evals, "seconds": time.perf_counter() - start}


def _median(hits: list[int | None]) -> float:
    x = sorted(h if h is not None else math.inf for h in hits)
    n = len(x)
    return x[n // 2] if n % 2 else (x[n // 2 - 1] + x[n // 2]) / 2


def _fmt_evals(value: float, budget: int) -> str:
    return f"> {budget}" if math.isinf(value) else f"{value:.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_csv_argument(ap)
    ap.add_argument("--dataset", default="cifar10", choices=("cifar10", "cifar100", "ImageNet16-120"))
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--max-evals", type=int, default=200, help="evaluation budget per run")
    ap.add_argument("--max-seconds", type=float, default=240.0, help="wall-clock cap per run")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "docs"))
    args = ap.parse_args(argv)
    if csv_missing(args.csv):
        return 2

    _setup(args.csv, args.dataset)
    from nasplug import scorers
    from nasplug.search.pareto import hypervolume, pareto_mask

    space, truth, bounds, true_hv = _SETUP["space"], _SETUP["truth"], _SETUP["bounds"], _SETUP["true_hv"]
    directions = _SETUP["objectives"].directions
    keeps = {"none": np.ones(space.size, dtype=bool)}
    keeps.update({f: np.asarray(scorers.get(f, space="nb201").keep_many(space.batch()), dtype=bool)
                  for f in FILTERS if f != "none"})
    true_mask = pareto_mask(truth, directions)
    # The best a filtered search can do: the Pareto front of the cells the filter keeps.
    ceiling = {f: hypervolume(truth[k][pareto_mask(truth[k], directions)], bounds) / true_hv
               for f, k in keeps.items()}

    # slow TPE runs first so that the processes finish together
    jobs = [(s, f, seed, args.max_evals, args.csv, args.dataset, args.max_seconds)
            for s, f in CONFIGS for seed in range(args.seeds)]
    start = time.perf_counter()
    results = []
    with mp.get_context("fork").Pool(args.jobs) as pool:
        for i, r in enumerate(pool.imap_unordered(run_one, jobs, chunksize=1)):
            results.append(r)
            print(f"[{i + 1}/{len(jobs)}] {r['sampler']:>6} {r['filter']:>12} seed {r['seed']:>2}: "
                  f"{r['curve'][-1]:.3f} of the true hypervolume after {r['n_evals']} evaluations "
                  f"({r['trials']} trials, {r['seconds']:.1f} s; {time.perf_counter() - start:.0f} s)",
                  file=sys.stderr, flush=True)
    wall = time.perf_counter() - start

    budget = args.max_evals
    checkpoints = [c for c in CHECKPOINTS if c <= budget]
    rows = {}
    for s, f in sorted(CONFIGS, key=lambda c: (SAMPLERS.index(c[0]), FILTERS.index(c[1]))):
        rs = [r for r in results if r["sampler"] == s and r["filter"] == f]
        rows[(s, f)] = {"runs": rs, "curves": np.stack([r["curve"] for r in rs]),
                        "median": _median([r["hit"] for r in rs]),
                        "reached": sum(r["hit"] is not None for r in rs)}
    n_front = int(true_mask.sum())
    lines = [
        "# Multi-objective search on NAS-Bench-201: accuracy vs parameters "
        f"({args.dataset}, table lookup)", "",
        f"Produced by `benchmarks/multiobjective.py` (`--seeds {args.seeds} --max-evals {budget} "
        f"--dataset {args.dataset}`; {wall:.0f} s wall on {args.jobs} processes). Objectives: test accuracy "
        f"(maximize) and the live parameters of NB201's {args.dataset} network (minimize). Samplers as "
        "`nasplug search --objectives accuracy,params` builds them (Optuna's NSGAIISampler, population 50; "
        "TPESampler, which is multi-objective TPE with independent sampling for several objectives; "
        "RandomSampler), without and with `FilteredSampler(filter=...)`. An *evaluation* is one table "
        "lookup standing in for a training; a cell equal to an evaluated one (same canonical form) reuses "
        "its accuracy and is not counted. Found cells are scored by the table. Multi-objective TPE with "
        "`top_fraction` is not run: each rejected proposal is re-drawn edge by edge through TPE, minutes "
        "per run, for a result the filter's ceiling below bounds anyway.", "",
        f"The space's true front has {n_front} cells; hypervolumes are normalized by its ideal "
        f"({bounds.ideal[0]:.2f} %, {bounds.ideal[1]:,.0f} parameters) and nadir ({bounds.nadir[0]:.2f} %, "
        f"{bounds.nadir[1]:,.0f}) — the reference point — and reported as a fraction of the true front's "
        f"({true_hv:.4f}).", "",
        "| filter | cells kept | true-front cells kept | best reachable (front of the kept cells) |",
        "| --- | --- | --- | --- |"]
    for f in FILTERS:
        lines.append(f"| {f} | {int(keeps[f].sum()):,} ({keeps[f].mean():.1%}) | "
                     f"{int((keeps[f] & true_mask).sum())} of {n_front} | {ceiling[f]:.1%} |")
    lines += ["", f"## Evaluations until the found cells reach {TARGET:.0%} of the true front's hypervolume",
              "", f"Median over {args.seeds} seeds; a run that does not reach it within {budget} evaluations "
              f"(or {3 * budget} trials, or {args.max_seconds:.0f} s) counts as more than the budget.", "",
              "| sampler | filter | median evaluations | reached | quartiles | runs stopped by the "
              "trial/time cap | mean trials | s per run |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (s, f), row in rows.items():
        x = np.array([r["hit"] if r["hit"] is not None else np.inf for r in row["runs"]], dtype=float)
        q = ", ".join("∞" if math.isinf(v) else f"{v:.0f}"
                      for v in np.percentile(x, [25, 50, 75], method="nearest"))
        lines.append(f"| {s} | {f} | {_fmt_evals(row['median'], budget)} | "
                     f"{row['reached']}/{len(row['runs'])} | {q} | {sum(r['capped'] for r in row['runs'])} | "
                     f"{np.mean([r['trials'] for r in row['runs']]):.0f} | "
                     f"{np.mean([r['seconds'] for r in row['runs']]):.1f} |")
    lines += ["", "## Hypervolume after N evaluations (fraction of the true front's; mean ± standard error)",
              "",
              "| sampler | filter | " + " | ".join(str(c) for c in checkpoints) + " |",
              "| --- | --- | " + " | ".join("---" for _ in checkpoints) + " |"]
    for (s, f), row in rows.items():
        c = row["curves"]
        cells = [f"{c[:, n - 1].mean():.3f} ± {c[:, n - 1].std(ddof=1) / math.sqrt(len(c)):.3f}"
                 for n in checkpoints]
        lines.append(f"| {s} | {f} | " + " | ".join(cells) + " |")
    lines += ["", "A run stopped by the trial or time cap keeps its last value for later columns.", "",
              "![hypervolume vs evaluations](multiobjective_benchmark.png)", ""]
    lines += _reading(rows, ceiling, checkpoints, budget)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "multiobjective_benchmark.md").write_text("\n".join(lines))
    _plot(rows, ceiling, out / "multiobjective_benchmark.png", args.dataset)
    print("\n".join(lines))
    return 0


def _reading(rows: dict, ceiling: dict, checkpoints: list[int], budget: int) -> list[str]:
    """The measured comparisons, stated from the numbers (no fixed conclusions)."""
    lines = ["## Reading", ""]
    for (s, f), row in rows.items():
        ref = rows[(s, "none")]
        if f != "none":
            early, late = (50 if 50 in checkpoints else checkpoints[0]), checkpoints[-1]
            d_early = row["curves"][:, early - 1].mean() - ref["curves"][:, early - 1].mean()
            d_late = row["curves"][:, late - 1].mean() - ref["curves"][:, late - 1].mean()
            lines.append(
                f"- **{s} + {f}** vs {s} alone: hypervolume {d_early:+.3f} after {early} evaluations, "
                f"{d_late:+.3f} after {late}; median evaluations to {TARGET:.0%}: "
                f"{_fmt_evals(ref['median'], budget)} → {_fmt_evals(row['median'], budget)} "
                f"({row['reached']}/{len(row['runs'])} runs reach it; the filter's ceiling is "
                f"{ceiling[f]:.1%}).")
    return lines + [""]


def _plot(rows: dict, ceiling: dict, path: Path, dataset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"none": "tab:blue", "dag_box": "tab:orange", "top_fraction": "tab:green"}
    fig, axes = plt.subplots(1, len(SAMPLERS), figsize=(5 * len(SAMPLERS), 4), sharey=True)
    for ax, s in zip(axes, SAMPLERS):
        for f in [f for f in FILTERS if (s, f) in rows]:
            c = rows[(s, f)]["curves"]
            x = np.arange(1, c.shape[1] + 1)
            mean, se = c.mean(axis=0), c.std(axis=0, ddof=1) / math.sqrt(len(c))
            ax.plot(x, mean, color=colors[f], label=f)
            ax.fill_between(x, mean - se, mean + se, color=colors[f], alpha=0.2)
            if f != "none":
                ax.axhline(ceiling[f], color=colors[f], ls=":", alpha=0.7)
        ax.axhline(TARGET, color="black", ls="--", lw=0.8, label=f"{TARGET:.0%} of the true front")
        ax.set_xscale("log")
        ax.set_title(s)
        ax.set_xlabel("evaluations")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("hypervolume / true front's")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"NB201 {dataset}: accuracy vs parameters (mean ± s.e.; dotted: a filter's ceiling)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
