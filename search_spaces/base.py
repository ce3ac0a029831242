"""Product search spaces: every edge of a fixed DAG skeleton independently takes one op.

NAS-Bench-201 (4 nodes, 5 ops) and [C22]'s complete N-node DAG space (ops zero/skip/linear) are
both of this form, so one implementation serves them: an architecture is a mixed-radix integer
whose digits are op indices, one per edge. That makes ``size``, indexing, iteration and uniform
sampling exact and cheap without ever materializing the space (3^435 cells for N = 30).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np

from nasplug.errors import ArchError
from nasplug.graph import ArchBatch, ArchGraph, all_pairs
from nasplug.ops import Op

#: Spaces with at most this many cells are enumerated whole when a filter is fitted, a keep-mask
#: built or a space scored; larger ones are represented by a seeded uniform sample.
ENUMERATION_LIMIT = 2_000_000
#: Size of that sample (cells drawn edge by edge, so any space size works, 3^435 included).
SAMPLE_SIZE = 200_000


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
        self.pairs = all_pairs(n_nodes)
        self._op_index = {op: i for i, op in enumerate(self.ops)}
        self._pattern: re.Pattern | None = None

    @property
    def size(self) -> int:
        """Number of cells (an exact Python int, possibly astronomically large)."""
        return len(self.ops) ** len(self.pairs)

    def __len__(self) -> int:
        return self.size

    @property
    def enumerable(self) -> bool:
        """Whether the space is small enough to enumerate whole (:data:`ENUMERATION_LIMIT`)."""
        return self.size <= ENUMERATION_LIMIT

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
        """The op index of every edge (mixed-radix digits, most significant first) of cell ``index``."""
        if not 0 <= index < self.size:
            raise ArchError(f"index {index} is outside the space (size {self.size})")
        base, out = len(self.ops), []
        for _ in self.pairs:
            index, d = divmod(index, base)
            out.append(d)
        return tuple(reversed(out))

    def index_of(self, digits: Sequence[int]) -> int:
        """The index of the cell with these digits (an exact Python int; the inverse of :meth:`digits`)."""
        index, base = 0, len(self.ops)
        for d in digits:
            index = index * base + int(d)
        return index

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
        edges, digits = arch.edges, []
        for pair in self.pairs:
            op = edges.get(pair, self.ops[0] if self.ops[0].is_zero else None)
            if op not in self._op_index:
                name = "none" if op is None else op.name
                raise ArchError(f"op {name!r} on edge {pair} is not in this space")
            digits.append(self._op_index[op])
        return self.index_of(digits)

    def encode_many(self, archs: Sequence[ArchGraph | str]) -> np.ndarray:
        """``(B,)`` int64 indices of many cells (spaces below 2^63 cells). NB201 strings in this
        space's exact form are read by one regular expression without building cells; anything
        else goes through :meth:`encode`. Raises :class:`ArchError` naming the position."""
        if self.size >= 2**63:
            raise ArchError(f"{self} has {self.size:.3g} cells, too many for int64 indices: work with "
                            "digit matrices (sample_digits, batch_digits)")
        pattern = self._nb201_pattern()
        digit = {op.name: i for i, op in enumerate(self.ops)}
        powers = [len(self.ops) ** p for p in range(len(self.pairs) - 1, -1, -1)]
        out = np.empty(len(archs), dtype=np.int64)
        for i, arch in enumerate(archs):
            m = pattern.fullmatch(arch) if isinstance(arch, str) else None
            if m is not None:
                out[i] = sum(digit[name] * p for name, p in zip(m.groups(), powers))
                continue
            try:
                out[i] = self.encode(arch)
            except ArchError as err:
                raise ArchError(f"row {i}: {err}") from None
        return out

    def _nb201_pattern(self) -> re.Pattern:
        """The NB201 string of any cell of this space, with one group per edge (pairs order)."""
        if self._pattern is None:
            op = "(" + "|".join(re.escape(o.name) for o in self.ops) + ")"
            self._pattern = re.compile("\\+".join(
                "\\|" + "\\|".join(f"{op}~{s}" for s in range(t)) + "\\|" for t in range(1, self.n_nodes)))
        return self._pattern

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
            if not self.enumerable:
                raise ArchError(f"the space has {self.size:.3g} cells; pass the cells to score")
            indices = np.arange(self.size)
        return self.batch_digits(self.digit_matrix(indices))

    def batch_digits(self, digits: np.ndarray) -> ArchBatch:
        """An :class:`ArchBatch` from a ``(B, E)`` matrix of op indices (works for any space size)."""
        return ArchBatch.from_op_indices(self.n_nodes, digits, self.ops)

    def sample_digits(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``(n, E)`` op indices of ``n`` uniformly random cells (edges drawn independently), for
        spaces of any size (an index would overflow int64 beyond 2^63 cells)."""
        return np.random.default_rng(rng).integers(len(self.ops), size=(int(n), len(self.pairs)))

    def fit_batch(self, rng: np.random.Generator | int | None = 0) -> ArchBatch:
        """What filters are fitted on: the whole space when :attr:`enumerable`, else a seeded
        uniform sample of :data:`SAMPLE_SIZE` cells (which can only shrink a fitted range)."""
        if self.enumerable:
            return self.batch()
        return self.batch_digits(self.sample_digits(SAMPLE_SIZE, rng))

    def sample(self, rng: np.random.Generator | int | None = None) -> ArchGraph:
        """A uniformly random cell (each edge's op drawn independently)."""
        return self.from_digits(self.sample_digits(1, rng)[0].tolist())

    def neighbour_digits(self, digits: Sequence[int]) -> np.ndarray:
        """``(E·(K−1), E)``: every cell that differs from ``digits`` in exactly one edge's op."""
        digits = np.asarray(digits, dtype=np.int64)
        k, e = len(self.ops), len(digits)
        out = np.repeat(digits[None, :], e * (k - 1), axis=0)
        rows = np.arange(e * (k - 1))
        edge = rows // (k - 1)
        out[rows, edge] = (digits[edge] + 1 + rows % (k - 1)) % k
        return out

    def neighbours(self, arch: ArchGraph | str) -> list[ArchGraph]:
        """Cells that differ from ``arch`` in exactly one edge's op (for local search)."""
        digits = self.digits(self.encode(arch))
        return [self.from_digits(row) for row in self.neighbour_digits(digits).tolist()]
