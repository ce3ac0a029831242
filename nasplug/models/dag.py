"""One DAG-forward loop for every builder: :class:`DAGCell` turns an :class:`ArchGraph` into a module.

The builders (MLP-DAG, CNN-DAG, NAS-Bench-201 cells) differ only in what an edge computes, so they
all pass an *edge factory* ``make_edge(edge, op) -> nn.Module`` to the same cell. A node is the sum
of its incoming edges (docs/theory.md §1); the cell evaluates nodes in topological order and only along
*live* edges (those on an input→output path), because the others cannot change the output.

A node with ``k`` ``concat`` in-edges (NAS-Bench-101, DARTS cells) stacks channel blocks: block ``i``
holds the channels of its ``i``-th block (NAS-Bench-101's split: ``width // k`` each, one more for the
first ``width mod k``) taken from source ``i`` at the same positions, which is exactly the
concatenation of :mod:`nasplug.theory.nngp` and keeps every node at the network's width.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nasplug.graph import ArchGraph
from nasplug.models.init import dag_edge_gains, init_layer_, weight_layer
from nasplug.ops import Op

EdgeFactory = Callable[[tuple[int, int], Op], nn.Module]


def _key(edge: tuple[int, int]) -> str:
    return f"{edge[0]}_{edge[1]}"


class DAGCell(nn.Module):
    """A DAG of edge modules; node ``t = Σ_{(s,t)} edge_st(node s)``, output = last node.

    Parameters
    ----------
    arch
        The architecture (any encoding :meth:`ArchGraph.parse` accepts).
    make_edge
        Factory building the module of one non-zero edge from ``((s, t), op)``.
    keep_dead
        Also build (but never evaluate) edges on no input→output path. NAS-Bench-201 instantiates
        every non-zero edge, so its parameter count includes dead ones; the theory network does not.

    Notes
    -----
    A cell without any input→output path computes the zero function; it returns ``0 · x`` so the
    output keeps the input's shape and stays connected to the autograd graph.
    """

    def __init__(self, arch: ArchGraph | str, make_edge: EdgeFactory, *, keep_dead: bool = False):
        super().__init__()
        self.arch = ArchGraph.parse(arch)
        live = self.arch.live_edges()
        built = self.arch.edges if keep_dead else live
        self.edges = nn.ModuleDict({_key(e): make_edge(e, op) for e, op in sorted(built.items())})
        # in-edges of each node, only live ones: a live edge's source always has a live in-edge
        # (or is the input), so every node read below has been computed.
        self._inputs: dict[int, list[tuple[int, str]]] = {}
        for (s, t) in sorted(live, key=lambda e: (e[1], e[0])):
            self._inputs.setdefault(t, []).append((s, _key((s, t))))
        # concat blocks of each node: (source, block index, number of blocks), dead blocks included
        self._blocks: dict[int, dict[int, tuple[int, int]]] = {}
        for t in range(self.arch.n_nodes):
            sources = [s for (s, u), op in self.arch.edge_items if u == t and op.role == "concat"]
            if sources:
                self._blocks[t] = {s: (i, len(sources)) for i, s in enumerate(sources)}

    def edge_module(self, edge: tuple[int, int]) -> nn.Module:
        """The module of edge ``(s, t)``."""
        return self.edges[_key(edge)]

    def built_edges(self) -> list[tuple[int, int]]:
        return [tuple(int(v) for v in k.split("_")) for k in self.edges]  # type: ignore[misc]

    def forward_nodes(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Every computed node's value (node 0 = ``x``); used to measure norms along the DAG."""
        nodes = {0: x}
        for t in range(1, self.arch.n_nodes):
            total = None
            for s, key in self._inputs.get(t, ()):
                y = self.edges[key](nodes[s])
                if s in self._blocks.get(t, {}):
                    y = y * _block_mask(y, *self._blocks[t][s])
                total = y if total is None else total + y
            if total is not None:
                nodes[t] = total
        return nodes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.forward_nodes(x).get(self.arch.output)
        return x * 0.0 if out is None else out

    def init_(self, init: str, generator: torch.Generator | None = None) -> None:
        """Apply an init mode (:data:`nasplug.models.init.INIT_MODES`) to every weighted edge:
        ``Var W_st = gain_st / fan_in`` [C24 eq. 4]."""
        gains = dag_edge_gains(self.arch, init)
        for edge in self.built_edges():
            layer = weight_layer(self.edge_module(edge))
            if layer is not None and edge in gains:
                init_layer_(layer, gains[edge], generator=generator)


def _block_mask(y: torch.Tensor, index: int, blocks: int) -> torch.Tensor:
    """0/1 mask over the channels (dim 1) of ``y`` selecting block ``index`` of ``blocks``."""
    width = y.shape[1]
    sizes = [width // blocks + (1 if i < width % blocks else 0) for i in range(blocks)]
    start = sum(sizes[:index])
    channel = torch.arange(width, device=y.device)
    mask = ((channel >= start) & (channel < start + sizes[index])).to(y.dtype)
    return mask.reshape(1, width, *([1] * (y.dim() - 2)))


@torch.no_grad()
def node_sq_norms(net: nn.Module, x: torch.Tensor) -> dict[int, float]:
    """``E‖z_t‖² / n`` of every computed node of ``net``'s DAG cell on inputs ``x`` (mean over the
    batch; ``n`` = features per sample). ``net`` is a builder's network with ``.stem`` and ``.cell``
    (MLP-/CNN-DAG); this is what the architecture-aware init keeps flat [C24 §3]."""
    nodes = net.cell.forward_nodes(net.stem(x))
    return {t: float(z.pow(2).flatten(1).sum(1).mean() / z[0].numel()) for t, z in nodes.items()}
