"""How do nasplug's training-free scores rank NAS-Bench-101 and NAS-Bench-301 cells, and what does
[C22]'s box do there?

On the shared 250-cell samples of each benchmark (``../shared/data/nb101``, ``../shared/data/nb301``;
ground truth: the validation accuracy recorded there), writes ``docs/nasbench_ranking.md``:

1. Spearman ρ (95 % bootstrap interval over the cells) and Kendall τ of every fast registered scorer,
   of the rank-aggregate ensemble tuned on NAS-Bench-201 CIFAR-10 (docs/nb201_ranking.md, members and
   weights copied, **not re-tuned**), and of #params and FLOPs of the real networks (the benchmark's
   network for NB101; the DARTS network NB301 trained, C = 32, 8 cells) and of the ``params_m`` the
   sample records (NASLib's count);
2. the box filters: [C22 §5.3]'s rule fitted on the sample itself and on a 200,000-cell sample of the
   space (nasplug's faithful DAGs), the authors' fixed NB201 box, and for NB301 the authors' box for
   the NDS/DARTS space (``[0.5, 1.6] × [4, 12]``, commented out in their ``search.py``) in *their*
   convention (normal cell only, no preprocessing, a separable conv counted once); what each keeps
   and whether the kept cells are better or worse.

Run: ``.venv/bin/python benchmarks/nasbench_ranking.py [--reps 1000]`` (a few minutes: FLOPs of 250
DARTS networks on the meta device).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from md_tables import md_table  # benchmarks/md_tables.py (scripts run from this folder)

from nasplug import ArchGraph, scorers
from nasplug.graph import darts
from nasplug.nasbench import load_benchmark
from nasplug.nasbench.analysis import filter_stats
from nasplug.nasbench.metrics import bootstrap_ci, kendall_tau, spearman_rho
from nasplug.ranking import rank_aggregate, score_cells
from nasplug.scorers import oriented
from nasplug.scorers.topology import BoxFilter

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FILES = {"nb101": DATA / "nb101" / "nb101_cifar10_naslib.csv",
         "nb301": DATA / "nb301" / "nb301_cifar10_naslib.csv"}
NAMES = {"nb101": "NAS-Bench-101", "nb301": "NAS-Bench-301 (DARTS)"}
#: The ρ-ensemble chosen on NB201 CIFAR-10 (docs/nb201_ranking.md, section 2): mean of normalized
#: ranks with these weights; "keep:" members are the 0/1 flag of a filter.
NB201_ENSEMBLE = {"live_param_cost": 0.25, "effective_depth": 0.25, "nngp_inverse_condition": 0.25,
                  "keep:dag_box_authors": 0.25, "max_lr_multiplier_cnn": -0.25}
C22_BOX_NB201 = ((0.99, 2.51), (0.99, 3.01))
C22_BOX_DARTS = ((0.5, 1.6), (4.0, 12.0))


def c22_darts_view(genotype) -> ArchGraph:
    """The DAG [C22]'s ``pre_is_bad`` reads of a DARTS genotype (their ``nds_darts`` branch): the normal
    cell only, its two inputs as sources without preprocessing (a virtual node 0 feeds both by
    skips), every op with 'conv' in its name one parameterized layer (a separable conv too), skips and
    pools identities, the output a sum of nodes 2..5; two pairs of a node with one input share one
    matrix entry, the later one winning — as their affinity matrix does."""
    entries: dict[tuple[int, int], str] = {}
    for k, (op, inp) in enumerate(darts.parse_genotype(genotype).normal):
        entries[(inp + 1, 3 + k // 2)] = "linear" if "conv" in op else "skip_connect"
    edges = {(0, 1): "skip_connect", (0, 2): "skip_connect", **entries,
             **{(node, 7): "skip_connect" for node in range(3, 7)}}
    return ArchGraph(8, edges)


def _f(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if np.isfinite(x) else "–"


def evaluate(which: str, reps: int, rng: np.random.Generator) -> tuple[list[str], str]:
    """The section of one benchmark, and a one-paragraph summary computed from its numbers."""
    table = load_benchmark(FILES[which]).labelled(["cifar10"])
    truth = table.column("cifar10", "valid_accuracy")
    fast = list(scorers.available("scorer", include_slow=False))
    start = time.perf_counter()
    result = score_cells(table.archs, fast + ["num_params", "flops"], ["dag_box", "dag_box_authors"])
    seconds = time.perf_counter() - start
    scores, higher = dict(result.scores), dict(result.higher_is_better)
    scores["params_m (recorded, NASLib)"] = table.column("cifar10", "params_m")
    higher["params_m (recorded, NASLib)"] = True
    ensemble_inputs = {**scores, "keep:dag_box_authors": result.keep["dag_box_authors"].astype(float)}
    scores["NB201 C10 ρ-ensemble (not re-tuned)"] = rank_aggregate(
        ensemble_inputs, NB201_ENSEMBLE, higher, mode="mean")
    higher["NB201 C10 ρ-ensemble (not re-tuned)"] = True

    rows, rhos = [], {}
    for name, values in scores.items():
        v = oriented(values, higher[name])
        rho = rhos[name] = spearman_rho(v, truth)
        lo, hi = bootstrap_ci(v, truth, reps, rng)
        rows.append((rho if np.isfinite(rho) else -9, [f"`{name}`" + ("" if higher[name] else " (↓)"),
                                                       f"{rho:.3f}", f"[{lo:.2f}, {hi:.2f}]",
                                                       f"{kendall_tau(v, truth):.3f}"]))
    rows.sort(key=lambda r: -r[0])
    out = [f"## {NAMES[which]}: {len(table)} cells, validation accuracy {np.nanmin(truth):.2f}–"
           f"{np.nanmax(truth):.2f} %\n",
           f"Scoring all {len(table)} cells with every scorer took {seconds:.1f} s (the FLOPs and #params of "
           "the real networks are counted on PyTorch's meta device).\n",
           md_table(["scorer", "ρ", "95 % CI", "τ"], [r for _, r in rows]), ""]

    cells = result.cells()
    boxes = {
        "`dag_box` fitted on these cells": scorers.get("dag_box", space=cells),
        "`dag_box` fitted on 200,000 cells of the space": scorers.get("dag_box", space=which),
        "[C22]'s fixed NB201 box (`dag_box_authors`)": BoxFilter(*C22_BOX_NB201),
    }
    keeps = {label: f.keep_many(cells) for label, f in boxes.items()}
    descriptions = {label: f.description for label, f in boxes.items()}
    if which == "nb301":
        view = [c22_darts_view(a) for a in table.archs]
        label = "[C22]'s NDS/DARTS box, their convention"
        keeps[label] = BoxFilter(*C22_BOX_DARTS).keep_many(view)
        descriptions[label] = "0.5 ≤ d̄ ≤ 1.6, 4 ≤ m̄ ≤ 12 on `pre_is_bad`'s reading of the normal cell"
    frows, verdicts = [], []
    for label, keep in keeps.items():
        fs = filter_stats(label, keep, truth, (1, 10))
        delta = fs.kept_mean - fs.removed_mean if fs.kept and fs.kept < len(truth) else float("nan")
        verdict = "keeps nothing" if not fs.kept else ("helps" if delta > 0 else "hurts")
        verdicts.append(f"{label} {verdict} ({_f(delta, 2)} points, keeps {fs.kept}, "
                        f"{100 * fs.top_kept['10']:.0f} % of the true top-10)")
        frows.append([label, descriptions[label], f"{fs.kept} ({100 * fs.kept_fraction:.0f} %)",
                      f"{_f(fs.kept_mean)} / {_f(fs.removed_mean)}", f"{_f(delta)} ({verdict})",
                      f"{_f(fs.kept_best)} / {_f(fs.removed_best)}", f"{100 * fs.top_kept['10']:.0f} %"])
    out += ["Box filters (a box *helps* when the cells it keeps are better on average than those it "
            "removes):\n",
            md_table(["box", "bounds", "kept", "mean acc kept / removed", "difference", "best kept / removed",
                      "true top-10 kept"], frows), ""]
    fast_rhos = {n: r for n, r in rhos.items() if n in fast}
    best = max(fast_rhos, key=lambda n: fast_rhos[n])
    ens = "NB201 C10 ρ-ensemble (not re-tuned)"
    summary = (f"* **{NAMES[which]}**: best fast scorer `{best}` ρ = {rhos[best]:.3f}; NB201's held-out "
               f"ensemble `rank_ensemble` {rhos['rank_ensemble']:.3f}, its member `ntk_lambda_min` "
               f"{rhos['ntk_lambda_min']:.3f}; the earlier whole-space NB201 ρ-ensemble {rhos[ens]:.3f}; "
               f"#params of the real network {rhos['num_params']:.3f}, FLOPs "
               f"{rhos['flops']:.3f}. Boxes: " + "; ".join(verdicts) + ".")
    return out, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="bootstrap replicates (default 1000)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "nasbench_ranking.md"))
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    lines = [
        "# NAS-Bench-101 and NAS-Bench-301: training-free ranking and [C22]'s box",
        "",
        "Generated by `benchmarks/nasbench_ranking.py` on the shared samples (250 cells each, from NASLib's",
        "zero-cost files; ground truth: the validation accuracy recorded there — for NB301 a surrogate",
        "model's prediction). ρ = Spearman with a 95 % percentile-bootstrap interval over the cells",
        f"({args.reps} replicates): with 250 cells a ρ is known to about ±0.05–0.1. (↓) = lower is better,",
        "oriented before ranking. Nothing was tuned on these benchmarks; the ensembles are NB201's:",
        "`rank_ensemble` (chosen on a random half of NB201 with CIFAR-10 only, docs/ntk_ranking.md; ranks",
        "taken over these cells) and the earlier whole-space ρ-ensemble (docs/nb201_ranking.md).",
        "",
        "## Summary",
        "",
    ]
    sections = []
    for which in ("nb101", "nb301"):
        section, summary = evaluate(which, args.reps, rng)
        lines.append(summary)
        sections += section
    lines += ["", *sections]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
