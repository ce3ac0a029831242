"""Torch builders: the theory MLP-DAG, a CNN-DAG and the NAS-Bench-201 macro network.

All three put a :class:`~nasplug.models.dag.DAGCell` between a stem and a head and differ only in the
edge factory. The principled init [C24] is applied at build time (``init="arch_aware"``).

* :func:`build_mlp` — docs/theory.md §1's *theory network*: random linear stem → DAG (param edge = ReLU →
  Linear, skip and pooling = identity, node = sum) → ReLU → readout. Pooling is the identity because
  the MLP abstraction of [C22]/[C24] treats it as a weight-free linear map.
* :func:`build_cnn` — the same DAG with ReLU → Conv k×k (→ BN) edges and 3×3 stride-1 average
  pooling, a conv stem, global average pooling and a classifier.
* :func:`build_nb201` — NAS-Bench-201's macro network (Dong & Yang, ICLR 2020): conv 3×3 stem (C=16) +
  BN, three stages of N=5 cells with C = 16/32/64 joined by ResNet basic blocks (stride 2), BN-ReLU,
  global average pooling, classifier. Parameter counts equal the benchmark's (tests/test_models.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nasplug import checks
from nasplug.errors import ArchError
from nasplug.graph import ArchGraph
from nasplug.models.dag import DAGCell
from nasplug.models.init import (
    check_init,
    init_layer_,
    make_generator,
    readout_numerator,
)
from nasplug.ops import NB201_OPS, Op


class DAGNet(nn.Module):
    """``head(cell(stem(x)))`` with the cell exposed for measurements and the init rules."""

    def __init__(self, stem: nn.Module, cell: nn.Module, head: nn.Module, arch: ArchGraph):
        super().__init__()
        self.stem, self.cell, self.head = stem, cell, head
        self.arch = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cell(self.stem(x)))


def _bn_or_identity(bn: bool, dim: int, features: int) -> nn.Module:
    if not bn:
        return nn.Identity()
    return nn.BatchNorm1d(features) if dim == 1 else nn.BatchNorm2d(features)


def init_network_(arch: ArchGraph, init: str, seed: int | None, *, stem: nn.Module,
                  body: Sequence[DAGCell | tuple[nn.Module, float]], readout: nn.Module, width: int) -> None:
    """Apply an init mode to a built network, drawing from one generator in a fixed order: the
    stem (gain 1: it sees raw inputs), then each DAG cell's edges [C24 eq. 4] or ``(layer, gain)``
    of the other layers in ``body``, then the readout (μP ``readout_gain / n²`` under the
    architecture-aware modes, He ``2 / n`` otherwise). ``init="torch"`` keeps PyTorch's init."""
    if init == "torch":
        return
    gen = make_generator(seed)
    init_layer_(stem, 1.0, generator=gen)
    for part in body:
        if isinstance(part, DAGCell):
            part.init_(init, gen)
        else:
            init_layer_(part[0], part[1], generator=gen)
    num, div = readout_numerator(arch, init, width)
    init_layer_(readout, num, divisor=div, generator=gen)


# ====================================================================== MLP-DAG
def build_mlp(arch: ArchGraph | str, in_dim: int, width: int, out_dim: int, *,
              init: str = "arch_aware", bias: bool = True, bn: bool = False,
              seed: int | None = None) -> DAGNet:
    """The theory network of docs/theory.md §1 for an architecture.

    Parameters
    ----------
    arch
        Any architecture; parameterized ops (linear, convs) become ReLU → Linear, skip and
        pooling become the identity (the MLP abstraction of [C22, C24]).
    in_dim, width, out_dim
        Input features (inputs with more dimensions are flattened), hidden width ``n``, outputs.
    init
        ``"arch_aware"`` (default, ``Var W_st = 2 / (d_in(t) · n)`` [C24]), ``"arch_aware_source"``
        (the authors' code: ``d_in`` of the source node), ``"he"`` or ``"torch"`` (PyTorch default).
    bias, bn
        Biases on every linear layer (initialized to zero) and BatchNorm after each edge's linear
        layer. ``bias=False, bn=False`` is exactly the theory network.
    seed
        Seed of the init draws (None: torch's global generator).
    """
    arch = ArchGraph.parse(arch)
    check_init(init)
    in_dim, width, out_dim = (checks.integer(n, v, 1) for n, v in
                              (("in_dim", in_dim), ("width", width), ("out_dim", out_dim)))

    def make_edge(edge: tuple[int, int], op: Op) -> nn.Module:
        if not op.is_parameterized:
            return nn.Identity()
        return nn.Sequential(nn.ReLU(), nn.Linear(width, width, bias=bias), _bn_or_identity(bn, 1, width))

    stem = nn.Sequential(nn.Flatten(), nn.Linear(in_dim, width, bias=bias))
    head = nn.Sequential(nn.ReLU(), nn.Linear(width, out_dim, bias=bias))
    net = DAGNet(stem, DAGCell(arch, make_edge), head, arch)
    # the stem sees raw inputs (gain 1: Var = 1 / d, so K⁰ = x·x' / d)
    init_network_(arch, init, seed, stem=stem[1], body=[net.cell], readout=head[1], width=width)
    return net


# ====================================================================== CNN-DAG
def build_cnn(arch: ArchGraph | str, in_channels: int, channels: int, num_classes: int, *,
              init: str = "arch_aware", kernel_size: int = 3, bn: bool = True, bias: bool = False,
              seed: int | None = None) -> DAGNet:
    """A CNN whose body is the DAG: conv 3×3 stem (→ BN) → DAG → (BN →) ReLU → global average
    pooling → linear classifier.

    Edges: parameterized = ReLU → Conv k×k (stride 1, same padding) → BN, with ``k`` the op's kernel
    size for conv ops and ``kernel_size`` for ``linear`` ops (DAG codes); pooling = 3×3 stride-1
    average pooling (``count_include_pad=False``), or max pooling for max-pool ops; skip and concat
    blocks = identity (a concat node stacks channel blocks, :class:`~nasplug.models.dag.DAGCell`).
    The spatial size never changes inside the DAG, so nodes can be summed. Init modes as in
    :func:`build_mlp`, with ``fan_in = channels · k · k``.
    """
    arch = ArchGraph.parse(arch)
    check_init(init)
    in_channels, channels, num_classes = (checks.integer(n, v, 1) for n, v in (
        ("in_channels", in_channels), ("channels", channels), ("num_classes", num_classes)))
    if checks.integer("kernel_size", kernel_size, 1) % 2 == 0:
        raise ArchError(f"kernel_size must be odd (same padding keeps the size), got {kernel_size}")

    def make_edge(edge: tuple[int, int], op: Op) -> nn.Module:
        if op.role == "pool":
            return pooling(op)
        if not op.is_parameterized:
            return nn.Identity()
        k = kernel_size if op.name == "linear" else op.kernel_size
        return nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, k, padding=k // 2, bias=bias),
            _bn_or_identity(bn, 2, channels),
        )

    stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=bias),
                         _bn_or_identity(bn, 2, channels))
    head = nn.Sequential(_bn_or_identity(bn, 2, channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(channels, num_classes))
    net = DAGNet(stem, DAGCell(arch, make_edge), head, arch)
    init_network_(arch, init, seed, stem=stem[0], body=[net.cell], readout=head[-1], width=channels)
    return net


def pooling(op: Op) -> nn.Module:
    """3×3 stride-1 pooling of a pool op: max pooling for ``max_pool_3x3``, else average pooling
    without the padding (NAS-Bench-201, DARTS)."""
    if op.name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


# ====================================================================== NAS-Bench-201
def _relu_conv_bn(c_in: int, c_out: int, k: int, stride: int, bn: bool) -> nn.Sequential:
    """NB201's ReLUConvBN: ReLU → Conv (no bias) → BN(affine, running stats)."""
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
        _bn_or_identity(bn, 2, c_out),
    )


class ResNetBasicBlock(nn.Module):
    """NB201's reduction block: ReLUConvBN(3×3, stride 2) → ReLUConvBN(3×3), plus the shortcut
    AvgPool(2) → Conv 1×1 (no bias, no BN)."""

    def __init__(self, c_in: int, c_out: int, bn: bool = True):
        super().__init__()
        self.conv_a = _relu_conv_bn(c_in, c_out, 3, 2, bn)
        self.conv_b = _relu_conv_bn(c_out, c_out, 3, 1, bn)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


class NB201Network(nn.Module):
    """NAS-Bench-201's macro network for one cell (see :func:`build_nb201`)."""

    def __init__(self, arch: ArchGraph, num_classes: int, C: int, N: int, in_channels: int, bn: bool):
        super().__init__()
        self.arch = arch
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False),
                                  _bn_or_identity(bn, 2, C))
        layers: list[nn.Module] = []
        c_prev = C
        for stage, c in enumerate((C, 2 * C, 4 * C)):
            if stage:
                layers.append(ResNetBasicBlock(c_prev, c, bn))
            for _ in range(N):
                layers.append(DAGCell(arch, self._edge_factory(c, bn), keep_dead=True))
            c_prev = c
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(_bn_or_identity(bn, 2, c_prev), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    @staticmethod
    def _edge_factory(c: int, bn: bool):
        def make_edge(edge: tuple[int, int], op: Op) -> nn.Module:
            if op.role == "pool":
                return pooling(op)
            if op.role == "skip":
                return nn.Identity()
            return _relu_conv_bn(c, c, op.kernel_size, 1, bn)

        return make_edge

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.pool(x).flatten(1))


def is_nb201_cell(arch: ArchGraph) -> bool:
    """A 4-node cell using only NAS-Bench-201's ops."""
    return arch.n_nodes == 4 and all(op in NB201_OPS for op in arch.edges.values())


def build_nb201(arch: ArchGraph | str, num_classes: int = 10, *, C: int = 16, N: int = 5,
                in_channels: int = 3, init: str = "arch_aware", bn: bool = True,
                seed: int | None = None) -> NB201Network:
    """The NAS-Bench-201 macro network for a cell.

    Parameters
    ----------
    arch
        A cell with NB201 ops (``none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3``); any
        number of nodes is accepted, the benchmark's cells have 4.
    num_classes
        10 (CIFAR-10), 100 (CIFAR-100) or 120 (ImageNet16-120).
    C, N
        Stem channels and cells per stage (the benchmark: 16 and 5).
    init
        Init of the cells' conv edges as in :func:`build_mlp` (``fan_in = C · k · k``); stem and
        reduction convs get He init (gain 1 for the stem and the shortcut, which see no ReLU), the
        classifier the μP readout of [C24] under arch-aware modes. BN follows every conv, so the
        init mostly changes the effective learning rate of each edge, not the forward pass.
    bn
        ``False`` replaces every BatchNorm by the identity (what synflow needs); the parameter count
        then no longer matches the benchmark.

    Every non-zero edge is instantiated, dead ones included, as in the benchmark; dead edges are
    not evaluated (their input is identically zero).
    """
    arch = ArchGraph.parse(arch)
    check_init(init)
    num_classes, C, N, in_channels = (checks.integer(n, v, 1) for n, v in (
        ("num_classes", num_classes), ("C", C), ("N", N), ("in_channels", in_channels)))
    for op in arch.edges.values():
        if op not in NB201_OPS:
            raise ArchError(f"op {op.name!r} is not a NAS-Bench-201 op (use build_cnn for general DAGs)")
    net = NB201Network(arch, num_classes, C, N, in_channels, bn)
    body: list[DAGCell | tuple[nn.Module, float]] = []
    for layer in net.cells:
        if isinstance(layer, DAGCell):
            body.append(layer)
        else:  # reduction block: He behind a ReLU, gain 1 for the shortcut that sees none
            body += [(layer.conv_a[1], 2.0), (layer.conv_b[1], 2.0), (layer.shortcut[1], 1.0)]
    init_network_(arch, init, seed, stem=net.stem[0], body=body, readout=net.classifier,
                  width=net.classifier.in_features)
    return net


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (what NAS-Bench-201 reports, BN affine included)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
