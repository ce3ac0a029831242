"""Score a whole search space (or a sample of it), or any list of cells (a benchmark's), with
registered scorers and filters, batched.

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

from nasplug.checks import format_count, integer
from nasplug.errors import NasplugError
from nasplug.graph import ArchBatch, batch_of_encodings
from nasplug.scorers import is_slow, oriented
from nasplug.scorers.ensemble import AGGREGATION_MODES, aggregate_ranks, rank_table
from nasplug.search.filtering import resolve_filter, resolve_scorer


@dataclass
class SpaceScores:
    """Scores of cells of one space, or of a list of cells: ``indices[i]`` (a space index, or the
    row of a list) has ``scores[name][i]`` and ``keep[name][i]``; ``higher_is_better[name]`` orients
    each score. Space cells are in index order; ``indices`` is int64, or an object array of exact
    Python ints for spaces of 2^63 cells or more, whose cells are identified by ``digits``
    (``(B, D)``) everywhere else. A list keeps its cells' text in ``archs`` (``space`` is then None)."""

    space: object
    indices: np.ndarray
    scores: dict[str, np.ndarray]
    keep: dict[str, np.ndarray]
    higher_is_better: dict[str, bool]
    archs: list[str] | None = None
    digits: np.ndarray | None = None

    def cells(self) -> ArchBatch | list[str]:
        """The scored cells for more scoring: the space's batch of them, or the list's (one batch when
        they share a benchmark's form, else their text)."""
        if self.archs is None and self.digits is not None:
            return self.space.batch_digits(self.digits)
        if self.archs is None:
            return self.space.batch(self.indices)
        return batch_of_encodings(self.archs) or self.archs

    def order(self, scorer: str) -> np.ndarray:
        """Positions sorted best first by ``scorer`` (NaN last; ties keep index order)."""
        values = oriented(self.scores[scorer], self.higher_is_better.get(scorer, True))
        return np.lexsort((self.indices, -np.nan_to_num(values, nan=-np.inf)))

    def arch_strings(self, positions: Sequence[int] | None = None) -> list[str]:
        """Cell encodings; NB201 cells always as NB201 strings (``str`` would write a cell of only
        none/skip edges as a DAG code, which the benchmark's tables never use)."""
        positions = range(len(self.indices)) if positions is None else positions
        if self.archs is not None:
            return [self.archs[p] for p in positions]
        nb201 = getattr(self.space, "name", "") == "nb201"
        decoded = (self.space.from_digits(self.digits[p]) if self.digits is not None
                   else self.space.decode(int(self.indices[p])) for p in positions)
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
    are fitted on ``space``. A space too large to enumerate is sampled edge by edge (by digits), so
    any size works (3^435 cells for ``dag:30``); duplicate draws are dropped.
    """
    digits = None
    if sample is not None:
        integer("sample", sample, 1)
        rng = np.random.default_rng(seed)
        if space.enumerable:
            indices = np.sort(rng.choice(space.size, size=min(sample, space.size), replace=False))
        else:
            drawn = space.sample_digits(sample, rng)
            drawn = drawn[space.valid_digits(drawn)]  # NB101 rejects some digit vectors
            digits = np.unique(drawn, axis=0)  # index order
            if space.size < 2**63:
                indices = space.indices_of(digits)
            else:
                indices = np.array([space.index_of(row) for row in digits.tolist()], dtype=object)
    elif not space.enumerable:
        raise NasplugError(f"{space} has {format_count(space.size)} cells; score a sample with --sample N")
    else:
        indices = np.arange(space.size)
    integer("chunk", chunk, 1)
    filters = {name: resolve_filter(name, space) for name in filter_names}  # a bad name fails first
    built = {name: resolve_scorer(name, space) for name in scorer_names}
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
            batch = space.batch(indices[part]) if digits is None else space.batch_digits(digits[part])
            for name, s in built.items():
                # per-cell scorers build each cell's network: give them the cells themselves (ops
                # are not recoverable from a batch's roles for every space, e.g. NB101's projections)
                cells = _cells(space, indices[part], None if digits is None else digits[part]) \
                    if _slow(name) else batch
                scores[name][part] = s.score_many(cells)
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
    return SpaceScores(space, indices, scores, keep, higher, digits=digits)


def _cells(space, indices: np.ndarray, digits: np.ndarray | None) -> list:
    if digits is None:
        return [space.decode(int(i)) for i in indices]
    return [space.from_digits(row) for row in digits.tolist()]


def _slow(name: str) -> bool:
    try:
        return is_slow(name)
    except NasplugError:  # not a registered name (a scorer object): treated as batched
        return False


def score_cells(archs: list[str], scorer_names: Sequence[str], filter_names: Sequence[str] = (), *,
                progress: bool = False) -> SpaceScores:
    """Score a list of cells given as text (e.g. a benchmark table's ``archs``).

    Fast scorers run on one batch of all cells, read without a cell object per row when they share a
    benchmark's form (:func:`nasplug.graph.batch_of_encodings`); per-cell scorers that build a
    network (``num_params``, ``flops``, ...) get the cells themselves. Filters and scorers that are
    fitted (``dag_box``, ``top_fraction``, ``rank_ensemble``) are fitted on these cells.
    """
    if not archs:
        raise NasplugError("no cells to score")
    cells: ArchBatch | list[str] = batch_of_encodings(archs) or archs
    filters = {name: resolve_filter(name, cells) for name in filter_names}
    built = {name: resolve_scorer(name, cells) for name in scorer_names}
    names = list(built)
    if progress:
        from tqdm import tqdm

        names = tqdm(names, desc="scoring", unit="scorer", leave=False)
    scores = {name: np.asarray(built[name].score_many(archs if _slow(name) else cells), dtype=np.float64)
              for name in names}
    keep = {name: np.asarray(f.keep_many(cells), dtype=bool) for name, f in filters.items()}
    higher = {name: bool(getattr(s, "higher_is_better", True)) for name, s in built.items()}
    return SpaceScores(None, np.arange(len(archs)), scores, keep, higher, archs=list(archs))


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
