"""Many architectures with the same number of nodes as dense arrays, for vectorized scoring."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from nasplug.errors import ArchError
from nasplug.ops import Op


class HasEdges(Protocol):
    """What :meth:`ArchBatch.from_archs` reads of an architecture (an :class:`~nasplug.ArchGraph`)."""

    n_nodes: int
    edge_items: tuple[tuple[tuple[int, int], Op], ...]


def all_pairs(n_nodes: int) -> tuple[tuple[int, int], ...]:
    """Every ``(s, t)``, ``s < t``, in order of target then source (node ``t``'s in-edges contiguous)."""
    return tuple((s, t) for t in range(1, n_nodes) for s in range(t))


@dataclass(frozen=True)
class ArchBatch:
    """Architectures with equal node counts as arrays.

    ``roles[b, e]`` is the role code (:data:`nasplug.ops.ROLE_CODES`) of edge ``pairs[e]`` in
    architecture ``b`` (``(B, E)`` int8); ``kernel_sizes`` likewise (``(B, E)`` int16). ``pairs``
    lists every ``(s, t)``, ``s < t``, in order of target then source (:func:`all_pairs`).
    """

    n_nodes: int
    pairs: tuple[tuple[int, int], ...]
    roles: np.ndarray
    kernel_sizes: np.ndarray

    def __len__(self) -> int:
        return self.roles.shape[0]

    all_pairs = staticmethod(all_pairs)

    @classmethod
    def from_archs(cls, archs: Iterable[HasEdges]) -> ArchBatch:
        """Stack architectures (all with the same number of nodes) into arrays."""
        archs = list(archs)
        if not archs:
            raise ArchError("no architectures given")
        n = archs[0].n_nodes
        if any(a.n_nodes != n for a in archs):
            raise ArchError("all architectures of a batch need the same number of nodes")
        pairs = all_pairs(n)
        col = {p: i for i, p in enumerate(pairs)}
        roles = np.zeros((len(archs), len(pairs)), dtype=np.int8)
        kernels = np.ones((len(archs), len(pairs)), dtype=np.int16)
        for b, arch in enumerate(archs):
            for edge, op in arch.edge_items:
                roles[b, col[edge]] = op.code
                kernels[b, col[edge]] = op.kernel_size
        return cls(n, pairs, roles, kernels)

    @classmethod
    def from_op_indices(cls, n_nodes: int, indices: np.ndarray, ops: Sequence[Op]) -> ArchBatch:
        """A batch from op indices: ``indices[b, e]`` is the position in ``ops`` of cell ``b``'s op on
        edge ``all_pairs(n_nodes)[e]`` — array work only (e.g. a product space's digits)."""
        indices = np.asarray(indices, dtype=np.int64)
        roles = np.array([op.code for op in ops], dtype=np.int8)[indices]
        kernels = np.array([op.kernel_size for op in ops], dtype=np.int16)[indices]
        return cls(n_nodes, all_pairs(n_nodes), roles, kernels)
