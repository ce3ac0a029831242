"""[C22]'s complete N-node DAG space: every edge is zero, skip or linear — 3^(N(N−1)/2) cells."""

from __future__ import annotations

from nasplug.errors import ArchError
from nasplug.ops import DAG_CODE_OPS
from nasplug.search_spaces.base import ProductSpace

#: The largest ``dag:N``: 2,016 edges, 3^2016 ≈ 10^962 cells. Everything is polynomial in the edges
#: (sampling by digits, path statistics, canonical keys), but a search trains the complete DAG's
#: network, whose O(N²) edges make building and training it the bottleneck (docs/architectures.md).
MAX_DAG_NODES = 64


class DAGSpace(ProductSpace):
    """All DAG codes with ``n_nodes`` nodes, ``2 <= n_nodes <= MAX_DAG_NODES`` (59,049 cells for
    N = 5); index order = the DAG code read as a base-3 number (``0_00_000`` first, ``2_22_222``
    last). Raises :class:`ArchError` for a node count outside that range."""

    name = "dag"

    def __init__(self, n_nodes: int = 5):
        if not 2 <= n_nodes <= MAX_DAG_NODES:
            raise ArchError(f"dag:{n_nodes}: a DAG space has 2 to {MAX_DAG_NODES} nodes (a search trains "
                            "networks with O(N²) edges; see docs/architectures.md)")
        super().__init__(n_nodes, DAG_CODE_OPS)

    def __repr__(self) -> str:
        return f"DAGSpace(n_nodes={self.n_nodes})"
