"""The report of a multi-objective search: its Pareto front, hypervolume over the search, and — for a
benchmark-table lookup — the space's true front next to the one found.

Read back from the study's storage like :mod:`nasplug.optuna.report` (whose trial-outcome counts it
shares), so it can be written for a finished, running or resumed study. Writes under the output
folder ``summary.md`` / ``summary.json`` (the front as the best architectures), ``pareto.png``
(accuracy against each cost: every trial, the found front, the true front) and ``hypervolume.png``
(normalized hypervolume against the number of evaluations).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from nasplug.markup import table_cell
from nasplug.nasbench import load_benchmark
from nasplug.optuna.report import SearchSummary, header_lines, plot_outcomes, summarize
from nasplug.plotting import pyplot
from nasplug.search import SearchConfig
from nasplug.search.attrs import ATTR_ARCH, ATTR_DUPLICATE_OF, ATTR_EVALUATED, ATTR_KEY
from nasplug.search.objectives import OBJECTIVES, ObjectiveSet
from nasplug.search.pareto import Bounds, hypervolume, hypervolume_history, pareto_mask
from nasplug.search_spaces import ProductSpace
from nasplug.search_spaces import get as get_space


@dataclass
class Points:
    """Objective vectors with the cells they belong to."""

    values: np.ndarray            # (N, M)
    archs: list[str]
    trials: list[int | None]      # trial numbers (None for cells of the space's true front)
    keys: list[str]               # canonical keys (the architecture for the true front)
    duplicate: list[bool]         # value reused from an equal function

    def rows(self, names: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{"trial": t, "arch": a, "duplicate": d, **dict(zip(names, v.tolist()))}
                for t, a, d, v in zip(self.trials, self.archs, self.duplicate, self.values)]

    def take(self, index: list[int]) -> Points:
        return Points(self.values[index], *([x[i] for i in index] for x in
                                            (self.archs, self.trials, self.keys, self.duplicate)))


def completed_points(study: optuna.Study) -> tuple[Points, np.ndarray]:
    """The completed trials' vectors (trial order) and the number of evaluations run by each one's
    end (a duplicate reuses a value: it adds a point, not an evaluation)."""
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.values is not None]
    values = np.array([t.values for t in trials], dtype=np.float64).reshape(len(trials), -1)
    evaluations = np.cumsum([bool(t.user_attrs.get(ATTR_EVALUATED)) for t in trials], dtype=np.int64)
    points = Points(values, [t.user_attrs.get(ATTR_ARCH, "") for t in trials], [t.number for t in trials],
                    [t.user_attrs.get(ATTR_KEY, str(t.number)) for t in trials],
                    [ATTR_DUPLICATE_OF in t.user_attrs for t in trials])
    return points, evaluations


def front(points: Points, directions: tuple[str, ...]) -> Points:
    """The non-dominated points, one per key (its first occurrence), ordered by the first objective
    from best to worst."""
    seen: set[str] = set()
    keep = []
    for i in np.flatnonzero(pareto_mask(points.values, directions)):
        if points.keys[i] not in seen:
            seen.add(points.keys[i])
            keep.append(int(i))
    sign = -1.0 if directions[0] == "maximize" else 1.0
    keep.sort(key=lambda i: (sign * points.values[i, 0], tuple(points.values[i, 1:])))
    return points.take(keep)


def table_truth(config: SearchConfig, objectives: ObjectiveSet) -> np.ndarray | None:
    """``(size, M)`` true vectors of every cell when the search looks accuracies up in a table (and
    the objectives are computable for the whole space: no latency); ``None`` otherwise."""
    space = get_space(config.space)
    if config.objective != "table" or "latency" in objectives.names or not space.enumerable:
        return None
    table = load_benchmark(config.benchmark)
    accuracy = table.aligned(space, np.arange(space.size), config.dataset)
    return objectives.space_vectors(space, accuracy)


def true_front(space: ProductSpace, truth: np.ndarray, directions: tuple[str, ...]) -> Points:
    """The space's own Pareto front from its ``(size, M)`` true vectors."""
    index = np.flatnonzero(pareto_mask(truth, directions))
    archs = [str(space.decode(int(i))) for i in index]
    return front(Points(truth[index], archs, [None] * len(index), archs, [False] * len(index)), directions)


@dataclass
class ParetoReport:
    """What :func:`write_pareto_report` found; ``summary.best`` holds the front's rows."""

    summary: SearchSummary
    names: tuple[str, ...]
    bounds: Bounds | None
    hypervolume: float | None
    true_hypervolume: float | None
    true_front: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {**self.summary.as_dict(), "objectives": list(self.names),
                "bounds": None if self.bounds is None else {"ideal": self.bounds.ideal,
                                                             "nadir": self.bounds.nadir},
                "hypervolume": self.hypervolume, "true_hypervolume": self.true_hypervolume,
                "true_front": self.true_front}


def write_pareto_report(study: optuna.Study, out: str | Path, config: SearchConfig,
                        settings: dict[str, Any] | None = None) -> ParetoReport:
    """Write ``summary.md/json``, ``outcomes.png``, ``pareto.png`` and ``hypervolume.png`` of a
    multi-objective search under ``out``; ``settings`` are listed at the top of the report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    objectives = config.objective_set()
    names, directions = objectives.names, objectives.directions
    space = get_space(config.space)
    summary = summarize(study, config=config)
    points, evaluations = completed_points(study)
    found = front(points, directions)
    summary.best = found.rows(names)
    truth = table_truth(config, objectives)
    actual = true_front(space, truth, directions) if truth is not None else None
    bounds = hv = true_hv = history = None
    if len(points.values):
        bounds = objectives.bounds(space, points.values, actual.values if actual is not None else None)
        history = hypervolume_history(points.values, bounds)
        hv = float(history[-1])
        true_hv = hypervolume(actual.values, bounds) if actual is not None else None
    report = ParetoReport(summary, names, bounds, hv, true_hv,
                          actual.rows(names) if actual is not None else [])
    (out / "summary.json").write_text(json.dumps({"config": settings or {}, **report.as_dict()}, indent=2,
                                                 default=str))
    (out / "summary.md").write_text(_markdown(report, settings, objectives))
    plot_outcomes(summary, out / "outcomes.png")
    plot_fronts(points, found, actual, names, directions, out / "pareto.png")
    plot_hypervolume(evaluations, history, true_hv, out / "hypervolume.png")
    return report


def _cell(name: str, value: float) -> str:
    if name == "accuracy":
        return f"{value:.2f}"
    if name == "latency":
        return f"{value:.3f}"
    return f"{value:,.0f}"


def _table(rows: list[dict[str, Any]], names: tuple[str, ...], trial: bool = True) -> list[str]:
    head = ["#", *(["trial"] if trial else []), *names, "architecture"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for i, r in enumerate(rows):
        cells = [str(i + 1), *([f"{r['trial']}" + (" (dup)" if r.get("duplicate") else "")] if trial else []),
                 *(_cell(n, r[n]) for n in names), f"`{table_cell(r['arch'])}`"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _markdown(report: ParetoReport, settings: dict[str, Any] | None, objectives: ObjectiveSet) -> str:
    names = report.names
    units = ", ".join(f"{o.name} ({o.direction[:3]}, {o.unit})" for o in objectives.objectives)
    lines = header_lines(report.summary, settings)
    n = len(report.summary.best)
    lines += [f"## Pareto front found ({n} cell{'s' if n != 1 else ''})", "",
              f"Objectives: {units}; costs are those of `{objectives.network}` (live edges). "
              "A cell on the front is better than every other evaluated cell in at least one objective; "
              "(dup) marks a duplicate whose accuracy was reused from an equal function.", ""]
    lines += _table(report.summary.best, names)
    if report.hypervolume is not None:
        b = report.bounds
        lines += ["", "## Hypervolume", "",
                  f"Normalized hypervolume of the found front: **{report.hypervolume:.4f}** (fraction of "
                  "the box "
                  f"between the ideal {_point(b.ideal, names)} and the nadir {_point(b.nadir, names)}, "
                  "reference point at the nadir" + ("; both from the space's true front)."
                                                    if report.true_front
                                                    else ": a fixed box, see docs/multiobjective.md).")]
        if report.true_hypervolume:
            lines.append(f"The space's true front: {report.true_hypervolume:.4f}; the search reached "
                         f"**{report.hypervolume / report.true_hypervolume:.1%}** of it.")
    if report.true_front:
        lines += ["", f"## True Pareto front of the space ({len(report.true_front)} cells, from the table)",
                  ""]
        lines += _table(report.true_front, names, trial=False)
    lines += ["", "![Pareto front](pareto.png)", "", "![hypervolume](hypervolume.png)", "",
              "![trial outcomes](outcomes.png)", ""]
    return "\n".join(lines)


def _point(values: tuple[float, ...], names: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"{n} {_cell(n, v)}" for n, v in zip(names, values)) + ")"


def plot_fronts(points: Points, found: Points, actual: Points | None, names: tuple[str, ...],
                directions: tuple[str, ...], path: Path) -> None:
    """Accuracy against each cost: every completed trial, the found front (numbered as in the
    report's table) and the true front when known."""
    plt = pyplot()
    acc = names.index("accuracy")
    costs = [i for i in range(len(names)) if i != acc]
    fig, axes = plt.subplots(1, len(costs), figsize=(6.5 * len(costs), 4.5), squeeze=False)
    for ax, c in zip(axes[0], costs):
        if len(points.values):
            ax.scatter(points.values[:, c], points.values[:, acc], s=10, color="tab:gray", alpha=0.5,
                       label="trials")
        for pts, color, label in ((actual, "tab:red", "true front"), (found, "tab:blue", "found front")):
            if pts is None or not len(pts.values):
                continue
            if len(costs) == 1:  # the attainment curve (a projection of a 3-D front is no curve)
                order = np.argsort(pts.values[:, c])
                ax.step(pts.values[order, c], pts.values[order, acc], where="post", color=color, alpha=0.8)
            ax.scatter(pts.values[:, c], pts.values[:, acc], s=22, color=color, label=label, zorder=3)
        if len(costs) == 1:  # numbered as in the table (with several costs the 2-D projections overlap)
            for i, v in enumerate(found.values):
                ax.annotate(str(i + 1), (v[c], v[acc]), textcoords="offset points", xytext=(3, 3), fontsize=7)
        ax.set_xlabel(f"{names[c]} ({OBJECTIVES[names[c]][1]}" + (", log)" if names[c] in ("params", "flops")
                                                                  else ")"))
        if names[c] in ("params", "flops"):
            ax.set_xscale("log")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle("Pareto front: " + " vs ".join(f"{n} ({d[:3]})" for n, d in zip(names, directions)),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_hypervolume(evaluations: np.ndarray, history: np.ndarray | None, true_hv: float | None,
                     path: Path) -> None:
    """Normalized hypervolume of the trials so far against the number of evaluations."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    if history is not None and len(history):
        ax.step(evaluations, history, where="post", color="tab:blue", label="found")
        if true_hv:
            ax.axhline(true_hv, color="tab:red", ls="--", label="true front")
            ax.axhline(0.95 * true_hv, color="tab:red", ls=":", alpha=0.6, label="95 % of the true front")
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "no completed trials yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("evaluations (trainings / lookups; duplicates reuse a value)")
    ax.set_ylabel("normalized hypervolume")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
