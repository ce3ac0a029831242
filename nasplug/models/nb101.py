"""The NAS-Bench-101 network (Ying et al., ICML 2019) for a cell, as the benchmark trained it.

Macro structure (the benchmark's ``model_builder.py``; NASLib builds the same network through
``nasbench_pytorch``): a 3×3 Conv-BN-ReLU stem with 128 channels, 3 stacks of 3 cells, a 2×2 max
pooling (stride 2) before stacks 2 and 3 where the channels double (128, 256, 512), global average
pooling and a linear classifier. Every conv is bias-free and followed by BN and ReLU.

Inside a cell (pruned spec, :mod:`nasplug.graph.nb101`), :func:`vertex_channels` splits the output
width over the interior vertices that feed the output; every input→vertex edge is a 1×1
Conv-BN-ReLU projection from the cell's input width; interior edges sum (a source one channel wider
is truncated to the target's width); the output concatenates its interior inputs and adds the
projected input when the input→output edge exists. Parameter counts equal the benchmark's
``trainable_parameters`` and NASLib's ``params`` (tests/test_benchmark_nets.py, 250/250 on the
shared sample).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from nasplug.errors import ArchError
from nasplug.graph import ArchGraph
from nasplug.models.init import he_init_


def vertex_channels(c_in: int, c_out: int, matrix: np.ndarray) -> list[int]:
    """Channels of every vertex of a pruned cell (the benchmark's ``compute_vertex_channels``).

    The ``k`` interior vertices feeding the output share ``c_out``: ``c_out // k`` each, the remainder
    one channel at a time to the lowest-numbered ones; every other interior vertex gets the largest
    width of its interior successors (so widths never grow along an edge). Input ``c_in``, output
    ``c_out``.
    """
    m = np.asarray(matrix)
    n = len(m)
    channels = [0] * n
    channels[0], channels[-1] = c_in, c_out
    if n == 2:
        return channels
    k = int(m[1: n - 1, n - 1].sum())
    base, extra = divmod(c_out, k)
    for v in range(1, n - 1):
        if m[v, n - 1]:
            channels[v] = base + (1 if extra > 0 else 0)
            extra -= 1
    for v in range(n - 3, 0, -1):
        if not m[v, n - 1]:
            channels[v] = max(channels[d] for d in range(v + 1, n - 1) if m[v, d])
    return channels


def conv_bn_relu(c_in: int, c_out: int, k: int) -> nn.Sequential:
    """NB101's Conv k×k (no bias, same padding) → BN → ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU())


class NB101Cell(nn.Module):
    """One cell of a pruned spec between widths ``c_in`` and ``c_out`` (module docstring)."""

    def __init__(self, matrix: Sequence[Sequence[int]], ops: Sequence[str], c_in: int, c_out: int):
        super().__init__()
        self.matrix = np.asarray(matrix, dtype=np.int64)
        n = len(self.matrix)
        self.channels = vertex_channels(c_in, c_out, self.matrix)
        self.ops = nn.ModuleDict()
        for v in range(1, n - 1):
            c = self.channels[v]
            if ops[v] == "maxpool3x3":
                self.ops[str(v)] = nn.MaxPool2d(3, stride=1, padding=1)
            else:
                self.ops[str(v)] = conv_bn_relu(c, c, 3 if ops[v] == "conv3x3-bn-relu" else 1)
        self.projections = nn.ModuleDict({str(v): conv_bn_relu(c_in, self.channels[v], 1)
                                          for v in range(1, n) if self.matrix[0, v]})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, n = self.matrix, len(self.matrix)
        states = [x]
        for v in range(1, n - 1):
            c = self.channels[v]
            total = self.projections[str(v)](x) if m[0, v] else 0
            for u in range(1, v):
                if m[u, v]:
                    total = total + states[u][:, :c]
            states.append(self.ops[str(v)](total))
        blocks = [states[u] for u in range(1, n - 1) if m[u, n - 1]]
        out = torch.cat(blocks, dim=1) if blocks else None
        if m[0, n - 1]:
            projected = self.projections[str(n - 1)](x)
            out = projected if out is None else out + projected
        return out


class NB101Network(nn.Module):
    """The NAS-Bench-101 network of one cell (see :func:`build_nb101`)."""

    def __init__(self, arch: ArchGraph, num_classes: int, stem_channels: int, num_stacks: int,
                 cells_per_stack: int, in_channels: int):
        super().__init__()
        self.arch = arch
        matrix, ops = arch.to_nb101()
        self.stem = conv_bn_relu(in_channels, stem_channels, 3)
        layers: list[nn.Module] = []
        c_in = c_out = stem_channels
        for stack in range(num_stacks):
            if stack:
                layers.append(nn.MaxPool2d(2, stride=2))
                c_out *= 2
            for _ in range(cells_per_stack):
                layers.append(NB101Cell(matrix, ops, c_in, c_out))
                c_in = c_out
        self.cells = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_out, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.cells(self.stem(x)).mean(dim=(2, 3)))


def is_nb101_cell(arch: ArchGraph) -> bool:
    """Whether ``arch`` is a NAS-Bench-101 cell in nasplug's layout (:mod:`nasplug.graph.nb101`)."""
    try:
        arch.to_nb101()
    except ArchError:
        return False
    return True


def build_nb101(arch: ArchGraph | str, num_classes: int = 10, *, stem_channels: int = 128,
                num_stacks: int = 3, cells_per_stack: int = 3, in_channels: int = 3,
                init: str = "he", seed: int | None = None) -> NB101Network:
    """The NAS-Bench-101 network for a cell (any encoding :meth:`ArchGraph.parse` reads).

    Parameters
    ----------
    num_classes, in_channels
        10 classes and RGB input, as the benchmark (CIFAR-10).
    stem_channels, num_stacks, cells_per_stack
        The benchmark's 128, 3 and 3; the defaults reproduce its parameter counts.
    init
        ``"he"`` (He-normal on every conv, ``Var = 2/fan_in``; the classifier ``1/fan_in``) or
        ``"torch"`` (PyTorch's defaults). BN follows every conv, so this changes training
        dynamics only mildly; the benchmark used TensorFlow's defaults.
    seed
        Seed of the init draws.

    Raises :class:`~nasplug.errors.ArchError` when ``arch`` is not an NB101 cell.
    """
    arch = ArchGraph.parse(arch)
    if init not in ("he", "torch"):
        raise ArchError(f"unknown init {init!r} for the NB101 network; use 'he' or 'torch'")
    net = NB101Network(arch, num_classes, stem_channels, num_stacks, cells_per_stack, in_channels)
    if init == "he":
        he_init_(net, net.classifier, seed)
    return net
