"""[C22]'s complete N-node DAG space: every edge is zero, skip or linear — 3^(N(N−1)/2) cells."""

from __future__ import annotations

from nasplug.ops import DAG_CODE_OPS
from nasplug.search_spaces.base import ProductSpace


class DAGSpace(ProductSpace):
    """All DAG codes with ``n_nodes`` nodes (59,049 cells for N = 5); index order = the DAG code
    read as a base-3 number (``0_00_000`` first, ``2_22_222`` last)."""

    name = "dag"

    def __init__(self, n_nodes: int = 5):
        super().__init__(n_nodes, DAG_CODE_OPS)

    def __repr__(self) -> str:
        return f"DAGSpace(n_nodes={self.n_nodes})"
