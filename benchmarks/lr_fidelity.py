"""How well does [C24]'s maximal-learning-rate law predict grid-searched maximal LRs? (digits, CPU)

[C24] (W. Chen, J. Wu, Z. Wang, B. Hanin, *Principled Architecture-aware Scaling of
Hyper-parameters*, ICLR 2024, arXiv:2402.17440) predicts ``η* ∝ (Σ_p L_p³)^(-1/2)`` and reports a
Pearson correlation r = 0.838 between the prediction and the grid-searched maximal LR of MLP
topologies on CIFAR-10. This benchmark measures that correlation for MLP-DAGs on scikit-learn's
digits and asks which *depth convention* fits, with a selection/validation split:

* **in-sample** topologies: 16 hand-picked 5-node DAGs (chains, residual chains, dense DAGs,
  input→output skips); conventions and their offsets are *chosen* on these only;
* **held-out** topologies: 16 6-node DAGs drawn uniformly at random (fixed seed) among those with
  a path of positive depth; the chosen conventions are *validated* on these.

Measurement. The maximal LR of a topology is the paper's: the largest LR (log grid, factor
2^(1/4)) with the smallest seed-averaged training loss after one epoch of constant-LR plain SGD; a
diverged seed makes the LR's loss infinite. Because that argmin is noisy (the one-epoch loss
curve is flat and bumpy near its minimum) the benchmark also reports (i) a *tolerant* estimator —
the largest LR whose mean loss is within 10 % of the minimum —, (ii) a split-half reliability (the
correlation between maximal LRs found from two disjoint halves of the seeds: no predictor can
correlate with the measurement much better than the measurement with itself), and (iii) a seed
bootstrap interval for every r. Pearson r is reported on raw LRs (what the previous version of
this benchmark used; whether [C24]'s 0.838 is on raw or log LRs was not checked here) — dominated
by the largest LRs — and on log LRs (scale-free: every topology weighs the same).

Speed. All seeds × grid LRs of one topology are trained *at once* as one batched network
(``torch.bmm`` over stacked weights, per-model LR and per-model shuffling). The networks are built
by :func:`nasplug.models.build_mlp` (arch-aware init, weights copied into the stack) and the
batched loop reproduces :func:`nasplug.train.train` step for step; unless ``--no-check``, it is
verified against ``train`` for a few (arch, LR, seed) triples before measuring. Width 128 by
default (256 costs ~4× on CPU; a robustness run at 256 is in the doc). About 10 minutes on one
CPU thread for 16 seeds; ``--curves`` caches the loss curves so the work can be split over runs.

Usage: ``python benchmarks/lr_fidelity.py [--seeds 16] [--width 128] [--epochs 1] [--quick]
[--curves cache.json --max-minutes 11]``
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from nasplug.data import ArrayDataset, load_digits
from nasplug.graph import ArchGraph
from nasplug.models import build_mlp
from nasplug.theory.hparams import DEFAULT_OFFSET, init_gains, lr_multiplier
from nasplug.train import evaluate, train

#: In-sample 5-node DAG codes (groups per node 1..4, digit per source: 0 zero, 1 skip, 2 linear).
TOPOLOGIES = [
    "2_01_001_0001",  # chain, depth 1
    "2_02_001_0001",  # chain, depth 2
    "2_02_002_0001",  # chain, depth 3
    "2_02_002_0002",  # chain, depth 4
    "2_12_012_0012",  # residual chain
    "2_22_222_2222",  # complete, all linear: 8 paths of depth 1..4
    "2_22_002_0002",  # two deep paths (3, 4)
    "1_11_111_2222",  # 8 paths of depth 1 (wide, shallow)
    "2_22_222_1111",  # dense body, skip readout: depths 0..3
    "2_21_112_1112",
    "2_02_002_2222",  # chain with all nodes feeding the output
    "2_12_112_1112",
    "2_20_022_2002",  # depths 1, 3, 3
    "2_02_022_0222",
    "1_21_121_1212",
    "2_11_111_1112",
]
N_HELD_OUT = 16
HELD_OUT_SEED = 2024
OFFSETS = (0, 1, 2, 3, 4, 5)
GRID = [2 ** (k / 4) for k in range(-20, 5)]  # 0.031 .. 2, factor 2^(1/4)
BATCH = 32
TOLERANCE = 0.10  # tolerant estimator: mean loss within 10 % of the minimum


def held_out_topologies(n: int = N_HELD_OUT, seed: int = HELD_OUT_SEED, n_nodes: int = 6) -> list[str]:
    """``n`` random DAG codes with ``n_nodes`` nodes (each edge zero/skip/linear with probability
    1/3) that have an input→output path of positive depth (others have no LR) and compute a
    function different from every in-sample topology and from each other
    (:meth:`ArchGraph.canonical_key`): a 6-node code whose live part is a 5-node chain is the same
    network, and would leak the in-sample measurement into the held-out set."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    seen = {ArchGraph.parse(c).canonical_key() for c in TOPOLOGIES}
    while len(out) < n:
        code = "_".join("".join(str(d) for d in rng.integers(0, 3, size=j)) for j in range(1, n_nodes))
        arch = ArchGraph.parse(code)
        stats = arch.path_stats()
        if stats.num_paths and stats.max_depth > 0 and arch.canonical_key() not in seen:
            seen.add(arch.canonical_key())
            out.append(code)
    return out


# ====================================================================== batched training
class StackedMLP:
    """``M`` copies of one MLP-DAG (:func:`build_mlp`, bias, no BN) with their own weights, trained
    together: every linear layer is a ``(M, out, in)`` weight stack applied with ``torch.baddbmm``."""

    def __init__(self, code: str, nets: Sequence[torch.nn.Module]):
        arch = ArchGraph.parse(code)
        live = arch.live_edges()
        self.output = arch.output
        # in-edges per node in the order DAGCell sums them (sorted by (t, s))
        self.inputs: dict[int, list[tuple[int, bool]]] = {}
        for (s, t) in sorted(live, key=lambda e: (e[1], e[0])):
            self.inputs.setdefault(t, []).append((s, live[(s, t)].is_parameterized))
        self.params: dict[str, torch.Tensor] = {}

        def stack(name: str, layers: list[torch.nn.Linear]) -> None:
            self.params[name + ".w"] = torch.stack([m.weight.detach().clone() for m in layers])
            self.params[name + ".b"] = torch.stack([m.bias.detach().clone() for m in layers])

        stack("stem", [n.stem[1] for n in nets])
        for (s, t), op in live.items():
            if op.is_parameterized:
                stack(f"{s}_{t}", [n.cell.edge_module((s, t))[1] for n in nets])
        stack("head", [n.head[1] for n in nets])
        for p in self.params.values():
            p.requires_grad_(True)

    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        w, b = self.params[name + ".w"], self.params[name + ".b"]
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, B, classes)`` of inputs ``(M, B, features)``."""
        nodes = {0: self._linear("stem", x)}
        for t in range(1, self.output + 1):
            total = None
            for s, param in self.inputs.get(t, ()):
                y = self._linear(f"{s}_{t}", torch.relu(nodes[s])) if param else nodes[s]
                total = y if total is None else total + y
            if total is not None:
                nodes[t] = total
        return self._linear("head", torch.relu(nodes[self.output]))


def _mean_ce(model: StackedMLP, x: torch.Tensor, y: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Per-model mean cross-entropy on a whole split (as :func:`nasplug.train.evaluate`)."""
    m = next(iter(model.params.values())).shape[0]
    total = torch.zeros(m, dtype=torch.float64)
    with torch.no_grad():
        for i in range(0, len(y), chunk):
            logits = model(x[i:i + chunk].expand(m, -1, -1))
            ce = F.cross_entropy(logits.flatten(0, 1), y[i:i + chunk].repeat(m), reduction="none")
            total += ce.view(m, -1).double().sum(1)
    return total / len(y)


def one_epoch_losses(code: str, lrs: Sequence[float], seeds: Sequence[int], data: ArrayDataset,
                     width: int, epochs: int = 1) -> np.ndarray:
    """Training loss on the whole training set after ``epochs`` of constant-LR plain SGD, for every
    (seed, LR) pair at once: ``(len(seeds), len(lrs))``, ``inf`` where the run diverged. Seed
    ``s`` fixes both the init (``build_mlp(seed=s)``) and the shuffling, as in ``train(seed=s)``."""
    pairs = [(s, lr) for s in seeds for lr in lrs]
    nets = {s: build_mlp(code, data.in_dim, width, data.num_classes, seed=s, init="arch_aware")
            for s in seeds}
    model = StackedMLP(code, [nets[s] for s, _ in pairs])
    m = len(pairs)
    lr = torch.tensor([lr for _, lr in pairs], dtype=torch.float32)
    alive = torch.ones(m, dtype=torch.bool)
    x_all = data.normalize(data.x_train).flatten(1)
    y_all = data.y_train
    n = len(y_all)
    gens = {s: torch.Generator().manual_seed(s) for s in seeds}
    for _ in range(epochs):
        perms = {s: torch.randperm(n, generator=gens[s]) for s in seeds}
        perm = torch.stack([perms[s] for s, _ in pairs])  # (M, n)
        for i in range(0, n, BATCH):
            idx = perm[:, i:i + BATCH]
            logits = model(x_all[idx])
            ce = F.cross_entropy(logits.flatten(0, 1), y_all[idx].flatten(), reduction="none")
            loss = ce.view(m, -1).mean(1)
            alive &= torch.isfinite(loss.detach())
            grads = torch.autograd.grad(torch.where(alive, loss, 0.0).sum(), list(model.params.values()))
            with torch.no_grad():
                for p, g in zip(model.params.values(), grads):
                    shape = (m,) + (1,) * (p.dim() - 1)
                    p.sub_(lr.view(shape) * g)
                    p.copy_(torch.where(alive.view(shape), p, torch.zeros_like(p)))  # park dead models
    x_test = data.normalize(data.x_test).flatten(1)
    alive &= torch.isfinite(_mean_ce(model, x_test, data.y_test))  # train() checks the test loss too
    final = _mean_ce(model, x_all, y_all)
    final = torch.where(alive & torch.isfinite(final), final, torch.full_like(final, math.inf))
    return final.numpy().reshape(len(seeds), len(lrs))


def check_against_train(data: ArrayDataset, width: int) -> float:
    """Largest relative difference between the batched loop and :func:`train` + :func:`evaluate`
    on a few (topology, LR, seed) triples at moderate LRs (chaotic large-LR runs amplify
    round-off, so they are not compared)."""
    worst = 0.0
    for code, lr, seed in (("2_21_112_1112", 0.05, 1), ("2_22_222_2222", 0.1, 0), ("1_11_111_2222", 0.08, 2)):
        net = build_mlp(code, data.in_dim, width, data.num_classes, seed=seed, init="arch_aware")
        train(net, data, epochs=1, lr=lr, schedule="constant", seed=seed, batch_size=BATCH, momentum=0.0,
              weight_decay=0.0, progress=False, device="cpu")
        ref, _ = evaluate(net, data, "train")
        got = float(one_epoch_losses(code, [lr], [seed], data, width)[0, 0])
        worst = max(worst, abs(got - ref) / ref)
    return worst


# ====================================================================== estimators
def paper_max_lr(losses: np.ndarray) -> int:
    """Index of the largest grid LR with the smallest seed-averaged loss (a diverged seed makes
    the mean infinite) [C24]."""
    mean = seed_mean(losses)
    best = np.min(mean)
    return int(np.flatnonzero(mean == best).max())


def tolerant_max_lr(losses: np.ndarray, tol: float = TOLERANCE) -> int:
    """Index of the largest grid LR whose seed-averaged loss is within ``tol`` (relative) of the
    minimum: the same target, less sensitive to which of several near-equal LRs wins the argmin."""
    mean = seed_mean(losses)
    return int(np.flatnonzero(mean <= (1 + tol) * np.min(mean)).max())


def seed_mean(losses: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        mean = losses.mean(axis=0)
    return np.where(np.isfinite(losses).all(axis=0), mean, np.inf)


ESTIMATORS: dict[str, Callable[[np.ndarray], int]] = {"paper": paper_max_lr, "tol10": tolerant_max_lr}


# ====================================================================== conventions
def output_variance(code: str) -> float:
    """``q_H = E z_H² / E z_0²`` of the arch-aware theory network: the diagonal of docs/theory.md §3's exact
    NNGP recursion (skip cross terms included) with each edge's own target-rule gain.
    ``nasplug.theory.nngp.nngp_kernel`` takes one σ² for every edge, so the per-edge gains are applied
    here; on the diagonal the ReLU map is the identity (``h(1) = 1``), so no Gram is needed."""
    arch = ArchGraph.parse(code)
    gains = init_gains(arch, "target")
    live = arch.live_edges()
    n = arch.n_nodes
    cov = np.zeros((n, n))
    cov[0, 0] = 1.0
    for t in range(1, n):
        skips = [s for (s, tt), op in live.items() if tt == t and not op.is_parameterized]
        params = [s for (s, tt), op in live.items() if tt == t and op.is_parameterized]
        for b in range(t):
            cov[t, b] = cov[b, t] = sum(cov[a, b] for a in skips)
        # diagonal of f₁ is the diagonal itself (h(1) = 1); gain/2 scales σ² = 2 to the edge's σ²
        cov[t, t] = sum(cov[a, a2] for a in skips for a2 in skips) + sum(gains[(s, t)] / 2 * cov[s, s]
                                                                         for s in params)
    return float(cov[n - 1, n - 1])


def predict(code: str, convention: str, offset: float) -> float:
    """Predicted maximal LR up to a constant for a convention:

    * ``all``      — [C24]: ``(Σ_p (d_p + o)³)^(-1/2)`` over every path;
    * ``noskip``   — the same without pure-skip paths (``d_p = 0``: no weight on them);
    * ``weighted`` — ``(Σ_p w_p (d_p + o)³)^(-1/2)`` with ``w_p`` the path's variance share under the
      target-rule init: ``nasplug.theory.hparams.lr_multiplier(path_weights="target")``;
    * ``nngp``     — ``all`` divided by ``sqrt(q_H)``, the output variance of the exact recursion.
    """
    hist = ArchGraph.parse(code).path_stats().depth_histogram
    if convention == "weighted":  # the library's option, against a unit-weight base of depth 1
        return lr_multiplier(code, offset, [1.0], path_weights="target")
    total = sum(h * (d + offset) ** 3 for d, h in enumerate(hist) if convention != "noskip" or d > 0)
    value = total ** -0.5 if total > 0 else math.nan
    if convention == "nngp":
        value /= math.sqrt(output_variance(code))
    return value


CONVENTIONS = ("all", "noskip", "weighted", "nngp")


def pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return math.nan
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def correlations(codes: Sequence[str], found: dict[str, float], convention: str,
                 offset: float) -> tuple[float, float]:
    """Pearson r (raw, log) between prediction and measurement over ``codes``."""
    pred = [predict(c, convention, offset) for c in codes]
    meas = [found[c] for c in codes]
    return pearson(pred, meas), pearson(np.log(pred), np.log(meas))


# ====================================================================== main
def measure(codes: Sequence[str], seeds: Sequence[int], data: ArrayDataset, width: int, epochs: int,
            t0: float, cache: Path | None = None, max_seconds: float = math.inf) -> dict[str, np.ndarray]:
    """Loss curves ``(seeds, len(GRID))`` per topology. With ``cache`` (a JSON file) curves already
    there are reused and each new one is saved as soon as it is measured, so a long measurement can
    be split into several runs of at most ``max_seconds`` each."""
    curves = load_curves(cache) if cache is not None and cache.exists() else {}
    for code in codes:
        if code in curves:
            continue
        if time.perf_counter() - t0 > max_seconds:
            raise SystemExit(f"time budget spent; {len(curves)}/{len(codes)} topologies measured, "
                             "rerun to go on")
        curves[code] = one_epoch_losses(code, GRID, seeds, data, width, epochs)
        lr = GRID[paper_max_lr(curves[code])]
        print(f"{code:<20} max LR {lr:.4g}   [{time.perf_counter() - t0:.0f}s]", flush=True)
        if cache is not None:
            save_curves(cache, curves)
    return {c: curves[c] for c in codes}


def load_curves(path: Path) -> dict[str, np.ndarray]:
    saved = json.loads(path.read_text())
    return {c: np.array([[math.inf if v is None else v for v in row] for row in m]) for c, m in saved.items()}


def save_curves(path: Path, curves: dict[str, np.ndarray]) -> None:
    path.write_text(json.dumps({c: [[None if not math.isfinite(v) else round(float(v), 5) for v in row]
                                    for row in m] for c, m in curves.items()}))


def max_lrs(curves: dict[str, np.ndarray], estimator: str,
            seeds: Sequence[int] | None = None) -> dict[str, float]:
    est = ESTIMATORS[estimator]
    return {c: GRID[est(v if seeds is None else v[list(seeds)])] for c, v in curves.items()}


def analyse(curves: dict[str, np.ndarray], in_sample: Sequence[str], held_out: Sequence[str],
            n_boot: int = 200) -> dict:
    """Every statistic of the report, from the loss curves alone."""
    rng = np.random.default_rng(0)
    seeds = next(iter(curves.values())).shape[0]
    out: dict = {"tables": {}, "selected": {}, "reliability": {}, "seeds": {"all": seeds}}
    for est in ESTIMATORS:
        found = max_lrs(curves, est)
        # split-half reliability: max LR from even vs odd seeds, correlated across all topologies
        a = max_lrs(curves, est, range(0, seeds, 2))
        b = max_lrs(curves, est, range(1, seeds, 2))
        codes = list(curves)
        out["reliability"][est] = (pearson([a[c] for c in codes], [b[c] for c in codes]),
                                   pearson(np.log([a[c] for c in codes]), np.log([b[c] for c in codes])))
        rows = []
        for conv in CONVENTIONS:
            for off in OFFSETS:
                rows.append((conv, off, *correlations(in_sample, found, conv, off),
                             *correlations(held_out, found, conv, off)))
        out["tables"][est] = rows
        # selection on in-sample raw r, per convention; bootstrap over seeds for the held-out r
        for conv in CONVENTIONS:
            conv_rows = [r for r in rows if r[0] == conv]
            best = max(conv_rows, key=lambda r: r[2])
            boots = []
            for _ in range(n_boot):
                pick = rng.integers(0, seeds, size=seeds)
                f = max_lrs(curves, est, pick)
                boots.append((correlations(in_sample, f, conv, best[1])[0],
                              correlations(held_out, f, conv, best[1])[0]))
            lo, hi = np.percentile(np.asarray(boots), [5, 95], axis=0)
            out["selected"][(est, conv)] = (*best, (lo[0], hi[0]), (lo[1], hi[1]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1, help="epochs of constant-LR SGD per grid point")
    parser.add_argument("--quick", action="store_true", help="4 + 4 topologies, 2 seeds (smoke run)")
    parser.add_argument("--no-check", action="store_true", help="skip the batched-vs-train() check")
    parser.add_argument("--curves", help="JSON cache of loss curves: reused, and extended as measured")
    parser.add_argument("--max-minutes", type=float, default=math.inf,
                        help="stop measuring after this long (resume with the same --curves)")
    parser.add_argument("--seed-start", type=int, default=0, help="first seed (more seeds in a later run)")
    parser.add_argument("--extra-curves", nargs="*",
                        help="caches of the same setting with other seeds, stacked for the analysis")
    parser.add_argument("--compare", nargs="*", default=[], metavar="LABEL=CURVES",
                        help="loss-curve caches of other settings (e.g. 'width 256=w256.json'), "
                             "analysed the same way on the topologies they have")
    parser.add_argument("--provenance", help="how the cached curves were made (printed in the report)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "lr_fidelity.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    in_sample = TOPOLOGIES[:4] if args.quick else TOPOLOGIES
    held_out = held_out_topologies(4 if args.quick else N_HELD_OUT)
    seeds = 2 if args.quick else args.seeds
    data = load_digits(valid_fraction=0.0)  # the 1,438 / 359 split these figures were measured on
    t0 = time.perf_counter()
    check = math.nan
    if not args.no_check:
        check = check_against_train(data, args.width)
        print(f"batched loop vs train(): largest relative loss difference {check:.2e}", flush=True)
        if check > 1e-3:
            raise SystemExit("the batched loop does not reproduce train(); not measuring")
    cache = Path(args.curves) if args.curves else None
    seed_ids = range(args.seed_start, args.seed_start + seeds)
    curves = measure([*in_sample, *held_out], seed_ids, data, args.width, args.epochs, t0, cache,
                     args.max_minutes * 60)
    for extra in args.extra_curves or ():  # more seeds of the same setting: stack their rows
        more = load_curves(Path(extra))
        curves = {c: np.vstack([v, more[c]]) for c, v in curves.items()}
    seeds = next(iter(curves.values())).shape[0]
    measured = time.perf_counter() - t0
    result = analyse(curves, in_sample, held_out)
    for est, (r_raw, r_log) in result["reliability"].items():
        print(f"split-half reliability ({est}): r raw {r_raw:.3f}, r log {r_log:.3f}")
    for (est, conv), (_, off, ri, ri_log, rh, rh_log, ci_in, ci_out) in result["selected"].items():
        print(f"{est:<6} {conv:<9} offset {off}: in-sample r {ri:.3f} (log {ri_log:.3f}) "
              f"[{ci_in[0]:.2f}, {ci_in[1]:.2f}]  held-out r {rh:.3f} (log {rh_log:.3f}) "
              f"[{ci_out[0]:.2f}, {ci_out[1]:.2f}]")
    compare = []
    for item in args.compare:  # other settings: analysed on the topologies they have curves for
        label, _, cache_path = item.rpartition("=")
        other = load_curves(Path(cache_path))
        o_in, o_out = [c for c in in_sample if c in other], [c for c in held_out if c in other]
        other_result = analyse({c: other[c] for c in [*o_in, *o_out]}, o_in, o_out)
        compare.append((label, other_result, o_in, o_out))
    write_report(Path(args.out), args, seeds, in_sample, held_out, curves, result, check, measured, compare)
    print(f"wrote {args.out} ({time.perf_counter() - t0:.0f}s)")


def selected_rows(result: dict) -> list[str]:
    rows = []
    for (est, conv), (_, off, ri, ri_log, rh, rh_log, ci_in, ci_out) in result["selected"].items():
        rows.append(f"| `{est}` | `{conv}` | {off} | {ri:.3f} | {ri_log:.3f} | {rh:.3f} | {rh_log:.3f} | "
                    f"{ci_in[0]:.2f}–{ci_in[1]:.2f} | {ci_out[0]:.2f}–{ci_out[1]:.2f} |")
    return rows


SELECTED_HEADER = ["| estimator | convention | offset | in-sample r | in-sample r (log) | held-out r "
                   "| held-out r (log) | in-sample 90 % | held-out 90 % |",
                   "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]


def write_report(path: Path, args, seeds, in_sample, held_out, curves, result, check, measured,
                 compare=()) -> None:
    found = max_lrs(curves, "paper")
    tol = max_lrs(curves, "tol10")
    lines = [
        "# Maximal learning rate: prediction vs grid search ([C24] eq. 8)",
        "",
        "Generated by `benchmarks/lr_fidelity.py` (do not edit by hand). [C24] = W. Chen, J. Wu, Z. Wang,",
        "B. Hanin, *Principled Architecture-aware Scaling of Hyper-parameters*, ICLR 2024.",
        "",
        f"Setup: MLP-DAGs (`build_mlp`, width {args.width}, init `arch_aware`), scikit-learn digits",
        f"(1,438 training images), {args.epochs} epoch(s) of constant-LR plain SGD (batch {BATCH},",
        f"no momentum, no weight decay), {seeds} seeds (seed = init and shuffling). Grid: 2^(k/4),",
        f"{GRID[0]:.3f}–{GRID[-1]:.0f}.",
        "Maximal LR (`paper`) = the largest grid LR with the smallest seed-averaged training loss; `tol10` =",
        "the largest grid LR whose seed-averaged loss is within 10 % of that minimum. A diverged seed makes",
        "the LR's loss infinite. All (seed, LR) runs of a topology are trained as one batched network; the",
        f"batched loop reproduces `nasplug.train.train` (largest relative loss difference {check:.1e}).",
        f"Command: `python benchmarks/{shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])}`"
        " (`--seed-start`/`--extra-curves` split the seeds over runs; each (seed, LR) run is independent).",
        *([f"Curves: {args.provenance}"] if args.provenance else []),
        "",
        f"In-sample: {len(in_sample)} hand-picked 5-node DAGs (conventions are *chosen* here). Held-out:",
        f"{len(held_out)} random 6-node DAGs (seed {HELD_OUT_SEED}; conventions are *validated* here).",
        "",
        "Conventions for the prediction η* ∝ (Σ_p L_p³)^(-1/2), L_p = d_p + offset (d_p = linear edges",
        "on p):",
        "`all` = every path ([C24]; offset 3 = the authors' code, offset 1 = ReLUs on the path in this",
        "network); `noskip` = pure-skip paths (d_p = 0) left out; `weighted` = Σ_p w_p L_p³ with w_p the",
        "path's share of the output variance under the arch-aware init (Π 1/d_in over its linear edges);",
        "`nngp` = `all` / sqrt(q_H), q_H the output variance of the exact NNGP recursion (skip growth).",
        "",
        "## Measurement reliability",
        "",
        "Split-half: maximal LR from the even seeds vs from the odd seeds, over all topologies. A predictor",
        "cannot be expected to correlate with the measurement much better than this.",
        "",
        "| estimator | split-half r (raw) | split-half r (log) |",
        "| --- | --- | --- |",
    ]
    for est, (r_raw, r_log) in result["reliability"].items():
        lines.append(f"| `{est}` | {r_raw:.3f} | {r_log:.3f} |")
    lines += ["", "## Selected convention per family (offset chosen on in-sample raw r)", "",
              "90 % intervals: bootstrap over seeds (the max LRs re-estimated from seeds drawn with",
              "replacement). Repeated seeds leave fewer distinct ones, so the intervals are biased low: read",
              "them as the spread the seed noise causes, not as a confidence interval for r.", "",
              *SELECTED_HEADER]
    lines += selected_rows(result)
    r_half = result["reliability"]["paper"][0]
    full = 2 * r_half / (1 + r_half)  # Spearman-Brown: reliability of the estimate from all seeds
    best = []
    for est in ESTIMATORS:
        columns = ((2, "in-sample r"), (3, "in-sample log r"), (4, "held-out r"), (5, "held-out log r"))
        for col, name in columns:
            conv = max(CONVENTIONS, key=lambda c: result["selected"][(est, c)][col])
            best.append(f"`{est}` {name}: `{conv}`")
    winners = {b.rsplit("`", 2)[1] for b in best}
    best_text = (f"`{winners.pop()}` in every column (both estimators; in-sample and held-out; raw and log)"
                 if len(winners) == 1 else "; ".join(best))
    default_row = next(r for r in result["tables"]["paper"] if r[0] == "all" and r[1] == DEFAULT_OFFSET)
    top = max((result["selected"][("paper", c)] for c in CONVENTIONS), key=lambda r: r[2])
    lines += ["", "## Reading", "",
              f"* **The measurement is the bottleneck.** Two halves of the seeds ({seeds // 2} each) agree",
              f"  on the maximal LR only at r = {r_half:.2f}; projected to all {seeds} seeds",
              f"  (Spearman–Brown) the measurement's reliability is about {full:.2f}, so even a perfect",
              f"  predictor would correlate with it at about sqrt({full:.2f}) = {math.sqrt(full):.2f}: the",
              "  ceiling for r here.",
              "  The tolerant estimator is no more reliable than the paper's argmin (table above).",
              "* **Conventions.** Offsets are chosen on the in-sample topologies; the held-out r is the",
              f"  honest number. Best convention (at its selected offset) per column: {best_text}.",
              "  `weighted` is the variance-weighted path sum, now",
              "  `lr_multiplier(..., path_weights=\"target\")`. In the run documented here both corrections",
              "  beat [C24]'s unweighted sum on the held-out DAGs at every offset ≥ 1, but the two sets",
              "  disagree on which correction is better: `weighted` wins in-sample (it fixes the dense",
              "  all-linear DAG), `nngp` (division by sqrt of the exact output variance) wins held-out at",
              "  most offsets (the random 6-node DAGs have many skips and output variances up to ~40).",
              "  Neither is established over the other; deciding needs a third, independent set.",
              "  Leaving pure-skip paths out (`noskip`; identical to `all` at offset 0) never helps",
              "  held-out: skip paths do lower the maximal LR. For the unweighted sum the offset is not",
              "  identified (in-sample prefers 0, held-out 5); `weighted` prefers 3–4 on both sets.",
              f"* **r ≥ 0.9?** The default rule (`all`, offset {DEFAULT_OFFSET}) reaches in-sample r = "
              f"{default_row[2]:.3f}, held-out r = {default_row[4]:.3f} (`paper` estimator, raw). The best",
              f"  selected convention, `{top[0]}` at offset {top[1]}, reaches in-sample r = {top[2]:.3f} and",
              f"  held-out r = {top[4]:.3f} (log: {top[3]:.3f} / {top[5]:.3f}) — "
              + ("at or above" if top[4] >= 0.9 else "below") + " 0.9 held-out, against a measurement",
              f"  ceiling of about {math.sqrt(full):.2f} (above): the remaining gap is partly the law's.",
              f"* **Defaults.** `DEFAULT_OFFSET = {DEFAULT_OFFSET}` with the unweighted sum (the authors'",
              "  code) stays the default: the evidence is one small dataset, one-epoch (or few-epoch)",
              "  training and MLPs only. The weighted sum is an option; it coincides with [C24] on chains.",
              "* **Other settings** (sections below; 4 seeds, so noisier): at width 256 and after 4",
              "  epochs `weighted` is again best in-sample; held-out, at width 256 both corrections beat",
              "  `all` (`nngp` ahead), after 4 epochs only `nngp` does. After 4 epochs instead of 1 the",
              "  maximal LRs of deep chains rise",
              "  and every convention's in-sample r collapses: the depth law describes the early-training",
              "  (one-epoch) maximal LR, the quantity [C24] define, much better than a later one.",
              "* **Not rerun here:** the fixed-budget comparison (scaled vs unscaled LR, 5 epochs) of the",
              "  previous version of this benchmark (commit 7b9c7bd, `docs/models_training.md`)."]
    for label, other, other_in, other_out in compare:
        r_other = other["reliability"]["paper"][0]
        n_seeds = next(iter(other["seeds"].values()))
        lines += ["", f"## Robustness: the same analysis for {label}", "",
                  f"{n_seeds} seeds; split-half reliability (`paper`): r = {r_other:.3f} (raw), "
                  f"{other['reliability']['paper'][1]:.3f} (log). Topologies measured: {len(other_in)} "
                  f"in-sample, {len(other_out)} held-out.", "", *SELECTED_HEADER, *selected_rows(other)]
        d_row = next(r for r in other["tables"]["paper"] if r[0] == "all" and r[1] == DEFAULT_OFFSET)
        lines += ["", f"Default rule (`all`, offset {DEFAULT_OFFSET}, `paper`): in-sample r = "
                  f"{d_row[2]:.3f}, held-out r = {d_row[4]:.3f}."]
    for est, rows in result["tables"].items():
        lines += ["", f"## Every convention and offset (`{est}` estimator)", "",
                  "Held-out columns are for reading only: offsets were not chosen on them.", "",
                  "| convention | offset | in-sample r | in-sample r (log) | held-out r | held-out r (log) |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for conv, off, ri, ri_log, rh, rh_log in rows:
            lines.append(f"| `{conv}` | {off} | {ri:.3f} | {ri_log:.3f} | {rh:.3f} | {rh_log:.3f} |")
    lines += ["", "## Grid-searched maximal LR per topology", "",
              "Predictions up to a common constant (base: one path of depth 1 + offset, weight 1).", "",
              "| set | topology | depth histogram d_p | q_H | max LR (`paper`) | max LR (`tol10`) "
              "| pred. `all` o=3 | pred. `weighted` o=3 |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, codes in (("in", in_sample), ("held-out", held_out)):
        for code in codes:
            st = ArchGraph.parse(code).path_stats()
            lines.append(f"| {name} | `{code}` | {list(st.depth_histogram)} | {output_variance(code):.3g} | "
                         f"{found[code]:.4g} | {tol[code]:.4g} | {predict(code, 'all', 3):.4f} | "
                         f"{predict(code, 'weighted', 3):.4f} |")
    lines += ["", f"Timing: {measured:.0f} s on one CPU thread in this run (cached curves are not "
              f"re-measured). `DEFAULT_OFFSET` = {DEFAULT_OFFSET}.", "",
              "<details><summary>seed-averaged training loss per grid LR</summary>", "", "```",
              json.dumps({c: [round(float(v), 4) if math.isfinite(v) else None for v in seed_mean(m)]
                          for c, m in curves.items()}), "```", "</details>", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
