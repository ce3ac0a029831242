"""The end of a training search: the best cells retrained with several seeds and tested once.

A training search selects on the validation split and never touches the test split
(:func:`~nasplug.search.evaluation.train_evaluator`). Here, at the end, the ``top`` best distinct
cells are retrained with ``seeds`` seeds each — the search's own seed first, which reproduces the
value the search saw (training is deterministic on CPU) — and each run is evaluated **once** on the
test split. The spread of one cell over seeds (seed noise) sits next to the spread between cells,
so a reader sees whether the search's ranking is above the noise (:func:`compare`).

Framework-neutral: a backend passes the cells, the runs it already has (a resumed search does not
retrain them) and a ``save`` callback that stores each finished run with the study.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from nasplug.graph import ArchGraph
from nasplug.search.config import SearchConfig
from nasplug.search.evaluation import EvaluationFailed, evaluation_data, train_once


@dataclass
class FinalCell:
    """A best cell of the search and its final runs: ``runs[seed] = {"valid": %, "test": %,
    "seconds": s}`` or ``{"failed": reason}``."""

    arch: str
    key: str
    search_value: float
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)

    def _values(self, split: str) -> list[float]:
        return [r[split] for r in self.runs.values() if split in r]

    def mean(self, split: str) -> float:
        values = self._values(split)
        return statistics.fmean(values) if values else math.nan

    def std(self, split: str) -> float:
        """Sample standard deviation over seeds (NaN with fewer than two runs)."""
        values = self._values(split)
        return statistics.stdev(values) if len(values) > 1 else math.nan

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update({f"{split}_{stat}": getattr(self, stat)(split)
                    for split in ("valid", "test") for stat in ("mean", "std")})
        return out


def final_seeds(config: SearchConfig) -> list[int]:
    """The seeds of the final runs: the search's own seed, then the next ones."""
    return [config.seed + i for i in range(config.final_seeds)]


def retrain_best(config: SearchConfig, cells: Sequence[tuple[str, str, float]],
                 done: Mapping[str, Mapping[int, dict[str, Any]]] | None = None,
                 save: Callable[[str, int, dict[str, Any]], None] | None = None,
                 echo: Callable[[str], None] | None = None) -> list[FinalCell]:
    """Retrain ``cells`` (``(arch, key, search value)``, best first) with :func:`final_seeds` and
    test each run once; runs already in ``done[key][seed]`` are reused, new ones passed to
    ``save(key, seed, run)`` as soon as they finish. Returns the cells, best validation mean first.
    """
    done = done or {}
    data = None
    out = []
    for arch, key, value in cells:
        cell = FinalCell(arch, key, float(value), {int(s): dict(r) for s, r in done.get(key, {}).items()})
        for seed in final_seeds(config):
            if seed in cell.runs:
                continue
            if data is None:
                data = evaluation_data(config.dataset, config.data_root)
            try:
                result = train_once(ArchGraph.parse(arch), data, model=config.model, width=config.width,
                                    init=config.init, epochs=config.epochs, base_lr=config.base_lr,
                                    seed=seed, device=config.device, test=True)
                run = {"valid": 100.0 * result.valid_acc, "test": 100.0 * result.test_acc,
                       "seconds": round(result.seconds, 3)}
            except EvaluationFailed as err:
                run = {"failed": str(err)}
            cell.runs[seed] = run
            if save is not None:
                save(key, seed, run)
            if echo is not None:
                shown = (f"valid {run['valid']:.2f} %  test {run['test']:.2f} %" if "valid" in run
                         else run["failed"])
                echo(f"final  seed {seed}  {shown}  {arch}")
        out.append(cell)
    return sorted(out, key=lambda c: -c.mean("valid") if math.isfinite(c.mean("valid")) else math.inf)


@dataclass
class Comparison:
    """Seed noise next to the spread between cells (percentage points of validation accuracy).

    ``best_noise`` is the best final cell's standard deviation over seeds and ``noise`` the pooled
    one of all final cells (root mean square of their standard deviations) — the yardstick for
    differences between cells, since the best cell's own few seeds may happen to agree.
    """

    best_noise: float
    noise: float
    n_seeds: int
    top_span: float              # max - min of the final cells' validation means
    evaluated_std: float         # std of the validation accuracies of every cell the search evaluated
    evaluated_min: float
    evaluated_max: float
    n_evaluated: int

    @property
    def ranking_within_noise(self) -> bool:
        """Whether the final cells' validation means lie within twice the pooled seed noise."""
        return math.isfinite(self.noise) and self.top_span <= 2 * self.noise

    def sentence(self) -> str:
        if math.isfinite(self.noise):
            noise = (f"seed noise (std of validation accuracy over {self.n_seeds} seeds): best cell "
                     f"{self.best_noise:.2f} points, final cells pooled {self.noise:.2f} points")
        else:
            noise = "seed noise: not measured (one seed)"
        text = (f"{noise}; spread between the {self.n_evaluated} cells the search evaluated: std "
                f"{self.evaluated_std:.2f} points, {self.evaluated_min:.2f}-{self.evaluated_max:.2f} %; "
                f"the final cells' validation means span {self.top_span:.2f} points")
        if math.isfinite(self.noise):
            text += (" — within twice the seed noise: their order is not resolved"
                     if self.ranking_within_noise else " — more than twice the seed noise")
        return text

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ranking_within_noise": self.ranking_within_noise}


def compare(final: Sequence[FinalCell], evaluated: Sequence[float]) -> Comparison | None:
    """:class:`Comparison` of the final cells (best first) and the values of every evaluated cell."""
    means = [c.mean("valid") for c in final if math.isfinite(c.mean("valid"))]
    values = [v for v in evaluated if math.isfinite(v)]
    if not means or not values:
        return None
    stds = [c.std("valid") for c in final if math.isfinite(c.std("valid"))]
    return Comparison(best_noise=final[0].std("valid"),
                      noise=math.sqrt(statistics.fmean(s * s for s in stds)) if stds else math.nan,
                      n_seeds=len(final[0]._values("valid")), top_span=max(means) - min(means),
                      evaluated_std=statistics.pstdev(values), evaluated_min=min(values),
                      evaluated_max=max(values), n_evaluated=len(values))
