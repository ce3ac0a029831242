"""The ``nasplug rank --benchmark`` report: tables in Markdown (and rendered as HTML) plus PNG figures.

What it shows, per dataset:

* rank quality of every scorer against the true accuracy (Spearman ρ, Kendall τ, top-k precision,
  and the largest fraction of the space that can be pruned while keeping all of the true top-k);
* every filter's effect: share of the space kept, accuracy of kept vs removed cells, share of the
  true top-k kept;
* random search with and without each filter, and the [C22] WOT-style search (sample N cells,
  keep the best-scored one) with and without each filter, by table lookup;
* figures: score vs accuracy, the (d̄, m̄) map coloured by mean accuracy with the filter boxes
  drawn ([C22] Fig. 5), and the pre-filter curves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasplug import scorers
from nasplug.checks import integer, writable_dir
from nasplug.markup import markdown_to_html
from nasplug.nasbench.analysis import filter_stats, random_search, score_guided_search
from nasplug.nasbench.metrics import (
    filter_point,
    prefilter_curve,
    rank_quality,
    resolve_k,
)
from nasplug.nasbench.table import SHORT_NAMES
from nasplug.plotting import pyplot
from nasplug.scorers import oriented

KS: tuple[int | str, ...] = (1, 10, "1%")
BUDGETS = (10, 30, 100, 300, 1000)
WOT_SAMPLES = (10, 100, 1000)


# ---------------------------------------------------------------------- a tiny document model
@dataclass
class Doc:
    """Blocks of a report, written as Markdown; the HTML page is that Markdown rendered."""

    blocks: list[tuple] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.blocks.append(("table", list(header), [list(map(str, r)) for r in rows]))

    def img(self, path: str, alt: str) -> None:
        self.blocks.append(("img", path, alt))

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out.append("#" * b[1] + " " + b[2])
            elif b[0] == "p":
                out.append(b[1])
            elif b[0] == "table":
                out.append("| " + " | ".join(b[1]) + " |")
                out.append("|" + "|".join(" --- " for _ in b[1]) + "|")
                out.extend("| " + " | ".join(r) + " |" for r in b[2])
            else:
                out.append(f"![{b[2]}]({b[1]})")
            out.append("")
        return "\n".join(out)

    def html(self, title: str) -> str:
        """The Markdown rendered as a standalone HTML page (:mod:`nasplug.markup`)."""
        return markdown_to_html(self.markdown(), title)


def _f(x: float, digits: int = 3) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _pct(x: float, digits: int = 1) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{100 * x:.{digits}f} %"


# ---------------------------------------------------------------------- figures
def plot_scatter(path: Path, scores: dict[str, np.ndarray], truth: np.ndarray,
                 higher: dict[str, bool], dataset: str, benchmark: str = "NAS-Bench-201",
                 truth_name: str = "test accuracy") -> Path:
    """Score vs accuracy, one panel per scorer, ρ and τ in the panel titles."""
    plt = pyplot()
    names = list(scores)[:9]
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    ok = np.isfinite(truth)
    for ax, name in zip(axes.flat, names):
        x = np.asarray(scores[name], dtype=np.float64)
        q = rank_quality(oriented(x, higher[name]), truth, ks=())
        m = ok & np.isfinite(x)
        ax.scatter(x[m], truth[m], s=3, alpha=0.15, color="tab:blue", rasterized=True, linewidths=0)
        pos = np.abs(x[m][x[m] != 0])
        if len(pos) and pos.max() / max(np.median(pos), 1e-300) > 50:
            ax.set_xscale("symlog", linthresh=float(np.percentile(pos, 5)))
        ax.set_title(f"{name}\nρ = {q.spearman:.3f}, τ = {q.kendall:.3f}", fontsize=10)
        ax.set_xlabel(name + ("" if higher[name] else " (lower is better)"), fontsize=9)
        ax.set_ylabel(f"{SHORT_NAMES.get(dataset, dataset)} {truth_name} (%)", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(f"Training-free scores vs {benchmark} {truth_name} ({dataset}, {int(ok.sum()):,} cells)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_dmap(path: Path, depth: np.ndarray, width: np.ndarray, truth: np.ndarray,
              boxes: dict[str, tuple[tuple[float, float], tuple[float, float]]], dataset: str,
              benchmark: str = "NAS-Bench-201", truth_name: str = "test accuracy") -> Path:
    """[C22] Fig. 5: each (d̄, m̄) value as a dot coloured by the mean accuracy of its cells,
    dot area by how many cells share it, with the filter boxes drawn."""
    plt = pyplot()
    from matplotlib.patches import Rectangle

    ok = np.isfinite(truth)
    key = np.round(np.stack([depth[ok], width[ok]], axis=1), 9)
    uniq, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    mean = np.bincount(inverse.ravel(), weights=truth[ok]) / counts
    fig, ax = plt.subplots(figsize=(7.5, 5.8))
    # the colour scale spans the cells with a parameterized path: the d̄ = 0 cells (no conv on any
    # path, ~10-60 %) would otherwise squeeze every interesting difference into one colour
    live = uniq[:, 0] > 0
    vmin = float(mean[live].min()) if live.any() else None
    sc = ax.scatter(uniq[:, 0], uniq[:, 1], c=mean, s=12 + 400 * np.sqrt(counts / counts.max()),
                    cmap="viridis", edgecolors="k", linewidths=0.4, vmin=vmin)
    cb = fig.colorbar(sc, ax=ax, extend="min" if vmin is not None else "neither")
    cb.set_label(f"mean {SHORT_NAMES.get(dataset, dataset)} {truth_name} (%)")
    styles = [("tab:red", "-"), ("tab:orange", "--"), ("tab:purple", ":")]
    for (name, ((d0, d1), (m0, m1))), (color, ls) in zip(boxes.items(), styles):
        ax.add_patch(Rectangle((d0, m0), d1 - d0, m1 - m0, fill=False, edgecolor=color, linestyle=ls,
                               linewidth=2, label=f"{name}: {d0:.3g}≤d̄≤{d1:.3g}, {m0:.3g}≤m̄≤{m1:.3g}"))
    ax.set_xlabel("effective depth d̄")
    ax.set_ylabel("effective width m̄")
    ax.set_title(f"(d̄, m̄) map of {benchmark}, {dataset} (dot area ∝ √#cells)")
    if boxes:
        ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_prefilter(path: Path, scores: dict[str, np.ndarray], truth: np.ndarray,
                   higher: dict[str, bool], keeps: dict[str, np.ndarray], dataset: str,
                   ks: Sequence[int | str] = KS) -> Path:
    """Fraction of the true top-k kept vs fraction of the space pruned, one panel per k."""
    plt = pyplot()
    n = int(np.isfinite(truth).sum())
    fig, axes = plt.subplots(1, len(ks), figsize=(5.2 * len(ks), 4.3), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, k in zip(axes.flat, ks):
        kk = resolve_k(k, n)
        for i, (name, s) in enumerate(scores.items()):
            c = prefilter_curve(oriented(s, higher[name]), truth, kk)
            ax.step(c.pruned, c.kept, where="post", color=colors[i % len(colors)], label=name, lw=1.6)
        for j, (name, keep) in enumerate(keeps.items()):
            x, y = filter_point(keep, truth, kk)
            ax.plot([x], [y], marker="s^Dv"[j % 4], ms=9, color="k", ls="none", label=f"filter {name}")
        ax.axvline(0.9, color="grey", ls=":", lw=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("fraction of the space pruned")
        ax.set_ylabel(f"fraction of the true top-{k} kept" + (f" ({kk})" if isinstance(k, str) else ""))
        ax.set_title(f"top-{k}, {dataset}")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------- the report
#: How the report describes each benchmark's cells and ground truth.
BENCHMARKS = {
    "nb201": ("NAS-Bench-201", "test accuracy after 200 epochs, mean over seeds"),
    "nb101": ("NAS-Bench-101", "accuracy at 108 epochs"),
    "nb301": ("NAS-Bench-301 (DARTS)", "accuracy"),
    "cells": ("a table of cells", "the table's metric"),
}


def write_report(out: str | Path, *, result, truths: dict[str, np.ndarray],
                 higher: dict[str, bool], source: str, primary: str, benchmark: str = "nb201",
                 metric: str = "test_accuracy",
                 boxes: dict[str, tuple[tuple[float, float], tuple[float, float]]] | None = None,
                 seeds: int = 1000, html_report: bool = True, plots: bool = True) -> dict[str, Path]:
    """Write ``report.md`` (and ``report.html``, its rendering) and the PNG figures into ``out``.

    Parameters
    ----------
    result
        A :class:`nasplug.ranking.SpaceScores` (scores and filter flags of the cells: a space's, or
        a list's such as a benchmark table's).
    benchmark, metric
        Which benchmark the cells are from (a key of :data:`BENCHMARKS`) and the ground-truth
        metric (``test_accuracy``, ``valid_accuracy``, ...).
    truths
        ``dataset -> accuracy`` arrays aligned with ``result.indices`` (NaN: not in the benchmark).
    higher
        Orientation of every scorer in ``result.scores``.
    primary
        The scorer that drives the WOT-style search.
    boxes
        Box filters to draw on the (d̄, m̄) map: name -> ((d̄ low, high), (m̄ low, high)).

    Returns
    -------
    The written files by role (``"markdown"``, ``"html"``, ``"scatter_<dataset>"``, ...).
    Raises :class:`~nasplug.errors.NasplugError` for ``seeds < 1`` or an ``out`` that cannot be
    written, before writing anything.
    """
    integer("seeds", seeds, 1)
    out = writable_dir(out, "report folder")
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    doc = Doc()
    n = len(result.indices)
    bench_name, truth_text = BENCHMARKS.get(benchmark, BENCHMARKS["cells"])
    truth_name = metric.replace("_", " ")
    label = result.space.name if result.space is not None else benchmark
    doc.h(1, f"nasplug rank: {label} against {Path(source).name}")
    doc.p(f"{n:,} cells of {bench_name} scored with {', '.join(f'`{s}`' for s in result.scores)}; "
          f"ground truth: `{metric}` ({truth_text}) from `{source}`. "
          "Scores use no training and no data; the accuracy table is used only to evaluate them.")
    doc.p("Rank metrics: Spearman ρ and Kendall τ-b over all cells; P@k = share of the true top-k "
          "among the k best-scored cells (score ties broken by cell index); 'prune@k' = the largest "
          "share of the space a threshold on the score removes while keeping **all** of the true top-k "
          "(ties count pessimistically: a threshold keeps a whole group of equal scores or none of it).")
    topo = {}
    if plots:
        batch_scores = {nm: scorers.get(nm).score_many(result.cells())
                        for nm in ("effective_depth", "effective_width") if nm not in result.scores}
        topo = {nm: result.scores.get(nm, batch_scores.get(nm))
                for nm in ("effective_depth", "effective_width")}
    for dataset, truth in truths.items():
        short = SHORT_NAMES.get(dataset, dataset)
        n_ok = int(np.isfinite(truth).sum())
        doc.h(2, f"{dataset} ({n_ok:,} cells with a result; best {np.nanmax(truth):.2f} %)")
        doc.h(3, "Rank quality")
        rows = []
        for name, s in result.scores.items():
            q = rank_quality(oriented(s, higher[name]), truth, KS)
            rows.append([f"`{name}`" + ("" if higher[name] else " (↓)"), _f(q.spearman), _f(q.kendall),
                         *(_f(q.precision[str(k)], 2) for k in KS),
                         *(_pct(q.max_pruned[str(k)]) for k in KS)])
        doc.table(["scorer", "ρ", "τ", *(f"P@{k}" for k in KS), *(f"prune@{k}" for k in KS)], rows)
        if result.keep:
            doc.h(3, "Filters")
            rows = []
            for name, keep in result.keep.items():
                fs = filter_stats(name, keep, truth, KS)
                rows.append([f"`{name}`", f"{fs.kept:,} ({_pct(fs.kept_fraction)})",
                             f"{_f(fs.kept_mean, 2)} / {_f(fs.removed_mean, 2)}",
                             f"{_f(fs.kept_median, 2)} / {_f(fs.removed_median, 2)}",
                             f"{_f(fs.kept_best, 2)} / {_f(fs.removed_best, 2)}",
                             *(_pct(fs.top_kept[str(k)], 0) for k in KS)])
            doc.table(["filter", "kept", "mean acc kept / removed", "median kept / removed",
                       "best kept / removed", *(f"top-{k} kept" for k in KS)], rows)
            doc.h(3, "Search by table lookup, with and without the filters")
            doc.p(f"Random search: best true accuracy among K distinct uniformly sampled cells; "
                  f"WOT-style: sample N cells, train only the best by `{primary}` (ties broken at "
                  f"random) — the table-lookup analogue of [C22] Table 2's WOT and WOT+DAG. Mean ± std "
                  f"over {seeds:,} seeds; 'opt' = share of seeds that reach the benchmark optimum.")
            pools = {"whole space": None, **{f"`{k}`": v for k, v in result.keep.items()}}
            rows = []
            for label, keep in pools.items():
                rs = random_search(truth, BUDGETS, keep=keep, seeds=seeds)
                rows.append([f"random, {label}",
                             *(f"{_f(m, 2)} ± {_f(s, 2)}" for m, s in zip(rs.mean, rs.std))])
            doc.table(["search", *(f"K = {b}" for b in BUDGETS)], rows)
            rows = []
            s = oriented(result.scores[primary], higher[primary])
            for label, keep in pools.items():
                gs = score_guided_search(s, truth, WOT_SAMPLES, keep=keep, seeds=seeds)
                rows.append([f"best `{primary}`, {label}",
                             *(f"{_f(m, 2)} ± {_f(d, 2)}" for m, d in zip(gs.mean, gs.std))])
            doc.table(["search", *(f"N = {b}" for b in WOT_SAMPLES)], rows)
        if plots:
            doc.h(3, "Figures")
            p = plot_scatter(out / f"scatter_{short}.png", result.scores, truth, higher, dataset, bench_name,
                             truth_name)
            written[f"scatter_{dataset}"] = p
            doc.img(p.name, f"score vs accuracy, {dataset}")
            p = plot_dmap(out / f"dmap_{short}.png", topo["effective_depth"], topo["effective_width"],
                          truth, boxes or {}, dataset, bench_name, truth_name)
            written[f"dmap_{dataset}"] = p
            doc.img(p.name, f"(d̄, m̄) map, {dataset}")
            p = plot_prefilter(out / f"prefilter_{short}.png", result.scores, truth, higher, result.keep,
                               dataset)
            written[f"prefilter_{dataset}"] = p
            doc.img(p.name, f"pre-filter curves, {dataset}")
    md = out / "report.md"
    md.write_text(doc.markdown())
    written["markdown"] = md
    if html_report:
        page = out / "report.html"
        page.write_text(doc.html(f"nasplug rank: {label}"))
        written["html"] = page
    return written
