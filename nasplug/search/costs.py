"""What a cell costs to run: parameters and FLOPs in closed form, latency measured.

A multi-objective search trades accuracy against the cost of the network the search actually
builds (:class:`Network`: the MLP-DAG, CNN-DAG or NAS-Bench-201 macro network of
:mod:`nasplug.models`, at the dataset's input shape and number of classes). Parameters and FLOPs
are exact sums over the cell's **live** edges (on an input→output path): a dead edge cannot change
the output and is never evaluated, so it costs nothing at inference (NAS-Bench-201's network
instantiates dead convolutions anyway — its published parameter counts include them; ours do not).

Each builder is a fixed stem and head around one cell (NB201: three stages of ``N`` cells joined by
reduction blocks), so a cost is ``base + Σ_live edges w(op)`` with per-op weights derived below from
the builders' layers; no torch network is built, and a whole space costs one vectorized product
(:meth:`Network.space_costs`: 15,625 NB201 cells in milliseconds). ``tests/test_costs.py`` checks
every formula against the built networks (``count_parameters``, and FLOPs counted by forward hooks).

FLOPs follow NAS-Bench-201's convention (:func:`nasplug.models.measures.count_flops`):
multiply-accumulates of the convolutions and linear layers for **one** input sample; BN, pooling,
ReLU and sums are free.

Latency (:class:`LatencyMeter`) cannot be derived: it is the median wall time of a forward pass of
the built network on a device, after warm-up runs, cached per network.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasplug.errors import ArchError, NasplugError
from nasplug.graph import ArchGraph
from nasplug.graph.paths import live_edge_mask
from nasplug.nasbench.table import canonical_dataset
from nasplug.ops import NB201_OPS, Op
from nasplug.search_spaces import ProductSpace

MODELS = ("mlp", "cnn", "nb201")
#: Hidden width (MLP), channels (CNN) and stem channels C (NB201) when none is given — what
#: :func:`nasplug.train.build_model` trains.
DEFAULT_WIDTH = {"mlp": 256, "cnn": 32, "nb201": 16}
#: One sample's input shape and the number of classes of every dataset a search trains on or looks up.
DATASETS: dict[str, tuple[tuple[int, ...], int]] = {
    "digits": ((1, 8, 8), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar10-valid": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "imagenet16-120": ((3, 16, 16), 120),
}
#: Cells per stage of the NB201 macro network (the benchmark's N).
NB201_CELLS = 5


def dataset_shape(name: str) -> tuple[tuple[int, ...], int]:
    """``(input shape of one sample, number of classes)`` of a dataset (any alias the trainer or the
    NAS-Bench-201 loader accepts: ``c10``, ``cifar-100``, ``in16``, ``ImageNet16-120``, ...)."""
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        try:
            key = canonical_dataset(name).lower()
        except NasplugError:
            raise NasplugError(f"unknown dataset {name!r} for costs; known: {', '.join(DATASETS)}") from None
    return DATASETS[key]


@dataclass(frozen=True)
class Network:
    """The network whose costs a cell is charged: ``model`` around the cell, for inputs of
    ``input_shape`` (one sample, e.g. ``(3, 32, 32)``) and ``num_classes`` outputs.

    Built exactly as :func:`nasplug.train.build_model` builds it: ``mlp`` = ``build_mlp`` (biases,
    no BN), ``cnn`` = ``build_cnn`` (BN, no conv biases, ``linear`` edges as 3×3 convs), ``nb201`` =
    ``build_nb201`` (``N = 5`` cells per stage, channels ``C, 2C, 4C``). ``width`` is the MLP
    width / CNN channels / NB201 ``C`` (default :data:`DEFAULT_WIDTH`).

    Raises :class:`~nasplug.errors.NasplugError` for an unknown model, or image models on
    non-image inputs (NB201 also needs sides divisible by 4: two stride-2 reductions).
    """

    model: str
    input_shape: tuple[int, ...]
    num_classes: int
    width: int | None = None

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise NasplugError(f"unknown model {self.model!r}; use one of {', '.join(MODELS)}")
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        object.__setattr__(self, "width", int(self.width or DEFAULT_WIDTH[self.model]))
        if self.model != "mlp" and len(self.input_shape) != 3:
            raise NasplugError(f"model {self.model!r} needs image inputs (C, H, W), got {self.input_shape}")
        if self.model == "nb201" and any(s % 4 for s in self.input_shape[1:]):
            raise NasplugError(f"the NB201 network halves the input twice: sides must be divisible "
                               f"by 4, got {self.input_shape[1:]}")

    @classmethod
    def for_dataset(cls, model: str, dataset: str, width: int | None = None) -> Network:
        """The network ``model`` trained on (or looked up for) ``dataset``."""
        shape, classes = dataset_shape(dataset)
        return cls(model, shape, classes, width)

    # ------------------------------------------------------------------ closed forms
    def _stages(self) -> list[tuple[int, int]]:
        """NB201: ``(channels, pixels)`` of the three stages (``C, 2C, 4C``; each reduction halves
        both sides)."""
        c, (_, h, w) = self.width, self.input_shape
        return [(c * 2**s, (h >> s) * (w >> s)) for s in range(3)]

    def op_cost(self, op: Op) -> tuple[int, int]:
        """``(parameters, FLOPs)`` one **live** edge with ``op`` adds to the network (0 for skip,
        pooling and zero edges)."""
        if not op.is_parameterized:
            return 0, 0
        n = self.width
        if self.model == "mlp":  # ReLU → Linear(n, n) with bias
            return n * n + n, n * n
        if self.model == "cnn":  # ReLU → Conv(n, n, k, no bias) → BN(n); linear edges use k = 3
            k2 = (3 if op.name == "linear" else op.kernel_size) ** 2
            pixels = self.input_shape[1] * self.input_shape[2]
            return n * n * k2 + 2 * n, pixels * n * n * k2
        if op not in NB201_OPS:
            raise ArchError(f"op {op.name!r} is not a NAS-Bench-201 op: the nb201 network cannot take it")
        k2 = op.kernel_size**2  # nb201: ReLUConvBN in N cells of each stage
        params = sum(NB201_CELLS * (c * c * k2 + 2 * c) for c, _ in self._stages())
        flops = sum(NB201_CELLS * pixels * c * c * k2 for c, pixels in self._stages())
        return params, flops

    def base_cost(self) -> tuple[int, int]:
        """``(parameters, FLOPs)`` of everything but the cell's edges (stem, reductions, head)."""
        n, out = self.width, self.num_classes
        if self.model == "mlp":  # Linear(in, n) stem, Linear(n, out) readout
            d = int(np.prod(self.input_shape))
            return d * n + n + n * out + out, d * n + n * out
        c_in, h, w = self.input_shape
        if self.model == "cnn":  # Conv3x3 + BN stem; BN, ReLU, pooling, Linear head
            return 9 * c_in * n + 2 * n + 2 * n + n * out + out, h * w * 9 * c_in * n + n * out
        stages = self._stages()
        params = 9 * c_in * n + 2 * n  # stem conv + BN
        flops = h * w * 9 * c_in * n
        for (c0, _), (c1, pixels) in zip(stages, stages[1:]):  # ResNet basic block, stride 2
            params += 9 * c0 * c1 + 2 * c1 + 9 * c1 * c1 + 2 * c1 + c0 * c1
            flops += pixels * (9 * c0 * c1 + 9 * c1 * c1 + c0 * c1)
        c_last = stages[-1][0]
        params += 2 * c_last + c_last * out + out  # last BN, classifier
        flops += c_last * out
        return params, flops

    def costs(self, arch: ArchGraph | str) -> tuple[int, int]:
        """``(parameters, FLOPs)`` of the network built around ``arch`` (live edges only)."""
        arch = ArchGraph.parse(arch)
        params, flops = self.base_cost()
        for op in arch.live_edges().values():
            p, f = self.op_cost(op)
            params, flops = params + p, flops + f
        return params, flops

    def space_costs(self, space: ProductSpace, digits: np.ndarray | None = None) -> np.ndarray:
        """``(B, 2)`` int64 ``(parameters, FLOPs)`` of cells of ``space`` given as a ``(B, E)``
        digit matrix (default: the whole, enumerable, space in index order) — one vectorized sum."""
        if digits is None:
            digits = space.digit_matrix(np.arange(space.size))
        digits = np.asarray(digits, dtype=np.int64)
        live = live_edge_mask(space.batch_digits(digits))
        weights = np.array([self.op_cost(op) for op in space.ops], dtype=np.int64)  # (K, 2)
        return np.asarray(self.base_cost(), dtype=np.int64) + np.einsum(
            "be,bec->bc", live.astype(np.int64), weights[digits])

    # ------------------------------------------------------------------ torch
    def build(self, arch: ArchGraph | str) -> Any:
        """The torch network (He init: latency does not depend on the weights)."""
        from nasplug.models import build_cnn, build_mlp, build_nb201

        arch = ArchGraph.parse(arch)
        if self.model == "mlp":
            return build_mlp(arch, int(np.prod(self.input_shape)), self.width, self.num_classes, init="he")
        if self.model == "cnn":
            return build_cnn(arch, self.input_shape[0], self.width, self.num_classes, init="he")
        return build_nb201(arch, self.num_classes, C=self.width, N=NB201_CELLS,
                           in_channels=self.input_shape[0], init="he")


def live_cell(arch: ArchGraph | str) -> ArchGraph:
    """The cell with its dead edges removed: what a forward pass evaluates."""
    arch = ArchGraph.parse(arch)
    return ArchGraph(arch.n_nodes, arch.live_edges())


class LatencyMeter:
    """Median latency (ms) of a forward pass of ``network`` around a cell, on ``device``.

    Per cell: build the network (dead edges removed), move it to the device in eval mode, run
    ``warmup`` forward passes of a ``(batch_size, *input_shape)`` input (allocator, cuDNN autotune,
    caches), then time ``repeats`` passes one by one (synchronizing CUDA) and return the median.
    Results are cached per network — the cell's live edges — because cells with one canonical key
    can build different networks (``2·conv(x)`` through two skips has one convolution,
    ``conv(x) + conv'(x)`` two).

    On a CPU the figure depends on torch's thread count and on the machine's load: measure on the
    device the network will run on, on an otherwise idle machine.
    """

    def __init__(self, network: Network, device: str = "auto", *, batch_size: int = 1, warmup: int = 10,
                 repeats: int = 30, timer: Callable[[], float] = time.perf_counter):
        for name, value in (("batch_size", batch_size), ("repeats", repeats)):
            if int(value) < 1:
                raise NasplugError(f"latency {name} must be at least 1, got {value}")
        if int(warmup) < 0:
            raise NasplugError(f"latency warmup must be at least 0, got {warmup}")
        self.network, self.device = network, device
        self.batch_size, self.warmup, self.repeats = int(batch_size), int(warmup), int(repeats)
        self.timer = timer
        self._cache: dict[str, float] = {}

    def __call__(self, arch: ArchGraph | str) -> float:
        cell = live_cell(arch)
        key = str(cell)
        if key not in self._cache:
            self._cache[key] = self._measure(cell)
        return self._cache[key]

    def record(self, arch: ArchGraph | str, ms: float) -> None:
        """Take the latency of ``arch``'s network as measured elsewhere (e.g. by a Ray trial on its
        own device): a later call for that network returns it instead of measuring here."""
        self._cache[str(live_cell(arch))] = float(ms)

    def __len__(self) -> int:
        return len(self._cache)

    def _measure(self, cell: ArchGraph) -> float:
        import torch

        from nasplug.train import resolve_device

        device = resolve_device(self.device)
        net = self.network.build(cell).to(device).eval()
        x = torch.randn((self.batch_size, *self.network.input_shape), device=device)

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        times: list[float] = []
        with torch.inference_mode():
            for _ in range(self.warmup):
                net(x)
            sync()
            for _ in range(self.repeats):
                start = self.timer()
                net(x)
                sync()
                times.append(self.timer() - start)
        return 1000.0 * statistics.median(times)

