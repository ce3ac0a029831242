"""NAS-Bench-201's cell space: 4 nodes, 6 edges, 5 ops — 15,625 cells."""

from __future__ import annotations

from nasplug.ops import NB201_OPS
from nasplug.search_spaces.base import ProductSpace


class NB201Space(ProductSpace):
    """The NAS-Bench-201 topology space (Dong & Yang, ICLR 2020).

    Iteration is in lexicographic order of the edge ops (edge order as in the NB201 string, op
    order ``none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3``); this is *not* the
    benchmark's own arch index, which the benchmark loaders map by NB201 string.
    """

    name = "nb201"

    def __init__(self):
        super().__init__(4, NB201_OPS)
