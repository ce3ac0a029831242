"""Summaries and plots of an architecture search, read back from the study's storage.

Everything is computed from the trials' states and the ``nasplug:*`` user attributes, so a report
can be written for any study — a finished one, one still running in other processes, or one
resumed from a storage file. Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nasplug.plotting import pyplot
from nasplug.search.attrs import (
    ATTR_ARCH,
    ATTR_DUPLICATE_OF,
    ATTR_EVALUATED,
    ATTR_FAIL_REASON,
    ATTR_FALLBACK,
    ATTR_KEY,
    ATTR_TRIES,
)


@dataclass
class SearchSummary:
    """What a search did: trial counts by outcome, the best cells, the best-so-far curve."""

    study_name: str
    direction: str
    n_trials: int
    n_evaluated: int          # distinct trainings / lookups actually run
    n_duplicates: int         # completed by reusing a stored value (same canonical key)
    n_pruned: int             # rejected by the objective before training (or by a pruner)
    n_failed: int
    n_running: int
    n_rejected_proposals: int  # proposals the sampler discarded (never became trials)
    n_fallbacks: int
    fail_reasons: dict[str, int] = field(default_factory=dict)
    best: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(study: optuna.Study, top: int = 10) -> SearchSummary:
    """Summarize a study searched with :class:`~nasplug.optuna.ArchObjective`. For a multi-objective
    study ``best`` and ``history`` stay empty: its best cells are a Pareto front
    (:mod:`nasplug.optuna.pareto`)."""
    trials = study.get_trials(deepcopy=False)
    multi = len(study.directions) > 1
    maximize = not multi and study.direction == optuna.study.StudyDirection.MAXIMIZE
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    reasons: dict[str, int] = {}
    for t in trials:
        if t.state == TrialState.FAIL:
            reason = str(t.user_attrs.get(ATTR_FAIL_REASON, "exception")).split(":")[0]
            reasons[reason] = reasons.get(reason, 0) + 1
    tries = [int(t.user_attrs[ATTR_TRIES]) for t in trials if ATTR_TRIES in t.user_attrs]
    # Best distinct cells: one row per canonical key (its first evaluation).
    seen: set[str] = set()
    ranked = [] if multi else sorted(complete, key=lambda t: t.value, reverse=maximize)
    best = []
    for t in ranked:
        key = t.user_attrs.get(ATTR_KEY, str(t.number))
        if key in seen:
            continue
        seen.add(key)
        best.append({"trial": t.number, "value": t.value, "arch": t.user_attrs.get(ATTR_ARCH, ""),
                     "key": key})
        if len(best) >= top:
            break
    history, running, n_eval = [], None, 0
    for t in [] if multi else complete:
        evaluated = bool(t.user_attrs.get(ATTR_EVALUATED))
        n_eval += evaluated
        if running is None or (t.value > running if maximize else t.value < running):
            running = t.value
        history.append({"trial": t.number, "value": t.value, "best": running, "evaluations": n_eval,
                        "duplicate": ATTR_DUPLICATE_OF in t.user_attrs})
    return SearchSummary(
        study_name=study.study_name,
        direction=", ".join(d.name.lower() for d in study.directions),
        n_trials=len(trials),
        n_evaluated=sum(bool(t.user_attrs.get(ATTR_EVALUATED)) for t in complete),
        n_duplicates=sum(ATTR_DUPLICATE_OF in t.user_attrs for t in complete),
        n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
        n_failed=sum(t.state == TrialState.FAIL for t in trials),
        n_running=sum(t.state == TrialState.RUNNING for t in trials),
        n_rejected_proposals=sum(max(n - 1, 0) for n in tries),
        n_fallbacks=sum(ATTR_FALLBACK in t.user_attrs for t in trials),
        fail_reasons=reasons,
        best=best,
        history=history,
    )


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) and math.isfinite(x) else str(x)


def outcome_lines(summary: SearchSummary, config: dict[str, Any] | None = None) -> list[str]:
    """The report's title, settings and trial outcomes (Markdown lines)."""
    s = summary
    lines = [f"# Architecture search `{s.study_name}`", ""]
    if config:
        lines += ["| setting | value |", "| --- | --- |"]
        lines += [f"| {k} | `{v}` |" for k, v in config.items()]
        lines.append("")
    lines += [
        "| outcome | trials |", "| --- | --- |",
        f"| evaluated (trained / looked up) | {s.n_evaluated} |",
        f"| completed from the duplicate cache | {s.n_duplicates} |",
        f"| pruned before training | {s.n_pruned} |",
        f"| failed | {s.n_failed} {s.fail_reasons or ''} |",
        f"| still running | {s.n_running} |",
        f"| **total trials** | **{s.n_trials}** |",
        "",
        f"The sampler discarded {s.n_rejected_proposals} proposals that failed the filter (they never "
        f"became trials); {s.n_fallbacks} trials used the fallback after `max_tries`.",
        "",
    ]
    return lines


def markdown(summary: SearchSummary, config: dict[str, Any] | None = None) -> str:
    """The summary as a Markdown report."""
    s = summary
    lines = [
        *outcome_lines(s, config),
        f"## Best architectures ({s.direction})", "",
        "| rank | trial | value | architecture |", "| --- | --- | --- | --- |",
    ]
    lines += [f"| {i + 1} | {b['trial']} | {_fmt(b['value'])} | `{b['arch']}` |"
              for i, b in enumerate(s.best)]
    lines += ["", "![optimization history](history.png)", "", "![trial outcomes](outcomes.png)", ""]
    return "\n".join(lines)


def write_report(study: optuna.Study, out: str | Path, config: dict[str, Any] | None = None,
                 top: int = 10) -> SearchSummary:
    """Write ``summary.json``, ``summary.md``, ``history.png`` and ``outcomes.png`` under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(study, top)
    payload = {"config": config or {}, **summary.as_dict()}
    (out / "summary.json").write_text(json.dumps(payload, indent=2, default=str))
    (out / "summary.md").write_text(markdown(summary, config))
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
    ax.set_ylabel("objective value")
    ax.set_title(f"optimization history — {summary.study_name}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_outcomes(summary: SearchSummary, path: Path) -> None:
    """Where the search effort went: rejected proposals vs pruned, failed, duplicate, evaluated."""
    plt = pyplot()
    labels = ["rejected\nproposals", "pruned\ntrials", "failed\ntrials", "duplicates\n(reused)",
              "evaluated\ntrials"]
    values = [summary.n_rejected_proposals, summary.n_pruned, summary.n_failed, summary.n_duplicates,
              summary.n_evaluated]
    colors = ["tab:orange", "tab:purple", "tab:red", "tab:gray", "tab:blue"]
    fig, ax = plt.subplots(figsize=(7, 4))
    bars = ax.bar(labels, values, color=colors)
    for bar, v in zip(bars, values):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), str(v), ha="center", va="bottom")
    ax.set_ylabel("count")
    ax.set_title("pruned (never trained) vs completed", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
