"""The DARTS / NAS-Bench-301 space as digits: per cell (normal, then reduction) the two distinct
inputs of each intermediate node 2..5 (1, 3, 6 and 10 choices) and the op of each of its 8 pairs
(7 choices): (180 · 7^8)² ≈ 1.08 · 10^18 genotypes, every digit vector a valid one.

This is NAS-Bench-301's own parameterization (its configuration space chooses the input pair of
nodes 3..5 and one op per edge); the pair order within a node is fixed (smaller input first), which
loses nothing since a node sums its two inputs. Cells are pair DAGs (:mod:`nasplug.graph.darts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from nasplug.errors import ArchError
from nasplug.graph import ArchBatch, ArchGraph, darts
from nasplug.search_spaces.base import DigitSpace

CELLS = ("normal", "reduce")
#: Input pairs of intermediate node i (2..5), in digit order.
INPUT_PAIRS = {node: tuple(combinations(range(node), 2)) for node in range(2, 6)}


class DartsSpace(DigitSpace):
    """DARTS genotypes: parameters ``{cell}_inputs_{i}`` (``"a_b"``) for i = 2..5, then
    ``{cell}_op_{k}`` for the 8 pairs, for the normal then the reduction cell."""

    name = "nb301"

    def __init__(self):
        params = []
        for cell in CELLS:
            params += [(f"{cell}_inputs_{i}", tuple(f"{a}_{b}" for a, b in INPUT_PAIRS[i]))
                       for i in range(2, 6)]
            params += [(f"{cell}_op_{k}", darts.OPS) for k in range(8)]
        super().__init__(params)
        # input state of pair k (node 2 + k // 2, first or second of its input pair) per choice
        self._tables = [np.array([pair[side] for pair in INPUT_PAIRS[i]])
                        for i in range(2, 6) for side in (0, 1)]

    def _arrays(self, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        digits = np.asarray(digits, dtype=np.int64).reshape(-1, len(self.radices))
        per_cell = digits.reshape(len(digits), 2, 12)
        inputs = np.stack([self._tables[k][per_cell[:, :, k // 2]] for k in range(8)], axis=2)
        return per_cell[:, :, 4:], inputs

    def batch_digits(self, digits: np.ndarray) -> ArchBatch:
        return darts.batch_arrays(*self._arrays(digits))

    def from_digits(self, digits: Sequence[int]) -> ArchGraph:
        ops, inputs = self._arrays(np.asarray([digits]))
        cells = [[(darts.OPS[o], int(i)) for o, i in zip(ops[0, c], inputs[0, c])] for c in (0, 1)]
        return ArchGraph.from_darts(darts.genotype(*cells))

    def encode_digits(self, arch: ArchGraph | str) -> tuple[int, ...]:
        arch = ArchGraph.parse(arch)
        try:
            geno = arch.to_darts()
        except ArchError as err:
            raise ArchError(f"{arch} is not a DARTS genotype: {err}") from None
        if not isinstance(geno, darts.Genotype):
            raise ArchError("the nb301 space holds genotypes (normal and reduction cell), not one cell")
        digits: list[int] = []
        for cell in (geno.normal, geno.reduce):
            ops, pairs = [], []
            for node in range(2, 6):
                (op_a, a), (op_b, b) = sorted(cell[2 * node - 4: 2 * node - 2], key=lambda p: p[1])
                if a == b:
                    raise ArchError(f"node {node} reads input {a} twice; NB301 nodes read two different "
                                    "inputs")
                pairs.append(INPUT_PAIRS[node].index((a, b)))
                ops += [darts.OPS.index(op_a), darts.OPS.index(op_b)]
            digits += pairs + ops
        return tuple(digits)
