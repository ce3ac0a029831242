"""Product search spaces: every edge of a fixed DAG skeleton independently takes one op.

NAS-Bench-201 (4 nodes, 5 ops) and [C22]'s complete N-node DAG space (ops zero/skip/linear) are
both of this form, so one implementation serves them: an architecture is a mixed-radix integer
whose digits are op indices, one per edge. That makes ``size``, indexing, iteration and uniform
sampling exact and cheap without ever materializing the space (3^435 cells for N = 30).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from nasplug.errors import ArchError
from nasplug.graph import ArchBatch, ArchGraph
from nasplug.ops import Op


class ProductSpace:
    """All assignments of ``ops`` to the edges ``(s, t)``, ``s < t``, of an ``n_nodes`` DAG.

    Index ``i`` encodes the op of edge ``pairs[e]`` as digit ``e`` in base ``len(ops)``, most
    significant first, so iteration order is the lexicographic order of the edge-op tuples.
    """

    name = "product"

    def __init__(self, n_nodes: int, ops: Sequence[Op]):
        if n_nodes < 2:
            raise ArchError(f"a space needs at least 2 nodes, got {n_nodes}")
        self.n_nodes = n_nodes
        self.ops = tuple(ops)
        self.pairs = ArchBatch.all_pairs(n_nodes)
        self._op_index = {op: i for i, op in enumerate(self.ops)}

    @property
    def size(self) -> int:
        """Number of cells (an exact Python int, possibly astronomically large)."""
        return len(self.ops) ** len(self.pairs)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[ArchGraph]:
        for index in range(self.size):
            yield self.decode(index)

    def __contains__(self, arch: object) -> bool:
        try:
            self.encode(arch)  # type: ignore[arg-type]
        except ArchError:
            return False
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_nodes={self.n_nodes}, ops={[op.name for op in self.ops]})"

    # -------------------------------------------------------------- encode / decode
    def digits(self, index: int) -> tuple[int, ...]:
        if not 0 <= index < self.size:
            raise ArchError(f"index {index} is outside the space (size {self.size})")
        base, out = len(self.ops), []
        for _ in self.pairs:
            index, d = divmod(index, base)
            out.append(d)
        return tuple(reversed(out))

    def from_digits(self, digits: Sequence[int]) -> ArchGraph:
        return ArchGraph(self.n_nodes, {p: self.ops[d] for p, d in zip(self.pairs, digits)})

    def decode(self, index: int) -> ArchGraph:
        """The architecture with this index."""
        return self.from_digits(self.digits(int(index)))

    def encode(self, arch: ArchGraph | str) -> int:
        """The index of an architecture (or its encoding); an error if it is not in the space."""
        arch = ArchGraph.parse(arch)
        if arch.n_nodes != self.n_nodes:
            raise ArchError(f"{arch} has {arch.n_nodes} nodes; this space has {self.n_nodes}")
        edges, index = arch.edges, 0
        for pair in self.pairs:
            op = edges.get(pair, self.ops[0] if self.ops[0].is_zero else None)
            if op not in self._op_index:
                name = "none" if op is None else op.name
                raise ArchError(f"op {name!r} on edge {pair} is not in this space")
            index = index * len(self.ops) + self._op_index[op]
        return index

    # -------------------------------------------------------------- batches and sampling
    def digit_matrix(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(B, E)`` op indices of many cells at once (vectorized mixed-radix decoding)."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.size):
            raise ArchError(f"indices outside the space (size {self.size})")
        powers = len(self.ops) ** np.arange(len(self.pairs) - 1, -1, -1, dtype=np.int64)
        return (idx[:, None] // powers[None, :]) % len(self.ops)

    def batch(self, indices: Sequence[int] | np.ndarray | None = None) -> ArchBatch:
        """An :class:`ArchBatch` of the given cells (default: the whole space) for vectorized
        scorers, built straight from the indices without creating ArchGraph objects."""
        if indices is None:
            if self.size > 10**7:
                raise ArchError(f"the space has {self.size} cells; pass the indices to score")
            indices = np.arange(self.size)
        digits = self.digit_matrix(indices)
        roles = np.array([op.code for op in self.ops], dtype=np.int8)[digits]
        kernels = np.array([op.kernel_size for op in self.ops], dtype=np.int16)[digits]
        return ArchBatch(self.n_nodes, self.pairs, roles, kernels)

    def sample(self, rng: np.random.Generator | int | None = None) -> ArchGraph:
        """A uniformly random cell (each edge's op drawn independently)."""
        rng = np.random.default_rng(rng)
        return self.from_digits(rng.integers(len(self.ops), size=len(self.pairs)).tolist())

    def neighbours(self, arch: ArchGraph | str) -> list[ArchGraph]:
        """Cells that differ from ``arch`` in exactly one edge's op (for local search)."""
        digits = list(self.digits(self.encode(arch)))
        out = []
        for e, d in enumerate(digits):
            for other in range(len(self.ops)):
                if other != d:
                    out.append(self.from_digits(digits[:e] + [other] + digits[e + 1 :]))
        return out
