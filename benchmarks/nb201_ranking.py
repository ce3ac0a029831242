"""How well do nasplug's training-free scores rank NAS-Bench-201, and what does [C22]'s box buy?

Writes ``docs/nb201_ranking.md`` (and prints the same tables):

1. Spearman ρ / Kendall τ / P@10 / prune@10 of every registered scorer on CIFAR-10, CIFAR-100 and
   ImageNet16-120 (scorers too slow for a CPU budget are skipped with a note);
2. a rank-aggregate ensemble and a pre-filter, **chosen on CIFAR-10 only** and reported unchanged on
   CIFAR-100 and ImageNet16-120 (the protocol against over-fitting the benchmark);
3. [C22 §5.3]'s filtering evidence on the full table: what the fitted box (``dag_box``) and the
   authors' fixed box (``dag_box_authors``) keep and remove, and random / WOT-style search with and
   without them, by table lookup;
4. load times of the CSV export and of the compact table, as ratios.

Usage::

    .venv/bin/python benchmarks/nb201_ranking.py [--csv NB201.csv] [--out docs/nb201_ranking.md]

Training-free means the scores never see the accuracy table: it is used to evaluate them and, for
CIFAR-10 only, to choose among variants (members, signs and weights of the ensemble; the pre-filter's
pruned fraction).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import scorers  # noqa: E402
import search_spaces  # noqa: E402
from nasplug.benchmarks import SHORT_NAMES, load_benchmark  # noqa: E402
from nasplug.benchmarks.analysis import filter_stats, random_search, score_guided_search  # noqa: E402
from nasplug.benchmarks.metrics import (  # noqa: E402
    kendall_tau,
    oriented,
    pessimistic_rank,
    prefilter_curve,
    spearman_rho,
    top_k_precision,
    true_top,
)
from nasplug.ranking import normalized_ranks, score_space  # noqa: E402

DEFAULT_CSV = ROOT.parent / "shared" / "data" / "nb201" / "nats_tss_test_accuracy_200ep.csv"
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
TUNE_ON = "cifar10"
#: A scorer whose projected time on the whole space exceeds this is skipped (CPU budget).
MAX_SCORER_SECONDS = 180.0
ANCHORS = {  # published Spearman ρ on NB201 (C10 / C100 / IN16)
    "synflow (Abdelfattah et al. 2021)": (0.74, 0.76, 0.75),
    "ZiCo (Li et al. 2023)": (0.80, 0.81, 0.79),
    "AZ-NAS ensemble (Lee & Ham 2024)": (0.913, 0.90, 0.89),
}


def fmt(x: float, d: int = 3) -> str:
    return "–" if not np.isfinite(x) else f"{x:.{d}f}"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|",
                      *("| " + " | ".join(map(str, r)) + " |" for r in rows)])


# ---------------------------------------------------------------------- scoring
def score_all(space, log: list[str]) -> tuple[dict[str, np.ndarray], dict[str, bool], dict[str, float]]:
    """Every registered scorer on the whole space, timed; slow ones are skipped with a note."""
    names = list(scorers.available("scorer"))
    scores, higher, seconds = {}, {}, {}
    probe = np.random.default_rng(0).choice(space.size, size=256, replace=False)
    for name in names:
        scorer = scorers.get(name)
        start = time.perf_counter()
        scorer.score_many(space.batch(probe))
        projected = (time.perf_counter() - start) * space.size / len(probe)
        if projected > MAX_SCORER_SECONDS:
            log.append(f"`{name}` skipped: ~{projected:.0f} s projected on CPU for the whole space "
                       f"(budget {MAX_SCORER_SECONDS:.0f} s)")
            continue
        start = time.perf_counter()
        scores[name] = score_space(space, [name]).scores[name]
        seconds[name] = time.perf_counter() - start
        higher[name] = scorer.higher_is_better
    return scores, higher, seconds


# ---------------------------------------------------------------------- ensemble, tuned on C10
def aggregate(ranks: dict[str, np.ndarray], weights: dict[str, float], mode: str) -> np.ndarray:
    total = sum(abs(w) for w in weights.values())
    out = np.zeros_like(next(iter(ranks.values())))
    for name, w in weights.items():
        r = ranks[name] if w > 0 else ranks["-" + name]
        out += abs(w) * (np.log(r) if mode == "log" else r)
    return out / total


def tune_ensemble(features: dict[str, np.ndarray], truth: np.ndarray, objective,
                  weights=(0.25, 0.5, 1.0, 2.0), max_members: int = 6):
    """Greedy forward selection of members, signs and weights maximizing ``objective`` on C10.

    ``features`` are oriented higher-is-better by the registry; a member may enter reversed (a
    negative weight), which is a choice made on CIFAR-10 like every other.
    """
    ranks = {}
    for name, v in features.items():
        ranks[name] = normalized_ranks(v)
        ranks["-" + name] = normalized_ranks(-v)
    best_overall = None
    for mode in ("mean", "log"):
        chosen: dict[str, float] = {}
        best = -np.inf
        while len(chosen) < max_members:
            step = None
            for name in features:
                if name in chosen:
                    continue
                for w in weights:
                    for sign in (1, -1):
                        trial = {**chosen, name: sign * w}
                        value = objective(aggregate(ranks, trial, mode), truth)
                        if value > best + 1e-3 and (step is None or value > step[0]):
                            step = (value, trial)
            if step is None:
                break
            best, chosen = step
        if best_overall is None or best > best_overall[0]:
            best_overall = (best, chosen, mode)
    value, chosen, mode = best_overall
    return chosen, mode, aggregate(ranks, chosen, mode), ranks


def prune_at_top10(score: np.ndarray, truth: np.ndarray) -> float:
    return prefilter_curve(score, truth, 10).max_pruned_keeping(1.0)


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=str(DEFAULT_CSV), help="NB201 CSV export or compact table")
    parser.add_argument("--out", default=str(ROOT / "docs" / "nb201_ranking.md"))
    parser.add_argument("--seeds", type=int, default=1000, help="seeds of the searches")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    table = load_benchmark(args.csv)
    load_csv_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = table.write(Path(tmp) / "nb201.csv")
        t0 = time.perf_counter()
        load_benchmark(path)
        load_compact_s = time.perf_counter() - t0
    space = search_spaces.get("nb201")
    indices = np.arange(space.size)
    truths = {d: table.aligned(space, indices, d) for d in DATASETS}
    notes: list[str] = []
    scores, higher, seconds = score_all(space, notes)
    oriented_scores = {n: oriented(v, higher[n]) for n, v in scores.items()}
    filters = {n: score_space(space, [], [n]).keep[n] for n in ("dag_box", "dag_box_authors")}
    out: list[str] = []

    def emit(text: str = "") -> None:
        out.append(text)
        print(text)

    emit("# NAS-Bench-201: training-free ranking and [C22]'s pre-filter\n")
    emit(f"Generated by `benchmarks/nb201_ranking.py` on {space.size:,} cells; ground truth: test "
         "accuracy after 200 epochs, mean over seeds (`../shared/data/nb201`). Every ensemble or "
         f"threshold below was chosen on **{TUNE_ON} only** and is reported unchanged on CIFAR-100 "
         "and ImageNet16-120. Scores never see the accuracy table otherwise.\n")

    # 1. every scorer --------------------------------------------------------------------------
    emit("## 1. Every registered scorer\n")
    emit("ρ = Spearman, τ = Kendall τ-b, P@10 = share of the true top-10 among the 10 best-scored "
         "cells, prune@10 = largest share of the space a score threshold removes while keeping all "
         "of the true top-10 (score ties counted pessimistically). (↓) = lower is better, "
         "oriented before ranking. Time = seconds to score all cells, and as a ratio to "
         "`effective_depth` in the same run.\n")
    base_s = seconds.get("effective_depth", min(seconds.values()))
    rows = []
    for name, s in oriented_scores.items():
        row = [f"`{name}`" + ("" if higher[name] else " (↓)")]
        for d in DATASETS:
            row += [fmt(spearman_rho(s, truths[d])), fmt(kendall_tau(s, truths[d]))]
        row += [fmt(top_k_precision(s, truths[d], 10), 1) + " / " + f"{prune_at_top10(s, truths[d]):.1%}"
                for d in DATASETS]
        row.append(f"{seconds[name]:.2f} s ({seconds[name] / base_s:.1f}x)")
        rows.append(row)
    emit(md_table(["scorer", *(f"{SHORT_NAMES[d]} {m}" for d in DATASETS for m in ("ρ", "τ")),
                   *(f"{SHORT_NAMES[d]} P@10 / prune@10" for d in DATASETS), "time"], rows))
    baselines = [n for n in scores if n in ("params", "flops", "naswot", "synflow", "num_params")]
    emit("")
    if not baselines:
        emit("No baseline scorer (#params, FLOPs, NASWOT, synflow) is registered yet, so none is "
             "measured here; the published anchors are:\n")
    emit(md_table(["published (ρ)", "C10", "C100", "IN16"],
                  [[k, *(f"{x:.3g}" for x in v)] for k, v in ANCHORS.items()]))
    for note in notes:
        emit(f"\n* {note}")
    emit("")

    # 2. ensemble tuned on C10 -----------------------------------------------------------------
    emit("## 2. A rank-aggregate ensemble and a pre-filter, chosen on CIFAR-10\n")
    features = dict(oriented_scores)
    features.update({f"keep:{n}": k.astype(float) for n, k in filters.items()})
    t0 = time.perf_counter()
    chosen, mode, ens, _ = tune_ensemble(features, truths[TUNE_ON], spearman_rho)
    tune_s = time.perf_counter() - t0
    chosen_p, mode_p, ens_p, _ = tune_ensemble(features, truths[TUNE_ON], prune_at_top10)

    def prune_at_top1pct(score, truth):
        return prefilter_curve(score, truth, 156).max_pruned_keeping(1.0)

    chosen_q, mode_q, ens_q, _ = tune_ensemble(features, truths[TUNE_ON], prune_at_top1pct)

    def spec(ch: dict[str, float]) -> str:
        return ", ".join(f"{n} × {w:+g}" for n, w in ch.items())

    emit(f"Greedy forward selection over {len(features)} candidates (every scorer above, in either "
         "direction, and the two boxes as 0/1 features), weights in {0.25, 0.5, 1, 2}, aggregation "
         "`mean` (weighted mean of normalized ranks) or `log` (AZ-NAS's sum of log ranks); "
         f"{tune_s:.0f} s for the ρ objective. Members and weights:\n")
    emit(f"* **ρ-ensemble** (maximizes C10 ρ): `{mode}` of {spec(chosen)}")
    emit(f"* **prefilter-ensemble v1** (maximizes C10 prune@10, the first objective we tried): "
         f"`{mode_p}` of {spec(chosen_p)}")
    emit(f"* **prefilter-ensemble v2** (maximizes the pruned share that keeps all of the C10 top-1 %, "
         f"156 cells): `{mode_q}` of {spec(chosen_q)}\n")
    best_single = max(oriented_scores, key=lambda n: spearman_rho(oriented_scores[n], truths[TUNE_ON]))
    rows = []
    for label, s in ((f"best single on C10: `{best_single}`", oriented_scores[best_single]),
                     ("ρ-ensemble", ens), ("prefilter-ensemble v1", ens_p), ("prefilter-ensemble v2", ens_q)):
        row = [label]
        for d in DATASETS:
            row += [fmt(spearman_rho(s, truths[d])), fmt(kendall_tau(s, truths[d])),
                    f"{prune_at_top10(s, truths[d]):.1%}"]
        rows.append(row)
    emit(md_table(["score", *(f"{SHORT_NAMES[d]} {m}" for d in DATASETS for m in ("ρ", "τ", "prune@10"))],
                  rows))
    emit("\nv1 over-fits: prune@10 on C10 depends on ten cells, and the members it picked transfer to "
         "C100 but not to ImageNet16-120. v2 was tried **after** seeing that, with the less noisy "
         "top-1 % target (still C10 only); its numbers on C100/IN16 are therefore not a pre-registered "
         "held-out result, though nothing was tuned on them.\n")
    # the pre-filter as a fixed pruned fraction, chosen on C10
    rows = []
    for label, s in (("v1", ens_p), ("v2", ens_q)):
        frac = prune_at_top10(s, truths[TUNE_ON])
        ranks = pessimistic_rank(s)
        keep = ranks <= np.sort(ranks)[int(round((1 - frac) * space.size)) - 1]
        for d in DATASETS:
            top10, top1p = true_top(truths[d], 10), true_top(truths[d], 156)
            rows.append([label, f"{int(keep.sum()):,} ({1 - keep.mean():.1%})", d,
                         f"{int(keep[top10].sum())}/10", f"{int(keep[top1p].sum())}/156",
                         f"{np.nanmax(truths[d][keep]):.2f} / {np.nanmax(truths[d]):.2f}"])
    emit("**Pre-filter** = keep the cells a prefilter-ensemble ranks best, with the kept share fixed "
         "on C10 (the largest pruned share that keeps all of the C10 top-10), then applied unchanged:\n")
    emit(md_table(["ensemble", "kept (pruned)", "dataset", "true top-10 kept", "true top-1% kept",
                   "best kept / optimum"], rows))
    emit("")

    goal_rho = {d: spearman_rho(ens, truths[d]) for d in DATASETS}
    v2_frac = prune_at_top10(ens_q, truths[TUNE_ON])
    v2_ok = {d: prune_at_top10(ens_q, truths[d]) >= v2_frac - 1e-12 for d in DATASETS}
    summary = [
        "## Against the goals\n",
        "* Training-free ρ ≥ 0.92 on all three: **not reached**. The best nasplug score, the "
        "C10-tuned ρ-ensemble of topology and NNGP scorers, gets ρ = "
        + " / ".join(f"{goal_rho[d]:.3f}" for d in DATASETS)
        + " (C10 / C100 / IN16): above published synflow (0.74–0.76) and ZiCo (0.79–0.81), below "
        "the AZ-NAS ensemble (0.89–0.91). Without data-dependent proxies (NASWOT, synflow, ... not "
        "yet registered) the cell's topology alone cannot separate cells with the same path "
        "structure, which is most of the remaining error.",
        "* Pre-filter pruning ≥ 90 % and keeping all of the true top-10 on each dataset: "
        + ("**reached**" if all(v2_ok.values()) else "**not reached**")
        + f" by prefilter-ensemble v2 ({v2_frac:.1%} pruned, threshold fixed on C10; top-10 kept on "
        + ", ".join(f"{SHORT_NAMES[d]} {'yes' if v2_ok[d] else 'no'}" for d in DATASETS)
        + "), with the caveat on v2 in section 2. The first objective we tried (v1) "
        "missed ImageNet16-120 (6/10).\n",
    ]
    out[1:1] = summary
    for line in summary:
        print(line)

    # 3. [C22] box evidence -------------------------------------------------------------------
    emit("## 3. [C22]'s box on the full table\n")
    emit("`dag_box` is [C22 §5.3]'s rule fitted to NB201 (centre ± half the radius of the (d̄, m̄) "
         "range); `dag_box_authors` the fixed box of the authors' released code "
         "(0.99 ≤ d̄ ≤ 2.51, 0.99 ≤ m̄ ≤ 3.01).\n")
    rows = []
    for d in DATASETS:
        for name, k in filters.items():
            fs = filter_stats(name, k, truths[d], (1, 10, "1%"))
            rows.append([SHORT_NAMES[d], f"`{name}`", f"{fs.kept:,} ({fs.kept_fraction:.1%})",
                         f"{fs.kept_mean:.2f} / {fs.removed_mean:.2f}",
                         f"{fs.kept_median:.2f} / {fs.removed_median:.2f}",
                         f"{fs.kept_best:.2f} / {fs.removed_best:.2f}",
                         *(f"{fs.top_kept[k_]:.0%}" for k_ in ("1", "10", "1%"))])
    emit(md_table(["data", "filter", "kept", "mean acc kept / removed", "median kept / removed",
                   "best kept / removed", "top-1 kept", "top-10 kept", "top-1% kept"], rows))
    budgets = (10, 30, 100, 300, 1000)
    emit(f"\n**Random search by table lookup**: best test accuracy among K distinct random cells, "
         f"mean ± std over {args.seeds:,} seeds.\n")
    rows = []
    for d in DATASETS:
        for label, k in (("whole space", None), *((f"`{n}`", v) for n, v in filters.items())):
            rs = random_search(truths[d], budgets, keep=k, seeds=args.seeds, rng=1)
            rows.append([SHORT_NAMES[d], label, *(f"{m:.2f} ± {s:.2f}" for m, s in zip(rs.mean, rs.std))])
    emit(md_table(["data", "sampled from", *(f"K = {b}" for b in budgets)], rows))
    emit("\n**WOT-style search** ([C22] Table 2's protocol with a table lookup): sample N = 100 cells, "
         "train only the best-scored one (ties broken at random); mean ± std of its test accuracy over "
         f"{args.seeds:,} seeds. [C22] report WOT 92.81 / 69.48 / 43.10 and WOT+DAG 92.98 / 69.86 / "
         "43.44 with the trained NASWOT score.\n")
    guides = {"ρ-ensemble": ens}
    for name in ("effective_depth", "nngp_lambda_min"):
        if name in oriented_scores:
            guides[f"`{name}`"] = oriented_scores[name]
    rows = []
    for label, s in guides.items():
        for pool, k in (("whole space", None), *((f"`{n}`", v) for n, v in filters.items())):
            row = [label, pool]
            for d in DATASETS:
                gs = score_guided_search(s, truths[d], (100,), keep=k, seeds=args.seeds, rng=2)
                row.append(f"{gs.mean[0]:.2f} ± {gs.std[0]:.2f}")
            rows.append(row)
    emit(md_table(["score", "sampled from", *(SHORT_NAMES[d] for d in DATASETS)], rows))
    emit("")

    # 4. load times -----------------------------------------------------------------------------
    emit("## 4. Loading the ground truth\n")
    emit(f"CSV export: {load_csv_s:.3f} s; compact table (`nasplug bench convert`): {load_compact_s:.3f} s "
         f"({load_csv_s / load_compact_s:.2f}x the export's speed). Both include mapping all 15,625 "
         "arch strings to our space. The official `.pth` is not in this workspace; its one-off "
         "conversion is dominated by unpickling the multi-GB file.\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(out) + "\n")
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
