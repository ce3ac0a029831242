"""Held-out training-free ranking of NAS-Bench-201: a protocol fixed before it was run.

The protocol (this file's constants were committed, in their own commit, before the script was
first run against accuracies — see ``git log -- benchmarks/ntk_ensemble.py``):

1. **Candidates** (:data:`CANDIDATES`): every fast registered scorer of the topology, [C24], NNGP and
   NTK families with its default parameters (``nngp_convergence_factor`` is left out: it is a
   decreasing function of ``nngp_lambda_min``, the same ranking reversed). Each scores all 15,625
   cells without seeing any accuracy; its normalized ranks are taken over the whole space (what a
   rank ensemble fitted on the space computes for every cell).
2. **Splits** (:data:`SPLITS`): for each seed, a seeded random half of the cells is the tuning half,
   the other half is held out.
3. **Selection on the tuning half, CIFAR-10 only**: greedy forward selection of members, signs and
   weights (:func:`nasplug.ranking.select_rank_ensemble` with its defaults: weights 0.25/0.5/1/2,
   at most 6 members, a step must add > 0.001 to Spearman ρ, mean or log aggregation).
4. **Report on the held-out half**: Spearman ρ and Kendall τ for CIFAR-10, CIFAR-100 and
   ImageNet16-120 (test accuracy after 200 epochs), with 95 % percentile-bootstrap intervals over
   held-out cells; over all splits, mean and range.
5. **The recommended ensemble** is the one chosen on split 0 (:data:`RECOMMENDED_SPLIT`).

Descriptive figures (used for no choice): every candidate's whole-space ρ and τ, the ceiling of any
score of the MLP abstraction and of the conv/pool-aware abstraction, ρ on NASLib-style samples of
1,000 cells.

Usage::

    .venv/bin/python benchmarks/ntk_ensemble.py [--csv NB201.csv] [--out docs/ntk_ranking.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from md_tables import md_table, write_markdown  # benchmarks/md_tables.py (scripts run from this folder)
from nb201_csv import add_csv_argument, csv_missing  # benchmarks/nb201_csv.py (scripts run from this folder)

from nasplug import scorers, search_spaces
from nasplug.nasbench import SHORT_NAMES, load_benchmark
from nasplug.nasbench.metrics import bootstrap_ci, kendall_tau, spearman_rho
from nasplug.ranking import select_rank_ensemble
from nasplug.scorers import oriented
from nasplug.scorers.ensemble import aggregate_ranks, rank_table
from nasplug.theory import NTKConfig
from nasplug.theory.propagation import distinct_networks

ROOT = Path(__file__).resolve().parents[1]

#: The candidate scorers (registered names, default parameters), fixed before any evaluation.
CANDIDATES: tuple[str, ...] = (
    # topology [C22 §4] and the live FLOPs proxy
    "effective_depth", "effective_width", "num_paths", "sum_depth_cubed", "live_param_cost",
    # the maximal-learning-rate rule [C24]
    "max_lr_multiplier", "max_lr_multiplier_cnn",
    # the NNGP kernel [C22 §3]
    "nngp_lambda_min", "nngp_lambda_min_paper", "nngp_lambda_min_normalized", "nngp_inverse_condition",
    "nngp_bound",
    # the NTK of the MLP abstraction (docs/ntk.md)
    "ntk_mlp_lambda_min", "ntk_mlp_inverse_condition", "ntk_mlp_lambda_min_normalized", "ntk_mlp_logdet",
    "ntk_mlp_effective_rank",
    # the conv/pool-aware NTK (docs/ntk.md)
    "ntk_lambda_min", "ntk_inverse_condition", "ntk_lambda_min_normalized", "ntk_logdet",
    "ntk_effective_rank",
)
#: Seeds of the random tuning / held-out halves.
SPLITS: tuple[int, ...] = tuple(range(10))
RECOMMENDED_SPLIT = 0
TUNE_ON = "cifar10"
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
#: Bootstrap replicates of ρ's interval (τ's use a fifth of them: τ is not vectorized).
BOOTSTRAP = 1000
#: NASLib-style evaluation: ρ on random samples of this many cells, this many draws.
NASLIB_SAMPLE, NASLIB_DRAWS = 1000, 200
#: Published training-free rankers on NB201 (Spearman ρ C10 / C100 / IN16 unless stated), for context.
PUBLISHED = (
    ("AZ-NAS (Lee & Ham 2024), 4 proxies, forward + backward passes", "0.913 / 0.900 / 0.886"),
    ("ZiCo (Li et al. 2023)", "0.80 / 0.81 / 0.79"),
    ("synflow (Abdelfattah et al. 2021)", "0.74 / 0.76 / 0.75"),
    ("vote of synflow, jacob_cov, snip (Abdelfattah et al. 2021)", "0.82 (C10)"),
    ("NASLib proxies, post-hoc triple on a 491-cell subset (as quoted in issue 12)", "0.86–0.87"),
)


def spec(weights: dict[str, float], mode: str) -> str:
    return f"`{mode}` of " + ", ".join(f"{n} × {w:+g}" for n, w in weights.items())


def score_candidates(space) -> tuple[dict[str, np.ndarray], float]:
    """Oriented whole-space scores of every candidate, and the seconds it took."""
    start = time.perf_counter()
    batch = space.batch()
    out = {}
    for name in CANDIDATES:
        scorer = scorers.get(name)
        out[name] = oriented(scorer.score_many(batch), scorer.higher_is_better)
    return out, time.perf_counter() - start


def class_means(classes: np.ndarray, truth: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Mean accuracy of each class over ``cells`` (NaN for a class without such cells)."""
    ok = cells[np.isfinite(truth[cells])]
    size = classes.max() + 1
    sums = np.bincount(classes[ok], weights=truth[ok], minlength=size)
    counts = np.bincount(classes[ok], minlength=size)
    return np.divide(sums, counts, out=np.full(size, np.nan), where=counts > 0)


def ceilings(classes: np.ndarray, truth: np.ndarray, tune: np.ndarray, test: np.ndarray) -> tuple[float, ...]:
    """What a score that is a function of the class can reach: ρ of the oracle scoring each cell by
    its class's mean accuracy — in-sample over all cells (biased up when classes are small), out of
    sample (means from ``tune``, ρ on the ``test`` cells whose class has tuning cells), and the share
    of ``test`` that is covered."""
    everything = np.arange(len(classes))
    inside = spearman_rho(class_means(classes, truth, everything)[classes], truth)
    means = class_means(classes, truth, tune)[classes[test]]
    covered = np.isfinite(means)
    outside = spearman_rho(means[covered], truth[test][covered])
    return inside, outside, covered.mean()


def abstraction_classes(space, config: NTKConfig) -> tuple[np.ndarray, int]:
    """Per cell, its distinct theory network (no-path cells share one class), and the count."""
    batch = space.batch()
    nets = distinct_networks(batch, config.edge_models(batch))
    return np.where(nets.inverse >= 0, nets.inverse + 1, 0), len(nets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_csv_argument(parser)
    parser.add_argument("--out", default=str(ROOT / "docs" / "ntk_ranking.md"))
    args = parser.parse_args(argv)
    if csv_missing(args.csv):
        return 2

    space = search_spaces.get("nb201")
    table = load_benchmark(args.csv)
    truths = {d: table.aligned(space, np.arange(space.size), d) for d in DATASETS}
    features, score_s = score_candidates(space)
    ranks = rank_table(features)
    boot = np.random.default_rng(12345)
    out: list[str] = []

    def emit(text: str = "") -> None:
        out.append(text)
        print(text)

    emit("# Held-out training-free ranking of NAS-Bench-201\n")
    emit("Generated by `benchmarks/ntk_ensemble.py`; the protocol below was committed before its first "
         "run (`git log -- benchmarks/ntk_ensemble.py`). Ground truth: test accuracy after 200 epochs, "
         "mean over seeds (`../shared/data/nb201`).\n")
    emit(f"**Protocol.** {len(CANDIDATES)} candidates (every fast registered scorer of the topology, "
         "[C24], NNGP and NTK families, default parameters) score all 15,625 cells "
         f"({score_s:.1f} s in all, no accuracy seen); ranks are taken over the whole space. For each "
         f"of {len(SPLITS)} seeded splits, greedy forward selection "
         "(`nasplug.ranking.select_rank_ensemble`: weights 0.25/0.5/1/2, both signs, ≤ 6 members, "
         "a step must add > 0.001, mean or log aggregation) chooses an ensemble on a random half "
         "using **CIFAR-10 only**; ρ and τ are reported on the **other half** for all three datasets "
         "with 95 % bootstrap intervals over held-out cells. The recommended ensemble is the one "
         f"chosen on split {RECOMMENDED_SPLIT}.\n")

    # ------------------------------------------------------------------ the splits
    results = []
    for seed in SPLITS:
        perm = np.random.default_rng(seed).permutation(space.size)
        tune, test = np.sort(perm[: space.size // 2]), np.sort(perm[space.size // 2:])
        tune_ranks = {k: v[tune] for k, v in ranks.items()}
        chosen = select_rank_ensemble(tune_ranks, truths[TUNE_ON][tune], spearman_rho)
        score = aggregate_ranks(ranks, chosen.weights, chosen.mode)
        best_single = max(CANDIDATES,
                          key=lambda n: spearman_rho(features[n][tune], truths[TUNE_ON][tune]))
        results.append({
            "seed": seed, "chosen": chosen, "score": score, "test": test, "best_single": best_single,
            "rho": {d: spearman_rho(score[test], truths[d][test]) for d in DATASETS},
            "single_rho": {d: spearman_rho(features[best_single][test], truths[d][test]) for d in DATASETS},
        })
        print(f"split {seed}: {spec(chosen.weights, chosen.mode)}", file=sys.stderr)

    rec = results[RECOMMENDED_SPLIT]
    test = rec["test"]
    emit(f"## The recommended ensemble (split {RECOMMENDED_SPLIT})\n")
    emit(f"{spec(rec['chosen'].weights, rec['chosen'].mode)} (weights in each scorer's registry "
         f"orientation; tuning-half C10 ρ {rec['chosen'].value:.3f}).\n")
    rows = []
    singles = (f"best single on the tuning half: `{rec['best_single']}`", features[rec["best_single"]])
    for label, values in (("ensemble", rec["score"]), singles):
        row = [label]
        for d in DATASETS:
            v, t = values[test], truths[d][test]
            lo, hi = bootstrap_ci(v, t, BOOTSTRAP, boot)
            tlo, thi = bootstrap_ci(v, t, BOOTSTRAP // 5, boot, kendall=True)
            row += [f"{spearman_rho(v, t):.3f} [{lo:.3f}, {hi:.3f}]",
                    f"{kendall_tau(v, t):.3f} [{tlo:.3f}, {thi:.3f}]"]
        rows.append(row)
    emit(md_table(["held-out half", *(f"{SHORT_NAMES[d]} {m}" for d in DATASETS
                                      for m in ("ρ [95% CI]", "τ [95% CI]"))], rows))
    whole = " / ".join(f"{spearman_rho(rec['score'], truths[d]):.3f}" for d in DATASETS)
    emit(f"\nOn the whole space (the tuning half's C10 included): ρ = {whole}.\n")

    emit("## Every split\n")
    rows = []
    for r in results:
        rows.append([str(r["seed"]), spec(r["chosen"].weights, r["chosen"].mode),
                     *(f"{r['rho'][d]:.3f}" for d in DATASETS), f"`{r['best_single']}`",
                     *(f"{r['single_rho'][d]:.3f}" for d in DATASETS)])
    emit(md_table(["split", "chosen on the tuning half (C10)",
                   *(f"held-out {SHORT_NAMES[d]} ρ" for d in DATASETS), "best single (tuning C10)",
                   *(f"its held-out {SHORT_NAMES[d]} ρ" for d in DATASETS)], rows))
    summary = []
    for d in DATASETS:
        x = np.array([r["rho"][d] for r in results])
        summary.append(f"{SHORT_NAMES[d]} {x.mean():.3f} (range {x.min():.3f}–{x.max():.3f})")
    emit(f"\nHeld-out ρ over the {len(SPLITS)} splits, mean (range): " + "; ".join(summary) + ".")
    counts: dict[str, int] = {}
    for r in results:
        for n in r["chosen"].weights:
            counts[n] = counts.get(n, 0) + 1
    emit("Members chosen (splits out of " + str(len(SPLITS)) + "): "
         + ", ".join(f"`{n}` {c}" for n, c in sorted(counts.items(), key=lambda x: -x[1])) + ".\n")

    # ------------------------------------------------------------------ descriptive
    emit("## Every candidate on the whole space (descriptive; no choice uses it)\n")
    rows = []
    for name in sorted(CANDIDATES, key=lambda n: -spearman_rho(features[n], truths[TUNE_ON])):
        rows.append([f"`{name}`", *(f"{spearman_rho(features[name], truths[d]):.3f} / "
                                     f"{kendall_tau(features[name], truths[d]):.3f}" for d in DATASETS)])
    emit(md_table(["scorer", *(f"{SHORT_NAMES[d]} ρ / τ" for d in DATASETS)], rows))

    emit("\n## Ceilings of the abstractions\n")
    emit("Any score that is a function of the theory network gives equal scores to cells that share "
         "one. *Ceiling* = ρ of an oracle that scores every cell by the mean accuracy of its network's "
         "cells: *in-sample* over all cells (biased up when networks have few cells: with the "
         "accuracies shuffled across cells it is far from 0), and *held out* (means from the tuning "
         f"half of split {RECOMMENDED_SPLIT}, ρ on the held-out cells whose network has tuning cells; "
         "coverage in brackets).\n")
    rows = []
    tune = np.setdiff1d(np.arange(space.size), test)
    shuffled = {d: np.random.default_rng(1).permutation(truths[d]) for d in DATASETS}
    for label, config in (("MLP abstraction (pool = skip, 1×1 = 3×3)", NTKConfig(conv_aware=False)),
                          ("1×1 ≠ 3×3, pool = skip (γ = 1)", NTKConfig(pool_gamma=1.0)),
                          ("conv/pool-aware (1×1 ≠ 3×3, pool ≠ skip)", NTKConfig())):
        classes, n = abstraction_classes(space, config)
        row = [label, f"{n:,} + no-path"]
        for d in DATASETS:
            inside, outside, coverage = ceilings(classes, truths[d], tune, test)
            null = ceilings(classes, shuffled[d], tune, test)[0]
            row.append(f"{inside:.3f} / {outside:.3f} ({coverage:.0%}) / {null:.3f}")
        rows.append(row)
    emit(md_table(["abstraction", "distinct networks",
                   *(f"{SHORT_NAMES[d]} in-sample / held out (coverage) / in-sample on shuffled"
                     for d in DATASETS)], rows))

    emit("\n## NASLib-style samples\n")
    rng = np.random.default_rng(7)
    rows = []
    for label, values in (("recommended ensemble", rec["score"]),
                          ("`live_param_cost`", features["live_param_cost"])):
        row = [label]
        for d in DATASETS:
            draws = (rng.choice(space.size, NASLIB_SAMPLE, replace=False) for _ in range(NASLIB_DRAWS))
            x = np.array([spearman_rho(values[i], truths[d][i]) for i in draws])
            row.append(f"{x.mean():.3f} ± {x.std():.3f}")
        rows.append(row)
    emit(f"ρ on {NASLIB_DRAWS} random samples of {NASLIB_SAMPLE:,} cells (mean ± sd), the sample size of "
         "NASLib-style zero-cost comparisons (these samples overlap the tuning half).\n")
    emit(md_table(["score", *(f"{SHORT_NAMES[d]} ρ" for d in DATASETS)], rows))

    emit("\n## Published training-free rankers on NB201 (context)\n")
    emit(md_table(["method", "ρ C10 / C100 / IN16"], [list(p) for p in PUBLISHED]))
    emit("")
    write_markdown(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
