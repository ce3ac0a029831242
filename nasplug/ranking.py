"""Score a whole search space (or a sample of it) with registered scorers and filters, batched.

Also combines scorers into one training-free score by rank aggregation (:func:`rank_aggregate`):
scorers measure different things on different scales (a path count, a depth, a kernel eigenvalue),
so averaging their *ranks* is the scale-free way to combine them, as zero-cost-proxy ensembles such
as AZ-NAS do (the ranks and their aggregation live in :mod:`nasplug.scorers.ensemble`, whose
registered ``rank_ensemble`` scores single architectures against a space), and chooses such an
ensemble by greedy forward selection (:func:`select_rank_ensemble`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasplug.errors import NasplugError
from nasplug.scorers import oriented
from nasplug.scorers.ensemble import AGGREGATION_MODES, aggregate_ranks, rank_table
from nasplug.search.filtering import resolve_filter, resolve_scorer


@dataclass
class SpaceScores:
    """Scores of cells of one space: ``indices[i]`` has ``scores[name][i]`` and ``keep[name][i]``;
    ``higher_is_better[name]`` orients each score."""

    space: object
    indices: np.ndarray
    scores: dict[str, np.ndarray]
    keep: dict[str, np.ndarray]
    higher_is_better: dict[str, bool]

    def order(self, scorer: str) -> np.ndarray:
        """Positions sorted best first by ``scorer`` (NaN last; ties keep index order)."""
        values = oriented(self.scores[scorer], self.higher_is_better.get(scorer, True))
        return np.lexsort((self.indices, -np.nan_to_num(values, nan=-np.inf)))

    def arch_strings(self, positions: Sequence[int] | None = None) -> list[str]:
        """Cell encodings; NB201 cells always as NB201 strings (``str`` would write a cell of only
        none/skip edges as a DAG code, which the benchmark's tables never use)."""
        positions = range(len(self.indices)) if positions is None else positions
        nb201 = getattr(self.space, "name", "") == "nb201"
        decoded = (self.space.decode(int(self.indices[p])) for p in positions)
        return [a.to_nb201() if nb201 else str(a) for a in decoded]

    def write_csv(self, path: str | Path, extra: dict[str, np.ndarray] | None = None) -> Path:
        """One row per cell: index, arch, every score, every filter's keep flag, then ``extra``
        columns (e.g. benchmark accuracies aligned with ``indices``; NaN written empty)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = extra or {}
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["index", "arch", *self.scores, *(f"keep_{f}" for f in self.keep), *extra])
            for pos, arch in enumerate(self.arch_strings()):
                writer.writerow([
                    int(self.indices[pos]), arch,
                    *(repr(float(v[pos])) for v in self.scores.values()),
                    *(int(k[pos]) for k in self.keep.values()),
                    *("" if np.isnan(v[pos]) else repr(float(v[pos])) for v in extra.values()),
                ])
        return path


def score_space(space, scorer_names: Sequence[str], filter_names: Sequence[str] = (),
                sample: int | None = None, seed: int = 0, *, progress: bool = False,
                chunk: int = 4096) -> SpaceScores:
    """Score every cell of ``space`` (or ``sample`` distinct uniformly drawn cells).

    Cells are scored in batches of ``chunk``: one batched call per chunk keeps the vectorization
    while bounding memory (kernel scorers hold ``N x N`` matrices per cell) and lets ``progress``
    show a bar on stderr for slow scorers. Fast scorers lose nothing: a chunk of 4,096 NB201
    cells is already a large vectorized batch.
    Filters and scorers that are fitted on a space (``dag_box``, ``top_fraction``, ``rank_ensemble``)
    are fitted on ``space``.
    """
    if sample is not None:
        if sample < 1:
            raise NasplugError(f"--sample must be positive, got {sample}")
        rng = np.random.default_rng(seed)
        if space.enumerable:
            indices = np.sort(rng.choice(space.size, size=min(sample, space.size), replace=False))
        elif space.size < 2**63:
            indices = np.unique(rng.integers(0, space.size, size=sample))
        else:
            raise NasplugError(f"{space} is too large to sample by index")
    elif not space.enumerable:
        raise NasplugError(f"{space} has {space.size:.3g} cells; score a sample with --sample N")
    else:
        indices = np.arange(space.size)
    built = {name: resolve_scorer(name, space) for name in scorer_names}
    filters = {name: resolve_filter(name, space) for name in filter_names}
    scores = {name: np.empty(len(indices)) for name in built}
    keep = {name: np.empty(len(indices), dtype=bool) for name in filters}
    starts = range(0, len(indices), max(1, chunk))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(indices) * (len(built) + len(filters)), desc=f"scoring {space.name}",
                   unit="cell", unit_scale=True, leave=False)
    try:
        for start in starts:
            part = slice(start, start + chunk)
            batch = space.batch(indices[part])
            for name, s in built.items():
                scores[name][part] = s.score_many(batch)
                if bar is not None:
                    bar.update(len(batch))
            for name, f in filters.items():
                keep[name][part] = f.keep_many(batch)
                if bar is not None:
                    bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    higher = {name: bool(getattr(s, "higher_is_better", True)) for name, s in built.items()}
    return SpaceScores(space, indices, scores, keep, higher)


def rank_aggregate(scores: dict[str, np.ndarray], weights: dict[str, float],
                   higher_is_better: dict[str, bool] | None = None, mode: str = "mean") -> np.ndarray:
    """Combine scorers by their ranks over the given cells: higher result = better cell.

    Parameters
    ----------
    scores
        Score arrays over the same cells.
    weights
        Weight per scorer name; a negative weight uses the scorer in reverse.
    higher_is_better
        Orientation of each scorer (default all True), applied before ranking.
    mode
        ``"mean"`` or ``"log"`` (:func:`aggregate_ranks`).
    """
    higher_is_better = higher_is_better or {}
    missing = [name for name in weights if name not in scores]
    if missing:
        raise NasplugError(f"rank_aggregate: no scores for {missing[0]!r}")
    table = rank_table({name: oriented(scores[name], higher_is_better.get(name, True)) for name in weights})
    return aggregate_ranks(table, weights, mode)


@dataclass(frozen=True)
class EnsembleChoice:
    """A rank aggregate chosen by :func:`select_rank_ensemble`: signed ``weights``, ``mode`` and the
    objective ``value`` it reached where it was chosen."""

    weights: dict[str, float]
    mode: str
    value: float


def select_rank_ensemble(ranks: Mapping[str, np.ndarray], truth: np.ndarray,
                         objective: Callable[[np.ndarray, np.ndarray], float], *,
                         candidates: Sequence[str] | None = None,
                         weights: Sequence[float] = (0.25, 0.5, 1.0, 2.0), max_members: int = 6,
                         modes: Sequence[str] = AGGREGATION_MODES, min_gain: float = 1e-3) -> EnsembleChoice:
    """Greedy forward selection of an ensemble maximizing ``objective(aggregate, truth)``.

    Per mode, members are added one at a time — each candidate (default: every unsigned name of
    ``ranks``) with every weight and both signs — keeping the best step while it improves the
    objective by more than ``min_gain``, up to ``max_members``; the better mode wins (ties: the
    first). ``ranks`` comes from :func:`rank_table` restricted to the cells where it is chosen. What
    it is chosen on is the caller's protocol (benchmarks/ntk_ensemble.py: a random half of NB201,
    CIFAR-10 only).
    """
    names = [n for n in ranks if not n.startswith("-")] if candidates is None else list(candidates)
    best: EnsembleChoice | None = None
    for mode in modes:
        chosen: dict[str, float] = {}
        value = -np.inf
        while len(chosen) < max_members:
            step = None
            for name in names:
                if name in chosen:
                    continue
                for w in weights:
                    for sign in (1, -1):
                        trial = {**chosen, name: sign * w}
                        got = objective(aggregate_ranks(ranks, trial, mode), truth)
                        if got > value + min_gain and (step is None or got > step[0]):
                            step = (got, trial)
            if step is None:
                break
            value, chosen = step
        if chosen and (best is None or value > best.value):
            best = EnsembleChoice(chosen, mode, float(value))
    if best is None:
        raise NasplugError("no candidate improves the objective: nothing to select")
    return best
