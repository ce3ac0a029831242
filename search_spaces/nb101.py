"""NAS-Bench-101's cell space as digits: 21 edge bits of a 7-vertex upper-triangular matrix and the
ops of the 5 interior vertices (2^21 · 3^5 = 509,607,936 digit vectors).

A digit vector is a cell of the benchmark when, after its pruning rule, the input reaches the output
and at most 9 edges remain (:meth:`NB101Space.valid_digits`); many vectors prune to the same cell
(NB101 holds 423,624 distinct ones). Sampling draws every bit and op uniformly and draws invalid
vectors again — NASLib's random NB101 sampler (edges with probability ½) — so it is uniform over
valid *vectors*, not over distinct cells. Filters are fitted on such a sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nasplug.errors import ArchError
from nasplug.graph import ArchBatch, ArchGraph, nb101
from nasplug.search_spaces.base import DigitSpace

#: The raw matrix entries ``(u, v)``, ``u < v``, in digit order (target, then source).
EDGES = tuple((u, v) for v in range(1, nb101.MAX_VERTICES) for u in range(v))
OPS = tuple(nb101.VERTEX_OPS)


class NB101Space(DigitSpace):
    """NAS-Bench-101 cells: parameters ``edge_{u}_{v}`` (``"0"``/``"1"``) then ``op_{v}`` (v = 1..5)."""

    name = "nb101"

    def __init__(self):
        super().__init__([(f"edge_{u}_{v}", ("0", "1")) for u, v in EDGES]
                         + [(f"op_{v}", OPS) for v in range(1, nb101.MAX_VERTICES - 1)])

    def _arrays(self, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        digits = np.asarray(digits, dtype=np.int64).reshape(-1, len(self.radices))
        mats = np.zeros((len(digits), nb101.MAX_VERTICES, nb101.MAX_VERTICES), dtype=np.int64)
        us, vs = zip(*EDGES)
        mats[:, list(us), list(vs)] = digits[:, : len(EDGES)]
        return mats, digits[:, len(EDGES):]

    def batch_digits(self, digits: np.ndarray) -> ArchBatch:
        return nb101.batch_arrays(*self._arrays(digits))[0]

    def valid_digits(self, digits: np.ndarray) -> np.ndarray:
        return nb101.batch_arrays(*self._arrays(digits))[1]

    def from_digits(self, digits: Sequence[int]) -> ArchGraph:
        mats, ops = self._arrays(np.asarray([digits]))
        return ArchGraph.from_nb101(mats[0], ["input", *(OPS[i] for i in ops[0]), "output"])

    def encode_digits(self, arch: ArchGraph | str) -> tuple[int, ...]:
        """The digits of a cell's pruned spec, padded to 7 vertices as NASLib pads (output last,
        unused vertices without edges and op ``conv3x3-bn-relu``)."""
        arch = ArchGraph.parse(arch)
        try:
            matrix, ops = arch.to_nb101()
        except ArchError as err:
            raise ArchError(f"{arch} is not an NB101 cell: {err}") from None
        padded = nb101.format_naslib_nb101(matrix, ops)
        n = nb101.MAX_VERTICES
        full = np.asarray(padded[: n * n]).reshape(n, n)
        names = [nb101.NASLIB_OPS[i] for i in padded[n * n + 1: n * n + n - 1]]
        return tuple(int(full[u, v]) for u, v in EDGES) + tuple(OPS.index(o) for o in names)
