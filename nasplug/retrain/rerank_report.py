"""The re-ranking report: ``rerank.md`` / ``rerank.json`` and four figures, from a
:class:`~nasplug.retrain.rerank.RerankAnalysis`. The reading is generated from the numbers, and
every rank statistic is shown next to its noise floor (the seed-vs-seed agreement of the same
recipe), so small samples say so themselves."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from nasplug.markup import table_cell
from nasplug.plotting import pyplot
from nasplug.retrain.rerank import RECIPE_NAMES, RerankAnalysis, RerankConfig, finite_mean

#: Below this seed-vs-seed τ the trainings do not rank reproducibly (an agreement this weak is what
#: a handful of cells shows by chance), and no comparison with the benchmark is drawn.
NOISE_FLOOR = 0.3
COLORS = {"benchmark": "tab:gray", "principled": "tab:blue"}
FIGURES = ("rerank_scatter.png", "rerank_tau.png", "rerank_flips.png", "rerank_change.png")


def _f(x: Any, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def reading(a: RerankAnalysis, seeds: int) -> list[str]:
    """Plain-language findings, each backed by a number in the tables."""
    lo, hi = a.change_ci
    sign = "gains" if lo > 0 else "loses" if hi < 0 else "neither gains nor loses (the 95 % interval spans 0)"
    out = [f"Principled init + LR {sign}: mean change {a.change_mean:+.2f} points, 95 % bootstrap "
           f"interval [{lo:+.2f}, {hi:+.2f}] over {len(a.archs)} cells; better on {a.better} of them."]
    whole = a.taus[0]
    if seeds < 2:
        out.append("With one training seed there is no noise floor: rank statistics cannot be told "
                   "apart from seed noise. Use at least two seeds.")
        return out
    for r in RECIPE_NAMES:
        tau, noise = whole[f"tau_{r}"], whole[f"noise_{r}"]
        if not (math.isfinite(tau) and math.isfinite(noise)):
            continue
        if noise < NOISE_FLOOR:
            verdict = (f"but two seeds of this recipe agree only at τ = {noise:.3f}: at this scale the "
                       "trainings do not rank cells reproducibly, so the comparison says nothing")
        elif tau < noise:
            verdict = (f"below its seed-vs-seed agreement ({noise:.3f}): the retrained ranking differs "
                       "from the benchmark's by more than seed noise explains")
        else:
            verdict = (f"as high as its seed-vs-seed agreement ({noise:.3f}): what differs from the "
                       "benchmark's ranking is within seed noise")
        out.append(f"Over all cells the {r} recipe's ranking has τ = {tau:.3f} with the benchmark's, "
                   f"{verdict}.")
    small = [row for row in a.taus if row["cells"] < 10 and math.isfinite(row["tau_principled"])]
    if small:
        k = small[0]["cells"]
        where = f"within the top {small[0]['top_percent']} % and smaller" if small[0]["top_percent"] < 100 \
            else "over the whole sample"
        out.append(f"τ rests on {k} cells or fewer {where}: one swapped pair moves it by "
                   f"{4 / (k * (k - 1)):.2f}, so read those rows as anecdotes.")
    return out


def markdown(a: RerankAnalysis, config: RerankConfig) -> str:
    seeds, t = len(config.seeds), a.training
    lines = ["# Re-ranking NAS-Bench-201 by principled training ([C24] §4.3)", "",
             "| setting | value |", "| --- | --- |"]
    settings = {"benchmark column": f"{config.bench_dataset} test accuracy", "cells": len(a.archs),
                "sample": f"{'stratified by benchmark accuracy' if config.stratify else 'uniform'}, "
                          f"seed {config.sample_seed}",
                "training seeds": ", ".join(map(str, config.seeds)), "trained on": config.dataset,
                "network": f"{t['model']} (width {t['width'] or 'default'})",
                "recipe": f"NAS-Bench-201's (SGD Nesterov 0.9, wd 5e-4, cosine), {t['epochs']} epochs, "
                          f"batch {t['batch_size']}",
                "benchmark recipe": f"PyTorch default init, LR {t['lr']:g}",
                "principled recipe": f"[C24] init, LR {t['principled_base_lr']:.4g} × the cell's multiplier "
                                     f"({min(t['principled_lrs']):.3g} … {max(t['principled_lrs']):.3g}; "
                                     + ("base given" if config.principled_base_lr is not None else
                                        "base matched: geometric-mean LR = the benchmark's") + ")"}
    lines += [f"| {k} | {v} |" for k, v in settings.items()]
    lines += ["", "## Reading", ""] + [f"- {text}" for text in reading(a, seeds)]
    lines += ["", "## Accuracy", "",
              "| recipe | mean retrained accuracy (%) | diverged runs | missing runs |",
              "| --- | --- | --- | --- |"]
    for r in RECIPE_NAMES:
        lines.append(f"| {r} | {_f(float(finite_mean(a.acc[r])), 2)} "
                     f"| {a.diverged[r]} | {a.missing[r]} |")
    lines += ["", f"Principled − benchmark, per cell (mean over seeds): {a.change_mean:+.2f} points "
              f"(95 % bootstrap interval {a.change_ci[0]:+.2f} … {a.change_ci[1]:+.2f}); better on "
              f"{a.better} of {len(a.archs)} cells. Diverged runs count as chance accuracy.", "",
              "## Ranking agreement within the benchmark's top-K %", "",
              "τ = Kendall τ-b of the mean-over-seeds retrained accuracy against the benchmark's accuracy, "
              "over the cells in the benchmark's top K % of this sample; *noise* = mean τ between the "
              "rankings of two training seeds of the same recipe (the best agreement a ranking can have "
              "with itself at this scale). Fewer than 3 cells: –.", "",
              "| top-K % | cells | τ benchmark recipe | noise | τ principled | noise "
              "| τ principled vs benchmark recipe |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in a.taus:
        lines.append(f"| {row['top_percent']} | {row['cells']} | {_f(row['tau_benchmark'])} | "
                     f"{_f(row['noise_benchmark'])} | {_f(row['tau_principled'])} | "
                     f"{_f(row['noise_principled'])} | {_f(row['tau_between'])} |")
    lines += ["", "## Pairwise accuracy gaps", "",
              "Share of cell pairs whose order differs from the benchmark's, by the pair's benchmark "
              "accuracy gap (quartiles of the gaps); *seed* = share of pairs two seeds of the same recipe "
              "order differently.", "",
              "| benchmark gap (points) | pairs | flipped: benchmark recipe | seed | flipped: principled "
              "| seed |",
              "| --- | --- | --- | --- | --- | --- |"]
    for row in a.flips:
        lines.append(f"| {row['gap_low']:.2f} – {row['gap_high']:.2f} | {row['pairs']} | "
                     f"{_f(row['flip_benchmark'], 2)} | {_f(row['noise_benchmark'], 2)} | "
                     f"{_f(row['flip_principled'], 2)} | {_f(row['noise_principled'], 2)} |")
    lines += ["", "## Cells", "", "| cell | benchmark (%) | benchmark recipe (%) | principled (%) |",
              "| --- | --- | --- | --- |"]
    mean = {r: a.mean(r) for r in RECIPE_NAMES}
    for i in np.argsort(-a.bench, kind="stable"):
        lines.append(f"| `{table_cell(a.archs[i])}` | {a.bench[i]:.2f} | {_f(mean['benchmark'][i], 2)} | "
                     f"{_f(mean['principled'][i], 2)} |")
    lines += [""] + [f"![{name}]({name})" for name in FIGURES] + [""]
    return "\n".join(lines)


def write_report(a: RerankAnalysis, config: RerankConfig, out: str | Path) -> None:
    """``rerank.md``, ``rerank.json`` and the figures under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"config": config.as_dict(), "archs": a.archs, "bench": a.bench.tolist(),
               "acc": {r: a.acc[r].tolist() for r in RECIPE_NAMES}, "diverged": a.diverged,
               "missing": a.missing, "change_mean": a.change_mean, "change_ci": list(a.change_ci),
               "better": a.better, "taus": a.taus, "flips": a.flips, "training": a.training}
    (out / "rerank.json").write_text(json.dumps(payload, indent=1, default=float).replace("NaN", "null"))
    (out / "rerank.md").write_text(markdown(a, config))
    _plots(a, out)


def _against_noise(rows: list[dict[str, Any]], x: list[float], key: str, ylabel: str, xlabel: str,
                   path: Path, log_x: bool = False) -> None:
    """Each recipe's ``{key}_{recipe}`` against the benchmark, with its seed-vs-seed noise dashed."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for r in RECIPE_NAMES:
        ax.plot(x, [row[f"{key}_{r}"] for row in rows], "o-", color=COLORS[r],
                label=f"{r} recipe vs NAS-Bench-201")
        ax.plot(x, [row[f"noise_{r}"] for row in rows], "s--", color=COLORS[r], alpha=0.5,
                label=f"{r} recipe: seed vs seed (noise floor)")
    if log_x:
        ax.set_xscale("log")
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.minorticks_off()
        ax.invert_xaxis()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plots(a: RerankAnalysis, out: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for r in RECIPE_NAMES:
        err = np.std(a.acc[r], axis=1) if a.acc[r].shape[1] > 1 and np.isfinite(a.acc[r]).all() else None
        ax.errorbar(a.bench, a.mean(r), yerr=err, fmt="o", ms=4, capsize=2, color=COLORS[r],
                    label=f"{r} recipe")
    ax.set_xlabel("NAS-Bench-201 accuracy (%)")
    ax.set_ylabel("retrained accuracy (%), mean ± sd over seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / FIGURES[0], dpi=120)
    plt.close(fig)

    _against_noise(a.taus, [row["top_percent"] for row in a.taus], "tau", "Kendall τ",
                   "benchmark's top-K % of the sample", out / FIGURES[1], log_x=True)
    _against_noise(a.flips, [0.5 * (row["gap_low"] + row["gap_high"]) for row in a.flips], "flip",
                   "share of pairs in the other order", "benchmark accuracy gap of the pair (points)",
                   out / FIGURES[2])

    fig, ax = plt.subplots(figsize=(5, 4))
    change = a.mean("principled") - a.mean("benchmark")
    ax.hist(change[np.isfinite(change)], bins=max(5, len(change) // 3), color=COLORS["principled"])
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("principled − benchmark recipe, accuracy points per cell")
    ax.set_ylabel("cells")
    fig.tight_layout()
    fig.savefig(out / FIGURES[3], dpi=120)
    plt.close(fig)
