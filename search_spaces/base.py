"""Search spaces whose cells are vectors of categorical digits, indexed as mixed-radix integers.

:class:`DigitSpace` is the common part: digit ``j`` takes one of ``params[j]``'s choices, so a cell is
a mixed-radix integer and ``size``, indexing, uniform sampling and neighbourhoods are exact and cheap
without ever materializing the space; each concrete space says how digits become a cell
(:meth:`~DigitSpace.from_digits`, and batched :meth:`~DigitSpace.batch_digits`) and, when some digit
vectors are not cells of the benchmark (NAS-Bench-101), which are valid
(:meth:`~DigitSpace.valid_digits`). The same ``params`` (name, choices) are the Optuna parameters of
a define-by-run suggestion (:mod:`nasplug.optuna.params`).

:class:`ProductSpace` is the case where every edge of a fixed DAG skeleton independently takes one
op: NAS-Bench-201 (4 nodes, 5 ops) and [C22]'s complete N-node DAG space (ops zero/skip/linear).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence

import numpy as np

from nasplug.checks import format_count
from nasplug.errors import ArchError
from nasplug.graph import ArchBatch, ArchGraph, all_pairs
from nasplug.ops import Op

#: Spaces with at most this many cells are enumerated whole when a filter is fitted, a keep-mask
#: built or a space scored; larger ones are represented by a seeded uniform sample.
ENUMERATION_LIMIT = 2_000_000
#: Size of that sample (cells drawn digit by digit, so any space size works, 3^435 included) ...
SAMPLE_SIZE = 200_000
#: ... in spaces of at most 40 digits; wider ones draw fewer cells, ``SAMPLE_DIGITS // digits``, so
#: that a sample's arrays and its path statistics stay bounded (``dag:100``, 4,950 edges: 1,616 cells).
SAMPLE_DIGITS = 8_000_000


def edge_param(source: int, target: int) -> str:
    """The parameter name of edge ``(source, target)`` of a product space: ``edge_{source}_{target}``."""
    return f"edge_{source}_{target}"


class DigitSpace:
    """Cells encoded by digit vectors; index = the digits read as a mixed-radix number, most
    significant first. Subclasses implement :meth:`from_digits`, :meth:`batch_digits` and
    :meth:`encode_digits`, and :meth:`valid_digits` when not every digit vector is a cell."""

    name = "digits"

    def __init__(self, params: Sequence[tuple[str, Sequence[str]]]):
        self.params = tuple((name, tuple(choices)) for name, choices in params)
        self.radices = tuple(len(choices) for _, choices in self.params)
        if not self.radices or min(self.radices) < 1:
            raise ArchError("a space needs at least one parameter, each with at least one choice")

    # -------------------------------------------------------------- to implement
    def from_digits(self, digits: Sequence[int]) -> ArchGraph:
        """The cell of one digit vector (an :class:`ArchError` when it is not a valid cell)."""
        raise NotImplementedError

    def batch_digits(self, digits: np.ndarray) -> ArchBatch:
        """The :class:`~nasplug.graph.ArchBatch` of a ``(B, D)`` digit matrix, built without cell objects
        (rows that are not valid cells are cells without edges)."""
        raise NotImplementedError

    def encode_digits(self, arch: ArchGraph | str) -> tuple[int, ...]:
        """The digit vector of a cell (or its encoding); an :class:`ArchError` if it is not in the space."""
        raise NotImplementedError

    def valid_digits(self, digits: np.ndarray) -> np.ndarray:
        """``(B,)`` bool: which rows of a ``(B, D)`` digit matrix are cells of the space (all here)."""
        return np.ones(len(np.asarray(digits).reshape(-1, len(self.radices))), dtype=bool)

    # -------------------------------------------------------------- size and iteration
    @property
    def size(self) -> int:
        """Number of digit vectors (an exact Python int, possibly astronomically large)."""
        return math.prod(self.radices)

    def __len__(self) -> int:
        return self.size

    @property
    def sample_size(self) -> int:
        """How many cells represent the space when it is not :attr:`enumerable`: :data:`SAMPLE_SIZE`,
        or :data:`SAMPLE_DIGITS` digits' worth of cells in a space with more than 40 digits."""
        return max(1, min(SAMPLE_SIZE, SAMPLE_DIGITS // len(self.radices)))

    @property
    def enumerable(self) -> bool:
        """Whether the space is small enough to enumerate whole (:data:`ENUMERATION_LIMIT`)."""
        return self.size <= ENUMERATION_LIMIT

    def __iter__(self) -> Iterator[ArchGraph]:
        for index in range(self.size):
            digits = self.digits(index)
            if self.valid_digits(np.asarray([digits]))[0]:
                yield self.from_digits(digits)

    def __contains__(self, arch: object) -> bool:
        try:
            self.encode(arch)  # type: ignore[arg-type]
        except ArchError:
            return False
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -------------------------------------------------------------- indices and digits
    def _place_values(self) -> list[int]:
        values, acc = [], 1
        for radix in reversed(self.radices):
            values.append(acc)
            acc *= radix
        return values[::-1]

    def digits(self, index: int) -> tuple[int, ...]:
        """The digits (most significant first) of cell ``index``."""
        if not 0 <= index < self.size:
            raise ArchError(f"index {index} is outside the space (size {self.size})")
        out = []
        for radix in reversed(self.radices):
            index, d = divmod(index, radix)
            out.append(d)
        return tuple(reversed(out))

    def index_of(self, digits: Sequence[int]) -> int:
        """The index of the cell with these digits (an exact Python int; the inverse of :meth:`digits`)."""
        index = 0
        for d, radix in zip(digits, self.radices):
            index = index * radix + int(d)
        return index

    def _check_int64(self) -> None:
        if self.size >= 2**63:
            raise ArchError(f"{self} has {format_count(self.size)} cells, too many for int64 indices: "
                            "work with digit matrices (sample_digits, batch_digits)")

    def indices_of(self, digits: np.ndarray) -> np.ndarray:
        """``(B,)`` int64 indices of a ``(B, D)`` digit matrix (spaces below 2^63 cells)."""
        self._check_int64()
        return np.asarray(digits, dtype=np.int64) @ np.array(self._place_values(), dtype=np.int64)

    def digit_matrix(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(B, D)`` digits of many cells at once (vectorized mixed-radix decoding)."""
        self._check_int64()
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.size):
            raise ArchError(f"indices outside the space (size {self.size})")
        place = np.array(self._place_values(), dtype=np.int64)
        return (idx[:, None] // place[None, :]) % np.array(self.radices, dtype=np.int64)

    def decode(self, index: int) -> ArchGraph:
        """The architecture with this index."""
        return self.from_digits(self.digits(int(index)))

    def encode(self, arch: ArchGraph | str) -> int:
        """The index of an architecture (or its encoding); an error if it is not in the space."""
        return self.index_of(self.encode_digits(arch))

    def encode_many(self, archs: Sequence[ArchGraph | str]) -> np.ndarray:
        """``(B,)`` int64 indices of many cells; raises :class:`ArchError` naming the row."""
        self._check_int64()
        out = np.empty(len(archs), dtype=np.int64)
        for i, arch in enumerate(archs):
            try:
                out[i] = self.encode(arch)
            except ArchError as err:
                raise ArchError(f"row {i}: {err}") from None
        return out

    # -------------------------------------------------------------- batches and sampling
    def batch(self, indices: Sequence[int] | np.ndarray | None = None) -> ArchBatch:
        """An :class:`ArchBatch` of the given cells (default: the whole space) for vectorized
        scorers, built straight from the indices without creating ArchGraph objects."""
        if indices is None:
            if not self.enumerable:
                raise ArchError(f"the space has {format_count(self.size)} cells; pass the cells to score")
            indices = np.arange(self.size)
        return self.batch_digits(self.digit_matrix(indices))

    def sample_digits(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``(n, D)`` digits of ``n`` uniformly random valid cells (digits drawn independently,
        invalid vectors drawn again), for spaces of any size."""
        rng = np.random.default_rng(rng)
        radices = np.array(self.radices)
        out = np.empty((0, len(radices)), dtype=np.int64)
        while len(out) < n:
            draw = np.floor(rng.random((max(int(n) - len(out), 16), len(radices))) * radices).astype(np.int64)
            out = np.concatenate([out, draw[self.valid_digits(draw)]])
        return out[: int(n)]

    def fit_batch(self, rng: np.random.Generator | int | None = 0) -> ArchBatch:
        """What filters are fitted on: the whole space when :attr:`enumerable`, else a seeded
        uniform sample of :attr:`sample_size` cells (which can only shrink a fitted range)."""
        if self.enumerable:
            return self.batch()
        return self.batch_digits(self.sample_digits(self.sample_size, rng))

    def sample(self, rng: np.random.Generator | int | None = None) -> ArchGraph:
        """A uniformly random cell (each digit drawn independently, invalid draws repeated)."""
        return self.from_digits(self.sample_digits(1, rng)[0].tolist())

    def neighbour_digits(self, digits: Sequence[int]) -> np.ndarray:
        """Every digit vector that differs from ``digits`` in exactly one digit (some may be
        invalid cells: callers check :meth:`valid_digits`)."""
        digits = np.asarray(digits, dtype=np.int64)
        rows = []
        for j, radix in enumerate(self.radices):
            for step in range(1, radix):
                row = digits.copy()
                row[j] = (row[j] + step) % radix
                rows.append(row)
        return np.array(rows, dtype=np.int64).reshape(-1, len(self.radices))

    def neighbours(self, arch: ArchGraph | str) -> list[ArchGraph]:
        """Cells that differ from ``arch`` in exactly one digit (for local search)."""
        near = self.neighbour_digits(self.encode_digits(arch))
        return [self.from_digits(row) for row in near[self.valid_digits(near)].tolist()]


class ProductSpace(DigitSpace):
    """All assignments of ``ops`` to the edges ``(s, t)``, ``s < t``, of an ``n_nodes`` DAG.

    Digit ``e`` is the op index of edge ``pairs[e]`` (parameter ``edge_{s}_{t}``), so iteration order
    is the lexicographic order of the edge-op tuples.
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
        super().__init__([(edge_param(s, t), [op.name for op in self.ops]) for s, t in self.pairs])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_nodes={self.n_nodes}, ops={[op.name for op in self.ops]})"

    def __iter__(self) -> Iterator[ArchGraph]:
        for index in range(self.size):
            yield self.decode(index)

    def sample_digits(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``(n, E)`` op indices of ``n`` uniformly random cells (edges drawn independently)."""
        return np.random.default_rng(rng).integers(len(self.ops), size=(int(n), len(self.pairs)))

    def from_digits(self, digits: Sequence[int]) -> ArchGraph:
        return ArchGraph(self.n_nodes, {p: self.ops[d] for p, d in zip(self.pairs, digits)})

    def batch_digits(self, digits: np.ndarray) -> ArchBatch:
        """An :class:`ArchBatch` from a ``(B, E)`` matrix of op indices (works for any space size)."""
        return ArchBatch.from_op_indices(self.n_nodes, digits, self.ops)

    def encode_digits(self, arch: ArchGraph | str) -> tuple[int, ...]:
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
        return tuple(digits)

    def encode_many(self, archs: Sequence[ArchGraph | str]) -> np.ndarray:
        """``(B,)`` int64 indices of many cells (spaces below 2^63 cells). NB201 strings in this
        space's exact form are read by one regular expression without building cells; anything
        else goes through :meth:`encode`. Raises :class:`ArchError` naming the position."""
        self._check_int64()
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
