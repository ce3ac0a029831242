"""The [C24] maximal-learning-rate multiplier as a registered scorer (a hyper-parameter, not a
quality proxy); the rule itself is :mod:`nasplug.theory.hparams` (docs/theory.md §5)."""

from __future__ import annotations

import numpy as np

from nasplug.graph import ArchBatch
from nasplug.scorers.base import BatchScorer
from nasplug.scorers.registry import register
from nasplug.theory.hparams import DEFAULT_OFFSET, lr_multipliers


class LRMultiplierScorer(BatchScorer):
    """The maximal-LR multiplier as a scorer (a hyper-parameter, not a quality proxy)."""

    higher_is_better = True

    def __init__(self, offset: float = DEFAULT_OFFSET, kernel_scaling: bool = False):
        self.offset, self.kernel_scaling = offset, kernel_scaling
        self.name = "max_lr_multiplier_cnn" if kernel_scaling else "max_lr_multiplier"
        self.description = f"η*/η_base, depth = #param edges + {offset} [C24]"

    def score_batch(self, batch: ArchBatch) -> np.ndarray:
        return lr_multipliers(batch, self.offset, kernel_scaling=self.kernel_scaling)


@register("max_lr_multiplier", "scorer",
          "[C24 eq. 8] η*/η_base = sqrt(Σ_b L_b³ / Σ_p L_p³), L = #param edges + 3 (MLP)")
def max_lr_multiplier(offset: float = DEFAULT_OFFSET) -> LRMultiplierScorer:
    return LRMultiplierScorer(offset)


@register("max_lr_multiplier_cnn", "scorer",
          "[C24 eq. 9] max-LR multiplier with the 1/q kernel-size factor (CNN, base q = 1)")
def max_lr_multiplier_cnn(offset: float = DEFAULT_OFFSET) -> LRMultiplierScorer:
    return LRMultiplierScorer(offset, kernel_scaling=True)
