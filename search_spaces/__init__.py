"""Layer 2: concrete search spaces, resolved by name with :func:`get` (``"nb201"``, ``"dag"``, ``"dag:6"``).

Import as ``nasplug.search_spaces`` (this folder is installed as that subpackage).
"""

from __future__ import annotations

from nasplug.errors import ArchError
from nasplug.search_spaces.base import ENUMERATION_LIMIT, SAMPLE_SIZE, ProductSpace
from nasplug.search_spaces.dag import DAGSpace
from nasplug.search_spaces.nb201 import NB201Space

__all__ = ["ProductSpace", "NB201Space", "DAGSpace", "ENUMERATION_LIMIT", "SAMPLE_SIZE", "get",
           "available", "resolve_space"]

_DESCRIPTIONS = {
    "nb201": "NAS-Bench-201 cells: 4 nodes, ops none/skip/conv1x1/conv3x3/avgpool (15,625)",
    "dag": "complete N-node DAGs, ops zero/skip/linear (default N=5: 59,049); write dag:N",
}


def available() -> dict[str, str]:
    """Space names and one-line descriptions."""
    return dict(_DESCRIPTIONS)


def get(name: str) -> ProductSpace:
    """Resolve a space by name: ``nb201``, ``dag`` (5 nodes) or ``dag:N``."""
    key, _, arg = name.strip().partition(":")
    if key == "nb201" and not arg:
        return NB201Space()
    if key == "dag":
        if not arg:
            return DAGSpace()
        if arg.isdigit() and int(arg) >= 2:
            return DAGSpace(int(arg))
        raise ArchError(f"bad space {name!r}: write dag:N with N >= 2 nodes")
    raise ArchError(f"unknown space {name!r}; available: {', '.join(_DESCRIPTIONS)} (or dag:N)")


def resolve_space(space: ProductSpace | str) -> ProductSpace:
    """A :class:`ProductSpace` from itself or its name (``nb201``, ``dag:5``)."""
    if isinstance(space, str):
        return get(space)
    if not isinstance(space, ProductSpace):
        raise ArchError(f"{space!r} is not a search space (a nasplug.search_spaces.ProductSpace)")
    return space
