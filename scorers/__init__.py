"""Concrete scorers and filters, resolved by name: ``scorers.get("effective_depth")``.

See :mod:`scorers.base` for the protocols; ``scorers.available()`` lists every name.
"""

from scorers.base import (
    BatchFilter,
    BatchScorer,
    Filter,
    Scorer,
    available,
    get,
    is_slow,
    oriented,
    register,
)

__all__ = [
    "Scorer", "Filter", "BatchScorer", "BatchFilter", "get", "available", "is_slow", "oriented", "register",
]
