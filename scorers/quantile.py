"""Filters that keep the best-scored fraction of a search space.

[C22]'s box prunes by *where* a cell sits in the (d̄, m̄) plane; any scorer can prune too, by
keeping the cells whose score reaches the space's ``1 − keep`` quantile. The threshold is fitted
once on the space (all of it, or a seeded uniform sample when it is too large to enumerate), so the
filter is then a fixed per-architecture rule that an Optuna sampler can apply to each proposal.
"""

from __future__ import annotations

import numpy as np

from nasplug.errors import NasplugError
from nasplug.graph import ArchBatch
from nasplug.scorers.base import Archs, BatchFilter, fit_cells, oriented
from nasplug.scorers.registry import entry, get, register
from nasplug.search_spaces import DigitSpace


class QuantileFilter(BatchFilter):
    """Keep cells whose score, oriented so that higher is better (:func:`~nasplug.scorers.oriented`),
    is at least ``threshold``. Cells with a NaN score (no learning rate, no path) are rejected."""

    def __init__(self, scorer, threshold: float, name: str = "top_fraction"):
        self.scorer, self.threshold, self.name = scorer, float(threshold), name
        bound = self.threshold if scorer.higher_is_better else -self.threshold
        self.description = f"{scorer.name} {'>=' if scorer.higher_is_better else '<='} {bound:.6g}"

    @classmethod
    def fit(cls, space: DigitSpace | str | Archs, scorer: str = "rank_ensemble", keep: float = 0.1,
            rng: int = 0) -> QuantileFilter:
        """Threshold at the ``1 − keep`` quantile of the scores of a space (all of it, or a seeded
        sample of a large one) or of a list of cells. Ties at the threshold are all kept, so coarse
        scorers can keep somewhat more than ``keep``."""
        if not 0 < keep <= 1:
            raise NasplugError(f"keep must be a fraction in (0, 1], got {keep}")
        found = entry(scorer)
        if found.kind != "scorer":
            raise NasplugError(f"{scorer!r} is a {found.kind}, not a scorer")
        if found.slow:
            raise NasplugError(f"{scorer!r} builds a network per cell: too slow to fit on a whole space")
        built = get(scorer, space=space) if found.takes_space else get(scorer)
        values = oriented(built.score_many(fit_cells(space, rng)), built.higher_is_better)
        values = values[np.isfinite(values)]
        if not values.size:
            raise NasplugError(f"{scorer!r} gives no finite score on the cells it is fitted on")
        return cls(built, float(np.quantile(values, 1.0 - keep, method="lower")))

    def keep_batch(self, batch: ArchBatch) -> np.ndarray:
        values = oriented(self.scorer.score_many(batch), self.scorer.higher_is_better)
        with np.errstate(invalid="ignore"):
            return np.isfinite(values) & (values >= self.threshold - 1e-12)


@register("top_fraction", "filter",
          "keep the best-scored fraction of the space by a scorer (default: top 10 % by rank_ensemble)")
def top_fraction(space: DigitSpace | str | Archs = "nb201", scorer: str = "rank_ensemble",
                 keep: float = 0.1) -> QuantileFilter:
    return QuantileFilter.fit(space, scorer, keep)
