"""The DARTS / NAS-Bench-301 network (DARTS's ``NetworkCIFAR``) for a genotype.

Macro structure (Liu et al., *DARTS*, ICLR 2019; the network NAS-Bench-301 trained with ``C = 32``
and 8 cells): a 3×3 conv stem with ``3C`` channels and BN; ``layers`` cells, the ones at
``layers // 3`` and ``2 · layers // 3`` reduction cells (stride 2, channels doubled), every cell
reading the outputs of the two previous cells through its preprocessing (a factorized reduction of
the cell two back when the previous cell reduced, else a 1×1 ReLU-Conv-BN; a 1×1 ReLU-Conv-BN of the
previous cell) and emitting the concatenation of its 4 intermediate nodes (``4C`` channels); global
average pooling and a linear classifier.

Ops (DARTS ``operations.py``): ``sep_conv_k`` = two blocks [ReLU → depthwise k×k → 1×1 → BN], the
stride on the first; ``dil_conv_k`` = one such block with dilation 2; 3×3 max/average pooling
(padding 1, the average excluding padding); ``skip_connect`` = identity, or a factorized reduction
at stride 2. Edges from inputs 0 and 1 of a reduction cell have stride 2.

``affine`` sets whether the BNs *inside the cell ops* learn a scale and shift (DARTS's evaluation
networks, and so NAS-Bench-301's training: ``True``). NASLib's zero-cost benchmark files (May 2022,
the source of the shared sample's ``params_m``) counted its own DARTS graph with ``affine=False``
ops and no auxiliary head: ``build_darts(arch, affine=False)`` reproduces those counts exactly.
The differences are in docs/nasbench.md. DARTS's auxiliary head and drop-path are training tricks
of the benchmark that this builder leaves out.
"""

from __future__ import annotations

import torch
from torch import nn

from nasplug.errors import ArchError
from nasplug.graph import ArchGraph
from nasplug.graph.darts import Genotype
from nasplug.models.init import he_init_


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


class DilConv(nn.Sequential):
    """ReLU → depthwise k×k (dilation) → 1×1 → BN."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, dilation: int, affine: bool):
        padding = dilation * (k - 1) // 2
        super().__init__(nn.ReLU(),
                         nn.Conv2d(c_in, c_in, k, stride, padding, dilation, groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out, affine=affine))


class FactorizedReduce(nn.Module):
    """ReLU → two 1×1 stride-2 convs, the second on the input shifted by one pixel → concat → BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def make_op(name: str, c: int, stride: int, affine: bool) -> nn.Module:
    """The module of one DARTS op at width ``c`` and ``stride``."""
    if name.startswith("sep_conv"):
        k = int(name[-1])
        return nn.Sequential(DilConv(c, c, k, stride, 1, affine), DilConv(c, c, k, 1, 1, affine))
    if name.startswith("dil_conv"):
        return DilConv(c, c, int(name[-1]), stride, 2, affine)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine)
    raise ArchError(f"unknown DARTS op {name!r}")


class DartsCell(nn.Module):
    def __init__(self, pairs, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool,
                 affine: bool):
        super().__init__()
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c)
        self.preprocess1 = ReLUConvBN(c_p, c)
        self.inputs = [inp for _, inp in pairs]
        self.ops = nn.ModuleList(make_op(op, c, 2 if reduction and inp < 2 else 1, affine)
                                 for op, inp in pairs)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(4):
            a, b = 2 * node, 2 * node + 1
            states.append(self.ops[a](states[self.inputs[a]]) + self.ops[b](states[self.inputs[b]]))
        return torch.cat(states[2:], dim=1)


class DartsNetwork(nn.Module):
    """DARTS's ``NetworkCIFAR`` for a genotype (see :func:`build_darts`)."""

    def __init__(self, arch: ArchGraph, geno: Genotype, C: int, num_classes: int, layers: int,
                 in_channels: int, affine: bool):
        super().__init__()
        self.arch = arch
        c_stem = 3 * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_stem))
        c_pp, c_p, c = c_stem, c_stem, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c *= 2
            pairs = geno.reduce if reduction else geno.normal
            self.cells.append(DartsCell(pairs, c_pp, c_p, c, reduction, reduction_prev, affine))
            reduction_prev = reduction
            c_pp, c_p = c_p, 4 * c
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(s1.mean(dim=(2, 3)))


def is_darts_genotype(arch: ArchGraph) -> bool:
    """Whether ``arch`` is a DARTS genotype (pair DAG) in nasplug's layout (:mod:`nasplug.graph.darts`)."""
    try:
        return isinstance(arch.to_darts(), Genotype)
    except ArchError:
        return False


def build_darts(arch: ArchGraph | str, num_classes: int = 10, *, C: int = 32, layers: int = 8,
                in_channels: int = 3, affine: bool = True, init: str = "he",
                seed: int | None = None) -> DartsNetwork:
    """The DARTS / NAS-Bench-301 network of a genotype (the pair DAG of
    :meth:`~nasplug.ArchGraph.from_darts`, or any genotype form :meth:`ArchGraph.parse` reads).

    Parameters
    ----------
    C, layers
        Initial channels and number of cells: NAS-Bench-301's 32 and 8 (DARTS's CIFAR evaluation
        uses 36 and 20).
    affine
        BN scale/shift inside the cell ops (module docstring); ``False`` reproduces NASLib's
        ``params_m`` of the shared NB301 sample.
    init
        ``"he"`` (He-normal convs, ``Var = 2/fan_in``; classifier ``1/fan_in``) or ``"torch"``.
    seed
        Seed of the init draws.

    Raises :class:`~nasplug.errors.ArchError` when ``arch`` is not a DARTS genotype.
    """
    arch = ArchGraph.parse(arch)
    geno = arch.to_darts()
    if not isinstance(geno, Genotype):
        raise ArchError("the DARTS network needs a genotype (normal and reduction cell), not one cell")
    if init not in ("he", "torch"):
        raise ArchError(f"unknown init {init!r} for the DARTS network; use 'he' or 'torch'")
    net = DartsNetwork(arch, geno, C, num_classes, layers, in_channels, affine)
    if init == "he":
        he_init_(net, net.classifier, seed)
    return net
