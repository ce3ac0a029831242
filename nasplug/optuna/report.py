"""Summaries and plots of an architecture search, read back from the study's storage.

Everything is computed from the trials' states and the ``nasplug:*`` user attributes, so a report
can be written for any study — a finished one, one still running in other processes, or one
resumed from a storage file. Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nasplug.markup import table_cell
from nasplug.optuna.storage import retried, storage_url
from nasplug.plotting import pyplot
from nasplug.search.attrs import (
    ATTR_ARCH,
    ATTR_DUPLICATE_OF,
    ATTR_EVALUATED,
    ATTR_FAIL_REASON,
    ATTR_FALLBACK,
    ATTR_KEY,
    ATTR_REJECTED_BY,
    ATTR_TRIES,
)
from nasplug.search.config import SearchConfig
from nasplug.search.final import Comparison, FinalCell


@dataclass
class SearchSummary:
    """What a search did: trial counts by outcome, the best cells, the best-so-far curve, and for a
    training search the best cells' final runs (seeds, test once) and the noise comparison.

    Counters: ``n_rejected_proposals`` cells the filter rejected inside the sampler (they never
    became trials, nothing was trained); ``n_rejected`` trials the objective rejected before
    training (no passing cell was found); ``n_pruned`` trainings a pruner stopped early;
    ``n_retried`` trials interrupted or orphaned by a dead worker (not counted, re-enqueued).
    """

    study_name: str
    direction: str
    n_trials: int
    n_evaluated: int          # distinct trainings / lookups actually run
    n_duplicates: int         # completed by reusing a stored value (same key: not trained)
    n_rejected: int           # rejected by the filter in the objective, before training
    n_pruned: int             # stopped early by a pruner while training
    n_failed: int
    n_retried: int            # interrupted or dead worker: retried, not counted
    n_running: int
    n_waiting: int
    n_rejected_proposals: int  # proposals the sampler discarded (never became trials)
    fallbacks: dict[str, int] = field(default_factory=dict)
    fail_reasons: dict[str, int] = field(default_factory=dict)
    objective: str = ""
    metric: str = "value"
    trained: bool = False      # values come from training (rather than lookups or user code)
    best: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    final: list[dict[str, Any]] = field(default_factory=list)
    comparison: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def best_cells(study: optuna.Study, n: int) -> list[dict[str, Any]]:
    """The ``n`` best distinct cells (one per ``nasplug:key``, its evaluated trial), best first."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.value is not None and math.isfinite(t.value)]
    seen: set[str] = set()
    out = []
    for t in sorted(complete, key=lambda t: (-t.value if maximize else t.value, t.number)):
        key = t.user_attrs.get(ATTR_KEY, str(t.number))
        if key in seen:
            continue
        seen.add(key)
        out.append({"trial": t.number, "value": t.value, "arch": t.user_attrs.get(ATTR_ARCH, ""), "key": key})
        if len(out) >= n:
            break
    return out


def summarize(study: optuna.Study, top: int = 10, config: SearchConfig | None = None,
              final: Sequence[FinalCell] | None = None,
              comparison: Comparison | None = None) -> SearchSummary:
    """Summarize a study searched with :class:`~nasplug.optuna.ArchObjective`. For a multi-objective
    study ``best`` and ``history`` stay empty: its best cells are a Pareto front
    (:mod:`nasplug.optuna.pareto`)."""
    trials = study.get_trials(deepcopy=False)
    multi = len(study.directions) > 1
    maximize = not multi and study.direction == optuna.study.StudyDirection.MAXIMIZE
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    reasons: dict[str, int] = {}
    fallbacks: dict[str, int] = {}
    for t in trials:
        if t.state == TrialState.FAIL and not retried(t):
            reason = str(t.user_attrs.get(ATTR_FAIL_REASON, "exception")).split(":")[0]
            reasons[reason] = reasons.get(reason, 0) + 1
        if ATTR_FALLBACK in t.user_attrs:
            kind = t.user_attrs[ATTR_FALLBACK]
            fallbacks[kind] = fallbacks.get(kind, 0) + 1
    tries = [int(t.user_attrs[ATTR_TRIES]) for t in trials if ATTR_TRIES in t.user_attrs]
    history, running, n_eval = [], None, 0
    for t in [] if multi else complete:
        evaluated = bool(t.user_attrs.get(ATTR_EVALUATED))
        n_eval += evaluated
        if running is None or (t.value > running if maximize else t.value < running):
            running = t.value
        history.append({"trial": t.number, "value": t.value, "best": running, "evaluations": n_eval,
                        "duplicate": ATTR_DUPLICATE_OF in t.user_attrs})
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    return SearchSummary(
        study_name=study.study_name,
        direction=", ".join(d.name.lower() for d in study.directions),
        n_trials=len(trials),
        n_evaluated=sum(bool(t.user_attrs.get(ATTR_EVALUATED)) for t in complete),
        n_duplicates=sum(ATTR_DUPLICATE_OF in t.user_attrs for t in complete),
        n_rejected=sum(ATTR_REJECTED_BY in t.user_attrs for t in pruned),
        n_pruned=sum(ATTR_REJECTED_BY not in t.user_attrs for t in pruned),
        n_failed=sum(t.state == TrialState.FAIL and not retried(t) for t in trials),
        n_retried=sum(retried(t) for t in trials),
        n_running=sum(t.state == TrialState.RUNNING for t in trials),
        n_waiting=sum(t.state == TrialState.WAITING for t in trials),
        n_rejected_proposals=sum(max(n - 1, 0) for n in tries),
        fallbacks=fallbacks,
        fail_reasons=reasons,
        objective=config.describe() if config is not None else "",
        metric=config.metric if config is not None else "value",
        trained=config is not None and config.objective == "train",
        best=[] if multi else best_cells(study, top),
        history=history,
        final=[c.as_dict() for c in final or []],
        comparison=comparison.as_dict() if comparison is not None else None,
    )


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) and math.isfinite(x) else str(x)


def _pm(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.2f} ± {std:.2f}" if math.isfinite(std) else f"{mean:.2f}"


def outcome_lines(s: SearchSummary, filter_name: str = "the filter",
                  max_tries: int | None = None) -> list[str]:
    """The counters in words: what was trained, reused, rejected before training, stopped, failed."""
    verb = "trained" if s.trained else "evaluated"
    parts = [f"{s.n_evaluated} {verb}",
             f"{s.n_duplicates} duplicates (same network as an earlier trial: value reused, not {verb})"]
    if s.n_rejected:
        parts.append(f"{s.n_rejected} rejected by {filter_name} before training (no passing cell found)")
    if s.n_pruned:
        parts.append(f"{s.n_pruned} stopped early by the pruner")
    if s.n_failed:
        parts.append(f"{s.n_failed} failed {s.fail_reasons}")
    if s.n_retried:
        parts.append(f"{s.n_retried} interrupted or orphaned by a dead worker (not counted; retried)")
    if s.n_running or s.n_waiting:
        parts.append(f"{s.n_running} running, {s.n_waiting} waiting")
    lines = [f"{s.n_trials} trials: " + ", ".join(parts)]
    line = (f"{filter_name}: {s.n_rejected_proposals} proposals rejected before they became trials "
            "(never trained, never counted)")
    if s.fallbacks:
        tries = f"within --max-tries {max_tries}" if max_tries else "within the allowed tries"
        kinds = ", ".join(f"{n} x {FALLBACK_TEXT.get(k, k)}" for k, n in sorted(s.fallbacks.items()))
        line += f"; {sum(s.fallbacks.values())} trial(s) had no passing proposal {tries}: {kinds}"
    lines.append(line)
    return lines


#: What each filter fallback did (FilteredSampler's ``fallback``).
FALLBACK_TEXT = {"nearest": "the passing cell nearest to the last proposal was used",
                 "uniform": "a uniformly drawn passing cell was used",
                 "proposal": "the rejected proposal was kept (and rejected before training)",
                 "none_passes": "no cell passes (with its fixed edges): rejected before training"}


def final_lines(s: SearchSummary) -> list[str]:
    """The final runs of the best cells and the noise comparison, as text lines."""
    if not s.final:
        return []
    seeds = sorted({int(seed) for c in s.final for seed in c["runs"]})
    lines = [f"best cells retrained with seeds {', '.join(map(str, seeds))}, each run tested once "
             "(selected on validation; test only reported):",
             f"{'rank':>4}  {'search':>7}  {'validation':>15}  {'test':>15}  arch"]
    for i, c in enumerate(s.final):
        lines.append(f"{i + 1:>4}  {c['search_value']:>7.2f}  {_pm(c['valid_mean'], c['valid_std']):>15}  "
                     f"{_pm(c['test_mean'], c['test_std']):>15}  {c['arch']}")
    if s.comparison:
        fields = {k: v for k, v in s.comparison.items() if k != "ranking_within_noise"}
        lines.append(Comparison(**fields).sentence())
    return lines


def report_settings(config: SearchConfig) -> dict[str, Any]:
    """The settings a report lists: the study's identity and how the space was searched."""
    return {**config.identity(), "sampler": config.sampler, "seed": config.seed,
            "n_trials": config.n_trials, "max_tries": config.max_tries, "pruner": config.pruner,
            "storage_url": storage_url(config.storage)}


def header_lines(summary: SearchSummary, settings: dict[str, Any] | None = None) -> list[str]:
    """The report's title, what was measured, the settings and the trial outcomes (Markdown)."""
    s = summary
    lines = [f"# Architecture search `{s.study_name}`", ""]
    if s.objective:
        lines += [f"**What was measured.** {s.objective[0].upper()}{s.objective[1:]}.", ""]
    if settings:
        lines += ["| setting | value |", "| --- | --- |"]
        lines += [f"| {k} | `{v}` |" for k, v in settings.items()]
        lines.append("")
    lines += [f"- {line}" for line in outcome_lines(s, f"filter `{(settings or {}).get('filter', '?')}`",
                                                     (settings or {}).get("max_tries"))]
    return lines + [""]


def markdown(summary: SearchSummary, settings: dict[str, Any] | None = None) -> str:
    """The summary as a Markdown report."""
    s = summary
    lines = header_lines(s, settings)
    lines += [f"## Best architectures by {s.metric} ({s.direction})", "",
              "| rank | trial | value | architecture |", "| --- | --- | --- | --- |"]
    lines += [f"| {i + 1} | {b['trial']} | {_fmt(b['value'])} | `{table_cell(b['arch'])}` |"
              for i, b in enumerate(s.best)]
    if s.final:
        final = final_lines(s)
        lines += ["", "## Final runs: the best cells, several seeds, test once", "", final[0], "",
                  "| rank | search value | validation (mean ± std) | test (mean ± std) | architecture |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {i + 1} | {c['search_value']:.2f} | {_pm(c['valid_mean'], c['valid_std'])} | "
                  f"{_pm(c['test_mean'], c['test_std'])} | `{table_cell(c['arch'])}` |"
                  for i, c in enumerate(s.final)]
        if s.comparison:
            lines += ["", final[-1][0].upper() + final[-1][1:] + "."]
    lines += ["", "![optimization history](history.png)", "", "![trial outcomes](outcomes.png)", ""]
    return "\n".join(lines)


def write_report(study: optuna.Study, out: str | Path, config: SearchConfig | None = None, top: int = 10,
                 final: Sequence[FinalCell] | None = None, comparison: Comparison | None = None,
                 extra_settings: dict[str, Any] | None = None) -> SearchSummary:
    """Write ``summary.json``, ``summary.md``, ``history.png`` and ``outcomes.png`` under ``out``;
    ``extra_settings`` (e.g. a backend's own) are listed with the config's."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(study, top, config, final, comparison)
    settings = {**(report_settings(config) if config is not None else {}), **(extra_settings or {})}
    payload = {"config": settings, **summary.as_dict()}
    (out / "summary.json").write_text(json.dumps(payload, indent=2, default=str))
    (out / "summary.md").write_text(markdown(summary, settings))
    plot_history(summary, out / "history.png")
    plot_outcomes(summary, out / "outcomes.png")
    return summary


def plot_history(summary: SearchSummary, path: Path) -> None:
    """Objective value of every completed trial and the best so far, by trial number."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    h = summary.history
    if h:
        new = [r for r in h if not r["duplicate"]]
        dup = [r for r in h if r["duplicate"]]
        ax.scatter([r["trial"] for r in new], [r["value"] for r in new], s=12, alpha=0.6,
                   label="evaluated", color="tab:blue")
        if dup:
            ax.scatter([r["trial"] for r in dup], [r["value"] for r in dup], s=12, alpha=0.6,
                       marker="x", label="duplicate (value reused)", color="tab:gray")
        ax.step([r["trial"] for r in h], [r["best"] for r in h], where="post", color="tab:red",
                label="best so far")
        ax.legend(loc="lower right" if summary.direction == "maximize" else "upper right")
    else:
        ax.text(0.5, 0.5, "no completed trials yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("trial")
    ax.set_ylabel(summary.metric)
    ax.set_title(f"optimization history — {summary.study_name}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_outcomes(summary: SearchSummary, path: Path) -> None:
    """Where the search effort went: proposals rejected by the filter (never trials), trials
    rejected before training, stopped by the pruner, failed, duplicates and evaluated ones."""
    plt = pyplot()
    labels = ["proposals\nrejected\n(no trial)", "trials\nrejected\nbefore training",
              "stopped\nby pruner", "failed", "duplicates\n(not trained)", "evaluated"]
    values = [summary.n_rejected_proposals, summary.n_rejected, summary.n_pruned, summary.n_failed,
              summary.n_duplicates, summary.n_evaluated]
    colors = ["tab:orange", "tab:purple", "tab:brown", "tab:red", "tab:gray", "tab:blue"]
    fig, ax = plt.subplots(figsize=(8, 4))
    bars = ax.bar(labels, values, color=colors)
    for bar, v in zip(bars, values):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), str(v), ha="center", va="bottom")
    ax.set_ylabel("count")
    ax.set_title("rejected before training (never trained) vs trained", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
