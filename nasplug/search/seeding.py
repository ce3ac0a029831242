"""The best-scored, mutually distinct cells of a filtered space: where a search starts.

A model-based sampler (TPE) proposes its first trials blind — at random, for its startup trials,
and, when K trials run in parallel, for the whole first batch of K, before any result returns.
A training-free scorer knows more than that: :func:`scored_cells` ranks the cells that pass the
filter by the scorer and keeps one cell per function (canonical key), so a search can start from
the best-scored distinct cells instead (``FilteredSampler(scored_startup=...)``, used by both the
Optuna and the Ray backends). ``benchmarks/parallel_efficiency.py`` measures what it buys.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nasplug.errors import NasplugError
from nasplug.scorers import oriented
from nasplug.search.filtering import keep_mask, resolve_filter, resolve_scorer
from nasplug.search_spaces import ProductSpace, resolve_space


def scored_cells(space: ProductSpace | str, scorer: Any, filter: Any = None, n: int = 64,
                 rng: np.random.Generator | int | None = 0) -> list[tuple[int, ...]]:
    """The ``n`` best-scored cells of the filtered space, one per canonical key, best first.

    Parameters
    ----------
    space
        A product space (object or name). Enumerable spaces are scored whole (NB201: one batched
        call, ~30 ms for ``live_param_cost``); larger ones on a seeded uniform sample of
        :attr:`~nasplug.search_spaces.DigitSpace.sample_size` cells.
    scorer
        A scorer (object or registered name); its ``higher_is_better`` orients the ranking.
    filter
        A filter (object, name or ``None``): only passing cells are ranked.
    n
        How many cells to return (fewer when the filtered space has fewer distinct functions).
    rng
        Breaks ties between equal scores (coarse scorers tie a lot), so that different seeds start
        from different, equally well-scored cells.

    Returns
    -------
    The cells as digit tuples (op index per edge, in the space's edge order).

    Raises
    ------
    NasplugError
        Without a scorer, or when ``n < 1``.
    """
    space = resolve_space(space)
    scorer = resolve_scorer(scorer)
    if scorer is None:
        raise NasplugError("scored cells need a scorer (e.g. live_param_cost)")
    if n < 1:
        raise NasplugError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(rng)
    mask = keep_mask(space, resolve_filter(filter, space))
    digits = (space.digit_matrix(np.arange(space.size)) if space.enumerable
              else space.sample_digits(space.sample_size, rng))
    digits = digits[mask.keep_many(digits)]
    scores = oriented(scorer.score_many(space.batch_digits(digits)), scorer.higher_is_better)
    finite = np.isfinite(scores)
    digits, scores = digits[finite], scores[finite]
    order = np.lexsort((rng.random(len(scores)), -scores))  # best first, ties at random
    cells, seen = [], set()
    for row in digits[order]:
        cell = tuple(int(d) for d in row)
        key = space.from_digits(cell).canonical_key()
        if key in seen:
            continue
        seen.add(key)
        cells.append(cell)
        if len(cells) >= n:
            break
    return cells
