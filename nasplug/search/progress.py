"""One compact line per finished trial, from the attributes every backend records (:mod:`attrs`).

``trial  12  trained     97.49  best 98.61 (trial 7)  lr 0.117  3.1 s  |nor_conv_3x3~0|+|...|``

Outcomes: ``trained``/``evaluated`` (a new value), ``duplicate`` (the value of an earlier trial of
the same network, not trained again), ``rejected`` (a filter refused the cell before training),
``pruned`` (a pruner stopped the training early), ``failed`` (with the reason) and
``interrupted`` (Ctrl-C or a dead worker: retried when the search resumes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from nasplug.search.attrs import (
    ATTR_ARCH,
    ATTR_DUPLICATE_OF,
    ATTR_FAIL_REASON,
    ATTR_FALLBACK,
    ATTR_LR,
    ATTR_REJECTED_BY,
    ATTR_RETRY_OF,
    ATTR_TRAIN_SECONDS,
    ATTR_TRIES,
    RETRIED_REASONS,
)


def trial_line(number: int, state: str, value: float | Sequence[float] | None, attrs: Mapping[str, Any], *,
               best: tuple[int, float] | None = None, last_step: int | None = None,
               trained: bool = True) -> str:
    """The progress line of a finished trial. ``state`` is ``"COMPLETE"``, ``"PRUNED"`` or
    ``"FAIL"``; ``best`` the study's best ``(trial, value)`` so far; ``last_step`` the last
    reported step of a pruned trial; ``trained`` says "trained" rather than "evaluated". A
    multi-objective trial's ``value`` is its vector of objective values."""
    arch = attrs.get(ATTR_ARCH, "")
    extra = []
    if state == "COMPLETE" and ATTR_DUPLICATE_OF in attrs:
        outcome, shown = "duplicate", _number(value)
        verb = "trained" if trained else "evaluated"
        extra.append(f"same network as trial {attrs[ATTR_DUPLICATE_OF]}: not {verb} again")
    elif state == "COMPLETE":
        outcome, shown = "trained" if trained else "evaluated", _number(value)
        if ATTR_LR in attrs:
            extra.append(f"lr {attrs[ATTR_LR]:.3g}")
        if ATTR_TRAIN_SECONDS in attrs:
            extra.append(f"{attrs[ATTR_TRAIN_SECONDS]:.1f} s")
    elif state == "PRUNED" and ATTR_REJECTED_BY in attrs:
        outcome, shown = "rejected", ""
        extra.append(f"by filter {attrs[ATTR_REJECTED_BY]} before training (no passing cell was found)")
    elif state == "PRUNED":
        outcome, shown = "pruned", ""
        extra.append("stopped early by the pruner" + (f" after epoch {last_step}" if last_step else ""))
    else:
        reason = str(attrs.get(ATTR_FAIL_REASON, "exception"))
        retried = reason.split(":")[0] in RETRIED_REASONS
        outcome, shown = ("interrupted" if retried else "failed"), ""
        extra.append(reason + ("; retried when the search resumes" if retried else ""))
    if ATTR_RETRY_OF in attrs:
        extra.append(f"retry of trial {attrs[ATTR_RETRY_OF]}")
    if ATTR_FALLBACK in attrs:
        extra.append(f"filter fallback {attrs[ATTR_FALLBACK]} after {attrs.get(ATTR_TRIES, '?')} "
                     "rejected proposals")
    if best is not None and state == "COMPLETE":
        extra.insert(0, f"best {best[1]:.2f} (trial {best[0]})")
    return f"trial {number:>4}  {outcome:<11} {shown:>7}  {'  '.join(extra)}  {arch}".rstrip()


def _number(value: float | Sequence[float] | None) -> str:
    if isinstance(value, Sequence):
        return " / ".join(f"{v:.4g}" for v in value)
    return f"{value:.2f}" if value is not None and math.isfinite(value) else str(value)
