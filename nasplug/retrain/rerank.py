"""Re-rank NAS-Bench-201 by principled training ([C24] §4.3).

NAS-Bench-201 trained every cell with one recipe (SGD, Nesterov 0.9, LR 0.1 with cosine decay,
batch 256, PyTorch's default init — its network defines no init of its own). [C24] argues that the
benchmark's ranking is partly an artefact of that one-size-fits-all recipe: trained with
architecture-aware init and learning rate, cells change accuracy and rank. This module measures it:

1. sample ``cells`` cells of the benchmark table (seeded; by default *stratified*: one cell from each
   of ``cells`` equal-count bins of benchmark accuracy, so the sample spans the range), skipping cells
   without an input→output path (no principled rate exists) and cells computing the same function
   as one already drawn (same canonical key);
2. train each with two recipes that differ only in init and learning rate — ``benchmark`` (PyTorch's
   init, the recipe's LR ``lr``) and ``principled`` ([C24]'s init, ``base × the cell's multiplier``) —
   under several training seeds, every training a resumable job (:func:`nasplug.ddp.run_jobs`);
3. compare (:func:`analyze`): the mean accuracy change, Kendall τ between each recipe's ranking and the
   benchmark's within the benchmark's top-K % (K = 100 … 1), the seed-vs-seed τ of each recipe as the
   noise floor, and how often pairs of cells swap order as a function of their benchmark accuracy gap.

**The principled base rate.** [C24] tunes ``base`` on the base network (the largest LR with the
smallest training loss after one epoch); give it as ``principled_base_lr``. By default it is set so
that the geometric mean of the sample's principled rates equals the benchmark's rate: the comparison
then isolates how [C24] *allocates* the rate across architectures from how large it is on average
(with ``base = lr`` the NB201 multipliers, 0.1–0.4 for most cells, would mostly test a smaller rate).

A diverged training counts as chance accuracy (the recipe failed on that cell); a crashed one is
missing. [C24] W. Chen, J. Wu, Z. Wang, B. Hanin, ICLR 2024, arXiv:2402.17440.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasplug.data import load_dataset
from nasplug.ddp import Launcher, TrainSpec, make_spec, run_jobs
from nasplug.ddp.spec import RECIPES
from nasplug.errors import NasplugError
from nasplug.nasbench import load_benchmark
from nasplug.nasbench.metrics import kendall_tau
from nasplug.search_spaces import get as get_space
from nasplug.theory.hparams import default_lr_rule, lr_multipliers, principled_lr
from nasplug.train import TrainResult

RECIPE_NAMES = ("benchmark", "principled")
TOP_PERCENT = (100, 50, 20, 10, 5, 1)
#: τ needs this many cells to say anything (with 2 it is ±1 by construction).
MIN_CELLS = 3
#: The jobs of an experiment: (cell index, recipe, training seed) -> spec.
Jobs = dict[tuple[int, str, int], TrainSpec]


@dataclass
class RerankConfig:
    """The experiment's settings (``epochs``/``batch_size`` None: NAS-Bench-201's 200 / 256)."""

    benchmark: str
    bench_dataset: str = "cifar10"
    cells: int = 24
    stratify: bool = True
    sample_seed: int = 0
    seeds: tuple[int, ...] = (0, 1)
    dataset: str = "digits"
    data_root: str | None = None
    model: str = "nb201"
    width: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float = RECIPES["nb201"].lr
    principled_base_lr: float | None = None

    def __post_init__(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        if self.cells < 2:
            raise NasplugError(f"--cells must be at least 2, got {self.cells}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise NasplugError(f"--seeds must be distinct training seeds, got {list(self.seeds)}")
        for name in ("lr", "principled_base_lr"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise NasplugError(f"{name.replace('_', '-')} must be positive, got {value}")
        if self.model not in ("cnn", "nb201"):
            raise NasplugError(f"re-ranking trains NB201 cells as conv nets: --model cnn or nb201, "
                               f"not {self.model!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_cells(config: RerankConfig) -> tuple[list[str], np.ndarray]:
    """The sampled cells (NB201 strings) and their benchmark accuracies (%), in sampling order."""
    table = load_benchmark(config.benchmark)
    space = get_space("nb201")
    rows = table.space_indices(space)
    acc = table.column(config.bench_dataset, "test_accuracy")
    rule = default_lr_rule(config.model)
    mult = lr_multipliers(space.batch(rows), rule["offset"], rule["base"], rule["kernel_scaling"],
                          rule["base_kernel"])
    pool = np.flatnonzero(np.isfinite(acc) & np.isfinite(mult))
    if len(pool) < config.cells:
        raise NasplugError(f"the benchmark has {len(pool)} trainable cells, fewer than --cells "
                           f"{config.cells}")
    rng = np.random.default_rng(config.sample_seed)
    seen: set[str] = set()

    def fresh(row: int) -> bool:
        """True (once) for a cell whose function was not drawn yet."""
        key = space.decode(int(rows[row])).canonical_key()
        if key in seen:
            return False
        seen.add(key)
        return True

    chosen: list[int] = []
    if config.stratify:  # one cell per equal-count accuracy bin, drawn at random within it
        ordered = pool[np.argsort(acc[pool], kind="stable")]
        for group in np.array_split(ordered, config.cells):
            row = next((int(r) for r in rng.permutation(group) if fresh(r)), None)
            if row is not None:
                chosen.append(row)
    else:
        for row in rng.permutation(pool):
            if len(chosen) == config.cells:
                break
            if fresh(row):
                chosen.append(int(row))
    archs = [str(space.decode(int(rows[r]))) for r in chosen]
    return archs, acc[chosen].astype(np.float64)


def principled_base(config: RerankConfig, archs: Sequence[str]) -> float:
    """The principled base rate (module docstring): given, or matched to the benchmark's rate in
    geometric mean over ``archs``."""
    if config.principled_base_lr is not None:
        return config.principled_base_lr
    mult = np.array([principled_lr(a, 1.0, config.model) for a in archs])
    return config.lr / float(np.exp(np.log(mult).mean()))


def make_specs(config: RerankConfig, archs: Sequence[str], **run: Any) -> Jobs:
    """One job per (cell index, recipe, seed): the same NB201 recipe except init and LR (both
    rates scaled by ``batch / 256``, the linear rule of :mod:`nasplug.ddp.spec`)."""
    recipe = RECIPES["nb201"]
    batch = config.batch_size or recipe.batch_size
    base = principled_base(config, archs)
    common = dict(model=config.model, recipe="nb201", data_root=config.data_root, epochs=config.epochs,
                  batch_size=batch, width=config.width, **run)
    specs = {}
    for (i, arch), seed in itertools.product(enumerate(archs), config.seeds):
        specs[i, "benchmark", seed] = make_spec(arch, config.dataset, init="torch", seed=seed,
                                                lr=config.lr * batch / recipe.batch_size, **common)
        specs[i, "principled", seed] = make_spec(arch, config.dataset, init="arch_aware", seed=seed,
                                                 base_lr=base, **common)
    return specs


@dataclass
class RerankAnalysis:
    """What :func:`analyze` found; accuracies in %, arrays ``(cells,)`` or ``(cells, seeds)``."""

    archs: list[str]
    bench: np.ndarray
    acc: dict[str, np.ndarray]
    diverged: dict[str, int]
    missing: dict[str, int]
    change_mean: float
    change_ci: tuple[float, float]
    better: int
    taus: list[dict[str, Any]] = field(default_factory=list)
    flips: list[dict[str, Any]] = field(default_factory=list)
    #: What the trainings were (network, epochs, batch, learning rates), for the report.
    training: dict[str, Any] = field(default_factory=dict)

    def mean(self, recipe: str) -> np.ndarray:
        """Per cell, the mean accuracy over its finished seeds (NaN when none finished)."""
        return finite_mean(self.acc[recipe], axis=1)


def finite_mean(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """The mean of the finite entries along ``axis`` (NaN where there are none, without a warning)."""
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, values, 0.0).sum(axis=axis) / ok.sum(axis=axis)


def _accuracy(result: TrainResult, chance: float) -> float:
    if result.status == "ok":
        return 100.0 * result.test_acc
    return chance if result.status == "diverged" else math.nan


def _seed_taus(acc: np.ndarray, idx: np.ndarray) -> float:
    """Mean τ between the rankings of every pair of seeds (NaN with one seed)."""
    taus = [kendall_tau(acc[idx, a], acc[idx, b]) for a, b in itertools.combinations(range(acc.shape[1]), 2)]
    taus = [t for t in taus if math.isfinite(t)]
    return float(np.mean(taus)) if taus else math.nan


def _flip_fraction(x: np.ndarray, y: np.ndarray, pairs: np.ndarray) -> float:
    """Share of the pairs (i, j) whose order under ``y`` differs from that under ``x``."""
    if not len(pairs):
        return math.nan
    dx = x[pairs[:, 0]] - x[pairs[:, 1]]
    dy = y[pairs[:, 0]] - y[pairs[:, 1]]
    ok = np.isfinite(dx) & np.isfinite(dy) & (dx != 0)
    return float(np.mean(np.sign(dx[ok]) != np.sign(dy[ok]))) if ok.any() else math.nan


def analyze(archs: Sequence[str], bench: np.ndarray, results: dict[tuple[int, str, int], TrainResult],
            seeds: Sequence[int], num_classes: int, *, boot: int = 2000, rng_seed: int = 0) -> RerankAnalysis:
    """The comparisons of the module docstring from the finished trainings."""
    chance = 100.0 / num_classes
    n = len(archs)
    acc = {r: np.array([[_accuracy(results[i, r, s], chance) for s in seeds] for i in range(n)])
           for r in RECIPE_NAMES}
    diverged = {r: sum(results[i, r, s].status == "diverged" for i in range(n) for s in seeds)
                for r in RECIPE_NAMES}
    missing = {r: int(np.isnan(acc[r]).sum()) for r in RECIPE_NAMES}
    mean = {r: finite_mean(acc[r], axis=1) for r in RECIPE_NAMES}
    change = mean["principled"] - mean["benchmark"]
    change = change[np.isfinite(change)]
    rng = np.random.default_rng(rng_seed)
    if len(change):
        boots = rng.choice(change, size=(boot, len(change))).mean(axis=1)
        ci = (float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)))
        change_mean, better = float(change.mean()), int((change > 0).sum())
    else:
        ci, change_mean, better = (math.nan, math.nan), math.nan, 0
    order = np.argsort(-bench, kind="stable")
    taus = []
    for pct in TOP_PERCENT:
        k = math.ceil(pct / 100 * n)
        idx = order[:k]
        row: dict[str, Any] = {"top_percent": pct, "cells": k}
        enough = k >= MIN_CELLS
        for r in RECIPE_NAMES:
            row[f"tau_{r}"] = kendall_tau(mean[r][idx], bench[idx]) if enough else math.nan
            row[f"noise_{r}"] = _seed_taus(acc[r], idx) if enough else math.nan
        row["tau_between"] = (kendall_tau(mean["principled"][idx], mean["benchmark"][idx]) if enough
                              else math.nan)
        taus.append(row)
    pairs = np.array(list(itertools.combinations(range(n), 2)), dtype=np.int64).reshape(-1, 2)
    gaps = np.abs(bench[pairs[:, 0]] - bench[pairs[:, 1]]) if len(pairs) else np.zeros(0)
    flips = []
    edges = np.unique(np.quantile(gaps, np.linspace(0, 1, 5))) if len(gaps) else np.zeros(0)
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = pairs[(gaps >= lo) & ((gaps < hi) | (hi == edges[-1]))]
        if not len(sel):
            continue
        row = {"gap_low": float(lo), "gap_high": float(hi), "pairs": int(len(sel))}
        for r in RECIPE_NAMES:
            row[f"flip_{r}"] = _flip_fraction(bench, mean[r], sel)
            seed_flips = [_flip_fraction(acc[r][:, a], acc[r][:, b], sel)
                          for a, b in itertools.combinations(range(len(seeds)), 2)]
            row[f"noise_{r}"] = float(finite_mean(seed_flips)) if seed_flips else math.nan
        flips.append(row)
    return RerankAnalysis(list(archs), np.asarray(bench, dtype=np.float64), acc, diverged, missing,
                          change_mean, ci, better, taus, flips)


@dataclass
class Experiment:
    """The sampled cells, their benchmark accuracies (%) and the jobs that train them."""

    archs: list[str]
    bench: np.ndarray
    jobs: Jobs
    num_classes: int


def prepare(config: RerankConfig, **run: Any) -> Experiment:
    """Sample and plan (``run``: the jobs' run settings, e.g. ``device``); every user error — table,
    dataset, settings — is raised here, before any training."""
    data = load_dataset(config.dataset, config.data_root)
    archs, bench = sample_cells(config)
    return Experiment(archs, bench, make_specs(config, archs, **run), data.num_classes)


def run_rerank(config: RerankConfig, experiment: Experiment, launcher: Launcher, out: str | Path, *,
               echo: Callable[[str], None] = print) -> RerankAnalysis:
    """Train what is not trained yet under ``out/runs`` and analyze;
    :func:`nasplug.retrain.rerank_report.write_report` writes it up."""
    e = experiment
    echo(f"re-ranking {len(e.archs)} NAS-Bench-201 cells ({'stratified' if config.stratify else 'uniform'} "
         f"sample, seed {config.sample_seed}) x {len(RECIPE_NAMES)} recipes x {len(config.seeds)} seeds = "
         f"{len(e.jobs)} trainings on {config.dataset}")
    keys = list(e.jobs)
    results = dict(zip(keys, run_jobs([e.jobs[k] for k in keys], Path(out) / "runs", launcher, echo)))
    crashed = [r for r in results.values() if r.status not in ("ok", "diverged")]
    if len(crashed) == len(results):  # nothing to analyze: say why instead of a report of NaNs
        raise NasplugError(f"every training failed ({len(crashed)} of {len(crashed)}), e.g. "
                           f"{crashed[0].reason}; logs in {Path(out) / 'runs'}")
    first = e.jobs[0, "benchmark", config.seeds[0]]
    analysis = analyze(e.archs, e.bench, results, config.seeds, e.num_classes)
    analysis.training = {"model": first.model, "width": first.width, "epochs": first.epochs,
                         "batch_size": first.batch_size, "lr": first.lr,
                         "principled_base_lr": principled_base(config, e.archs) * first.batch_size / 256,
                         "principled_lrs": [e.jobs[i, "principled", config.seeds[0]].lr
                                            for i in range(len(e.archs))]}
    return analysis
