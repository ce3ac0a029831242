"""How well do nasplug's training-free scores rank NAS-Bench-201, and what does [C22]'s box buy?

Writes ``docs/nb201_ranking.md`` (and prints the same tables):

1. Spearman ρ / Kendall τ / P@10 / prune@10 of every fast registered scorer on the whole space for
   CIFAR-10, CIFAR-100 and ImageNet16-120; then **every** scorer, the slow per-cell torch baselines
   (#params, FLOPs, NASWOT, synflow) included, on one seeded uniform sample of cells, with bootstrap
   confidence intervals, next to the whole-space figures and the published values;
2. rank-aggregate ensembles and a pre-filter, **chosen on CIFAR-10 only** and reported unchanged on
   CIFAR-100 and ImageNet16-120 (the protocol against over-fitting the benchmark): of fast scorers on
   the whole space, and with the baselines on the sample (chosen on half of it, reported on the other
   half);
3. [C22 §5.3]'s filtering evidence on the full table: what the fitted box (``dag_box``) and the
   authors' fixed box (``dag_box_authors``) keep and remove, and random / WOT-style search with and
   without them, by table lookup;
4. load times of the CSV export and of the compact table, as ratios.

Usage::

    .venv/bin/python benchmarks/nb201_ranking.py [--csv NB201.csv] [--out docs/nb201_ranking.md]
        [--sample 2000] [--sample-cache /tmp/nb201_sample.npz]

The slow baselines take ~0.1-0.2 s per cell on one CPU thread (about 6 min for 2,000 cells);
``--sample-cache`` stores their scores so that a rerun with the same sample reuses them.

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
from md_tables import md_table, write_markdown  # benchmarks/md_tables.py (scripts run from this folder)
from nb201_csv import add_csv_argument  # benchmarks/nb201_csv.py (scripts run from this folder)

from nasplug import scorers, search_spaces
from nasplug.nasbench import SHORT_NAMES, load_benchmark
from nasplug.nasbench.analysis import filter_stats, random_search, score_guided_search
from nasplug.nasbench.metrics import (
    bootstrap_ci,
    kendall_tau,
    pessimistic_rank,
    prefilter_curve,
    spearman_rho,
    top_k_precision,
    true_top,
)
from nasplug.ranking import score_space, select_rank_ensemble
from nasplug.scorers import oriented
from nasplug.scorers.ensemble import aggregate_ranks, rank_table

ROOT = Path(__file__).resolve().parents[1]

DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
TUNE_ON = "cifar10"
#: A scorer whose projected time on the whole space exceeds this is skipped (CPU budget).
MAX_SCORER_SECONDS = 180.0
#: Published rank correlations on all 15,625 NB201 cells (C10 / C100 / IN16): label -> (our scorer or
#: None, Spearman ρ or None, Kendall τ or None, source). The τ of AZ-NAS's Table 1 re-run every baseline
#: with its authors' code (values as tabulated there); synflow's ρ is the zero-cost-proxy paper's.
PUBLISHED = {
    "#params": ("num_params", None, (0.578, 0.552, 0.520), "AZ-NAS Table 1"),
    "FLOPs": ("flops", None, (0.578, 0.551, 0.517), "AZ-NAS Table 1"),
    "NASWOT": ("naswot", None, (0.557, 0.579, 0.573), "AZ-NAS Table 1"),
    "synflow": ("synflow", (0.74, 0.76, 0.75), (0.571, 0.565, 0.555),
                "ρ Abdelfattah et al. 2021, τ AZ-NAS Table 1"),
    "ZiCo": (None, (0.80, 0.81, 0.79), (0.589, 0.590, 0.584), "Li et al. 2023; τ AZ-NAS Table 1"),
    "AZ-NAS ensemble": (None, (0.913, 0.900, 0.886), (0.741, 0.723, 0.710), "Lee & Ham 2024"),
}
#: Default sample for the slow per-cell baselines: ~6 min on one CPU thread, ρ's 95 % CI about ±0.02.
DEFAULT_SAMPLE = 2000


def fmt(x: float, d: int = 3) -> str:
    return "–" if not np.isfinite(x) else f"{x:.{d}f}"


# ---------------------------------------------------------------------- scoring
def score_all(space, log: list[str]) -> tuple[dict[str, np.ndarray], dict[str, bool], dict[str, float]]:
    """Every fast registered scorer on the whole space, timed; a fast one that still projects over
    the budget is skipped with a note. The slow per-cell baselines go to :func:`score_sample`."""
    names = list(scorers.available("scorer", include_slow=False))
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


def score_sample(space, indices: np.ndarray,
                 cache: str | None) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The slow per-cell scorers on ``indices``: scores and seconds per cell (one torch thread, so
    the timing does not depend on how busy the other cores are and the work fits a shared machine).

    ``cache`` (an ``.npz``) is reused only for the very same indices, else rewritten.
    """
    import torch

    torch.set_num_threads(1)
    names = [n for n in scorers.available("scorer") if scorers.is_slow(n)]
    stored = {}
    if cache and Path(cache).exists():
        with np.load(cache) as z:
            if np.array_equal(z["indices"], indices):
                stored = {k: z[k] for k in z.files}
    scores, per_cell = {}, {}
    for name in names:
        if f"score:{name}" in stored:
            scores[name], per_cell[name] = stored[f"score:{name}"], float(stored[f"seconds:{name}"])
            continue
        start = time.perf_counter()
        scores[name] = scorers.get(name).score_many(space.batch(indices))
        per_cell[name] = (time.perf_counter() - start) / len(indices)
        print(f"  {name}: {per_cell[name] * len(indices):.0f} s on {len(indices):,} cells", file=sys.stderr)
    if cache:
        np.savez(cache, indices=indices, **{f"score:{n}": v for n, v in scores.items()},
                 **{f"seconds:{n}": np.float64(t) for n, t in per_cell.items()})
    return scores, per_cell


# ---------------------------------------------------------------------- ensemble, tuned on C10
def tune_ensemble(features: dict[str, np.ndarray], truth: np.ndarray, objective, **options):
    """Greedy forward selection (:func:`nasplug.ranking.select_rank_ensemble`) of members, signs and
    weights maximizing ``objective`` on C10. ``features`` are oriented higher-is-better by the
    registry; a member may enter reversed (a negative weight), a choice made on CIFAR-10 like every
    other; ``options`` go to the selection (e.g. ``modes``). Returns the weights, the mode, the
    aggregate over these cells and the rank table."""
    ranks = rank_table(features)
    chosen = select_rank_ensemble(ranks, truth, objective, **options)
    return chosen.weights, chosen.mode, aggregate_ranks(ranks, chosen.weights, chosen.mode), ranks


def prune_at_top10(score: np.ndarray, truth: np.ndarray) -> float:
    return prefilter_curve(score, truth, 10).max_pruned_keeping(1.0)


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_csv_argument(parser)
    parser.add_argument("--out", default=str(ROOT / "docs" / "nb201_ranking.md"))
    parser.add_argument("--seeds", type=int, default=1000, help="seeds of the searches")
    parser.add_argument("--sample", type=int, default=DEFAULT_SAMPLE,
                        help="cells (uniform, seeded) on which every scorer, slow ones included, is measured")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates of ρ's CI")
    parser.add_argument("--sample-cache",
                        help="npz storing the slow scores of the sample, reused if it matches")
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
    for note in notes:
        emit(f"\n* {note}")
    emit("")

    # 1b. every scorer on a sample ------------------------------------------------------------
    rng = np.random.default_rng(args.sample_seed)
    sample = np.sort(rng.choice(space.size, size=min(args.sample, space.size), replace=False))
    slow_scores, per_cell = score_sample(space, sample, args.sample_cache)
    higher.update({n: scorers.get(n).higher_is_better for n in slow_scores})
    on_sample = {n: v[sample] for n, v in oriented_scores.items()}
    on_sample.update({n: oriented(v, higher[n]) for n, v in slow_scores.items()})
    sample_truths = {d: truths[d][sample] for d in DATASETS}
    boot = np.random.default_rng(args.sample_seed + 1)
    rho_ci = {(n, d): bootstrap_ci(v, sample_truths[d], args.bootstrap, boot)
              for n, v in on_sample.items() for d in DATASETS}
    emit(f"### Every scorer on a uniform sample of {len(sample):,} cells\n")
    slow_list = ", ".join(f"`{n}`" for n in slow_scores)
    emit(f"The slow scorers build and run the torch network of every cell ({slow_list}"
         f": {', '.join(f'{per_cell[n]:.3f} s' for n in slow_scores)} per cell on one CPU thread, i.e. "
         f"{sum(per_cell.values()) * space.size / 3600:.1f} h for the whole space), so every scorer is "
         f"measured on the same {len(sample):,} cells drawn uniformly without replacement (seed "
         f"{args.sample_seed}). [95 % CI] = percentile bootstrap over cells ({args.bootstrap:,} "
         "replicates): the sampling error, i.e. how far the sample's ρ may be from the whole space's. "
         "*whole ρ* = the same scorer on all 15,625 cells (fast scorers only). How the baselines' "
         "networks are built: `scorers/baselines.py` (NB201 macro network, He init, NASWOT on 32 "
         "seeded Gaussian 16×16 images with BN in training mode, synflow without BN on an all-ones "
         "16×16 input; FLOPs counted at 32×32 on the convs that are evaluated).\n")
    rows = []
    order = sorted(on_sample, key=lambda n: -spearman_rho(on_sample[n], sample_truths[TUNE_ON]))
    for name in order:
        row = [f"`{name}`" + ("" if higher[name] else " (↓)") + (" (slow)" if name in slow_scores else "")]
        for d in DATASETS:
            lo, hi = rho_ci[name, d]
            row += [f"{fmt(spearman_rho(on_sample[name], sample_truths[d]))} [{lo:.2f}, {hi:.2f}]",
                    fmt(kendall_tau(on_sample[name], sample_truths[d])),
                    fmt(spearman_rho(oriented_scores[name], truths[d])) if name in oriented_scores else "–"]
        rows.append(row)
    emit(md_table(["scorer", *(f"{SHORT_NAMES[d]} {m}" for d in DATASETS
                               for m in ("ρ sample [95% CI]", "τ sample", "whole ρ"))], rows))

    emit("\n### The baselines against the published values\n")
    emit("Published figures are on all 15,625 cells with each method's own code and data (real images "
         "of the dataset, its batch size and resolution); ours on the sample above, with bootstrap 95 % "
         f"CIs ({max(200, args.bootstrap // 5):,} replicates for τ). *match* = every published value "
         "available lies inside our CI; otherwise the direction of the gap.\n")
    rows, verdicts = [], {}
    for label, (ours, rho_pub, tau_pub, source) in PUBLISHED.items():
        cells = []
        status = []
        for i, d in enumerate(DATASETS):
            if ours is None or ours not in on_sample:
                cells.append("–")
                continue
            v = on_sample[ours]
            r, t = spearman_rho(v, sample_truths[d]), kendall_tau(v, sample_truths[d])
            tlo, thi = bootstrap_ci(v, sample_truths[d], max(200, args.bootstrap // 5), boot, kendall=True)
            rlo, rhi = rho_ci[ours, d]
            cells.append(f"ρ {r:.3f} [{rlo:.2f}, {rhi:.2f}], τ {t:.3f} [{tlo:.2f}, {thi:.2f}]")
            if rho_pub is not None:
                status.append("match" if rlo <= rho_pub[i] <= rhi
                              else ("above" if r > rho_pub[i] else "below"))
            if tau_pub is not None:
                status.append("match" if tlo <= tau_pub[i] <= thi
                              else ("above" if t > tau_pub[i] else "below"))
        pub = " / ".join(filter(None, [
            "ρ " + "/".join(f"{x:.3g}" for x in rho_pub) if rho_pub else "",
            "τ " + "/".join(f"{x:.3g}" for x in tau_pub) if tau_pub else ""]))
        verdict = "–" if not status else ("match" if set(status) == {"match"} else
                                          ", ".join(sorted(set(status) - {"match"})) + " on "
                                          f"{sum(x != 'match' for x in status)}/{len(status)}")
        verdicts[label] = verdict
        rows.append([label, pub, source, *cells, verdict])
    emit(md_table(["method", "published (C10/C100/IN16)", "source",
                   *(f"ours {SHORT_NAMES[d]}" for d in DATASETS), "ours vs published"], rows))
    emit("")
    emit("Why a baseline may differ (implementation facts; the side experiments are one-off runs on "
         "cells of this sample, not rerun by this script):\n")
    emit("* `flops` counts only the convs that are evaluated, i.e. on an input→output path. NB201's "
         "published FLOPs (and the literature's baseline) count every instantiated conv, dead ones "
         "included; per cell that is an affine function of the numbers of 1×1 and 3×3 convs whose "
         "per-stage costs are equal (H·W·C² is constant over NB201's stages), hence the same ranking "
         "as #params (published τ equal to 3 decimals). Counting live convs is the better proxy, not "
         "a defect, so it is kept; our `num_params` reproduces the literature's #params/FLOPs τ.")
    emit("* `naswot` uses 32 seeded Gaussian 16×16 images; NASWOT's code uses a batch of 128 real "
         "images at the dataset's resolution. Side experiment on 300 cells: a batch of 128 raised ρ by "
         "about 0.04 on all three datasets, so the gap is the batch size (32 keeps a cell at ~0.13 s; "
         "128 costs ~4×, too slow for this sample on the shared CPU). Evaluating dead edges as NB201's "
         "network does (500 cells) lowered ρ by ~0.02, so dead edges are not the cause.")
    emit("* `synflow` follows the zero-cost-proxy code (double precision, |θ|, all-ones input, no BN) "
         "and reproduces the published figures.\n")

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

    # the recommended `nasplug rank --aggregate`: registered fast scorers only, weighted mean of ranks
    chosen_a, _, ens_a, _ = tune_ensemble(dict(oriented_scores), truths[TUNE_ON], spearman_rho,
                                          modes=("mean",))
    aggregate_arg = ",".join(f"{n}:{w:g}" if higher[n] else f"{n}:{-w:g}" for n, w in chosen_a.items())
    emit("**A whole-space `nasplug rank --aggregate`** (the same search, restricted to what the option "
         "computes: registered scorers, weighted mean of normalized ranks; weights in the registry's "
         "orientation, chosen on all of C10, so not held out; the recommended one, `--aggregate "
         "recommended`, was chosen on half of the cells and is reported on the other half in "
         "[ntk_ranking.md](ntk_ranking.md)):\n")
    emit(f"    nasplug rank --scorers {','.join(chosen_a)} --aggregate {aggregate_arg}\n")
    emit(md_table(["score", *(f"{SHORT_NAMES[d]} {m}" for d in DATASETS for m in ("ρ", "τ"))],
                  [["`--aggregate` above", *(fmt(f(ens_a, truths[d])) for d in DATASETS
                                             for f in (spearman_rho, kendall_tau))]]))
    emit("\nA rank is relative to the cells scored together, so an ensemble of ranks is not a "
         "per-architecture score; it is therefore not registered as a scorer but left to "
         "`--aggregate` (it also needs the whole space or a large sample to rank against).\n")

    # 2b. ensembles with the slow baselines, on the sample ------------------------------------
    emit(f"### With the slow baselines: ensembles on the {len(sample):,}-cell sample\n")
    half = np.random.default_rng(args.sample_seed + 2).permutation(len(sample))
    tune_pos, test_pos = np.sort(half[: len(sample) // 2]), np.sort(half[len(sample) // 2:])
    sample_features = dict(on_sample)
    sample_features.update({f"keep:{n}": k[sample].astype(float) for n, k in filters.items()})
    fast_names = [n for n in sample_features if n not in slow_scores]

    def held_out(names: list[str]):
        ch, md, _, _ = tune_ensemble({n: sample_features[n][tune_pos] for n in names},
                                     sample_truths[TUNE_ON][tune_pos], spearman_rho)
        test_ranks = rank_table({n: sample_features[n][test_pos] for n in ch})
        return ch, md, aggregate_ranks(test_ranks, ch, md)

    chosen_all, mode_all, ens_all = held_out(list(sample_features))
    chosen_fast, mode_fast, ens_fast = held_out(fast_names)
    emit(f"The sample is split at random into a tuning half ({len(tune_pos):,} cells) and a held-out "
         f"half ({len(test_pos):,}); the same greedy search as above chooses members and weights on "
         "the tuning half's **C10** accuracies only; every figure below is on the held-out half (ranks "
         "recomputed there), with bootstrap 95 % CIs. These ensembles need the slow baselines, so they "
         "are evaluable on a sample only, not on the whole space here.\n")
    emit(f"* **all scorers** (fast + baselines + boxes): `{mode_all}` of {spec(chosen_all)}")
    emit(f"* **fast scorers only**, same split and search: `{mode_fast}` of {spec(chosen_fast)}\n")
    test_truths = {d: sample_truths[d][test_pos] for d in DATASETS}
    best_slow = max(slow_scores, key=lambda n: spearman_rho(on_sample[n][tune_pos],
                                                            sample_truths[TUNE_ON][tune_pos]))
    held_rows = {
        f"best single on the tuning half's C10: `{best_slow}`": on_sample[best_slow][test_pos],
        "whole-space ρ-ensemble (above), on these cells": ens[sample][test_pos],
        "fast-only ensemble, chosen on the tuning half": ens_fast,
        "all-scorer ensemble, chosen on the tuning half": ens_all,
    }
    rows, held_rho = [], {}
    for label, v in held_rows.items():
        row = [label]
        for d in DATASETS:
            lo, hi = bootstrap_ci(v, test_truths[d], args.bootstrap, boot)
            held_rho[label, d] = spearman_rho(v, test_truths[d])
            row += [f"{held_rho[label, d]:.3f} [{lo:.2f}, {hi:.2f}]", fmt(kendall_tau(v, test_truths[d]))]
        rows.append(row)
    emit(md_table(["score (held-out half)", *(f"{SHORT_NAMES[d]} {m}" for d in DATASETS
                                              for m in ("ρ [95% CI]", "τ"))], rows))
    emit("")

    goal_rho = {d: spearman_rho(ens, truths[d]) for d in DATASETS}
    v2_frac = prune_at_top10(ens_q, truths[TUNE_ON])
    v2_ok = {d: prune_at_top10(ens_q, truths[d]) >= v2_frac - 1e-12 for d in DATASETS}
    summary = [
        "## Against the goals\n",
        "* Training-free ρ ≥ 0.92 on all three: "
        + ("**reached**" if min(goal_rho.values()) >= 0.92 else "**not reached**")
        + ". Whole space, fast scorers only: the C10-tuned ρ-ensemble of the fast registered scorers "
        "(not held out; held out: docs/ntk_ranking.md) gets "
        "ρ = " + " / ".join(f"{goal_rho[d]:.3f}" for d in DATASETS) + " (C10 / C100 / IN16). "
        f"With the slow baselines (#params, FLOPs, NASWOT, synflow), on a {len(test_pos):,}-cell "
        "held-out half of a uniform sample (chosen on the other half's C10): ρ = "
        + " / ".join(f"{held_rho['all-scorer ensemble, chosen on the tuning half', d]:.3f}" for d in DATASETS)
        + ", against " + " / ".join(f"{held_rho['whole-space ρ-ensemble (above), on these cells', d]:.3f}"
                                    for d in DATASETS)
        + " for the fast ρ-ensemble on the same cells. Published: synflow 0.74–0.76, ZiCo 0.79–0.81, "
        "AZ-NAS 0.89–0.91. Our baselines against the published values: "
        + "; ".join(f"{k} {v}" for k, v in verdicts.items() if v != "–") + " (section 1).",
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
    write_markdown(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
