"""Layer 2: concrete search spaces, resolved by name with :func:`get` (``"nb201"``, ``"dag"``,
``"dag:6"``, ``"nb101"``, ``"nb301"``).

Import as ``nasplug.search_spaces`` (this folder is installed as that subpackage).
"""

from __future__ import annotations

from nasplug.errors import ArchError
from nasplug.search_spaces.base import ENUMERATION_LIMIT, SAMPLE_DIGITS, SAMPLE_SIZE, DigitSpace, ProductSpace
from nasplug.search_spaces.dag import MAX_DAG_NODES, DAGSpace
from nasplug.search_spaces.darts import DartsSpace
from nasplug.search_spaces.nb101 import NB101Space
from nasplug.search_spaces.nb201 import NB201Space

__all__ = ["DigitSpace", "ProductSpace", "NB201Space", "DAGSpace", "NB101Space", "DartsSpace",
           "ENUMERATION_LIMIT", "SAMPLE_SIZE", "SAMPLE_DIGITS",
           "MAX_DAG_NODES", "get", "available", "resolve_space"]

_DESCRIPTIONS = {
    "nb201": "NAS-Bench-201 cells: 4 nodes, ops none/skip/conv1x1/conv3x3/avgpool (15,625)",
    "dag": "complete N-node DAGs, ops zero/skip/linear (default N=5: 59,049); write dag:N, N <= 64",
    "nb101": "NAS-Bench-101 cells: <= 7 vertices, <= 9 edges, conv3x3/conv1x1/maxpool (sampled)",
    "nb301": "DARTS / NAS-Bench-301 genotypes: normal + reduction cell, 7 ops (~1e18; sampled); alias darts",
}


def available() -> dict[str, str]:
    """Space names and one-line descriptions."""
    return dict(_DESCRIPTIONS)


def get(name: str) -> DigitSpace:
    """Resolve a space by name: ``nb201``, ``dag`` (5 nodes), ``dag:N``, ``nb101``, ``nb301``
    (alias ``darts``)."""
    key, _, arg = name.strip().partition(":")
    if key == "nb201" and not arg:
        return NB201Space()
    if key == "nb101" and not arg:
        return NB101Space()
    if key in ("nb301", "darts") and not arg:
        return DartsSpace()
    if key == "dag":
        if not arg:
            return DAGSpace()
        if arg.isdigit():
            return DAGSpace(int(arg))
        raise ArchError(f"bad space {name!r}: write dag:N with 2 <= N <= {MAX_DAG_NODES} nodes")
    raise ArchError(f"unknown space {name!r}; available: {', '.join(_DESCRIPTIONS)} (or dag:N)")


def resolve_space(space: DigitSpace | str) -> DigitSpace:
    """A space from itself or its name (``nb201``, ``dag:5``, ``nb101``, ``nb301``)."""
    if isinstance(space, str):
        return get(space)
    if not isinstance(space, DigitSpace):
        raise ArchError(f"{space!r} is not a search space (a nasplug.search_spaces.DigitSpace)")
    return space
