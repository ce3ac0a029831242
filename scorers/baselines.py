"""Baseline proxies for comparison: parameter count, FLOPs, NASWOT and synflow of the built network.

These are what the zero-cost-proxy literature compares against; unlike the topology scorers they need
the torch network, so they are slower (a per-architecture loop, well under a second per cell on CPU).
Importing this module imports torch; the registry imports it only when one of these names is used.
The measures themselves are in :mod:`nasplug.models.measures`.

Which network
-------------
* a 4-node cell using only NAS-Bench-201 ops → the NAS-Bench-201 macro network
  (:func:`nasplug.models.build_nb201`, 10 classes, He init), so ``num_params`` equals the
  benchmark's published counts; ``flops`` is counted at CIFAR's 3×32×32 over the convs that are
  evaluated (on an input→output path), whereas NB201's published FLOPs also count dead convs and so
  rank cells like #params (docs/nb201_ranking.md); NASWOT (32 seeded Gaussian images; its paper
  uses 128 real ones, which ranks NB201 slightly better) and synflow run at ImageNet16's 3×16×16 to
  stay under 2 s per cell on CPU;
* a NAS-Bench-101 cell → the NAS-Bench-101 network (:func:`nasplug.models.build_nb101`, the
  benchmark's configuration: its ``num_params`` equal the benchmark's ``trainable_parameters``);
* a DARTS genotype (pair DAG) → the DARTS network NAS-Bench-301 trained
  (:func:`nasplug.models.build_darts`, C = 32, 8 cells, affine BN in the ops, no auxiliary head);
  NASWOT and synflow of these two run at CIFAR's 3×32×32;
* anything else → the theory MLP-DAG (:func:`nasplug.models.build_mlp`, width 256, He init,
  64 inputs = the flattened 8×8 digits, 10 outputs); NASWOT uses the first 32 training digits.

``num_params`` and ``flops`` build the network on PyTorch's ``meta`` device (shapes only, no
weights), so counting the large NB101/DARTS networks costs milliseconds.

When scoring an :class:`~nasplug.graph.ArchBatch` (e.g. a whole space), ops are recovered from their
role and kernel size; a parameterized 1×1 edge is then ``nor_conv_1x1`` in 4-node cells that use
only NB201 roles and ``linear`` elsewhere. Pass :class:`~nasplug.graph.ArchGraph` objects to be exact.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

from nasplug.data import load_digits
from nasplug.graph import ArchBatch, ArchGraph
from nasplug.models import (
    build_darts,
    build_mlp,
    build_nb101,
    build_nb201,
    count_parameters,
    is_darts_genotype,
    is_nb101_cell,
    is_nb201_cell,
)
from nasplug.models.measures import count_flops, naswot_score, synflow_score
from nasplug.ops import AVGPOOL3X3, CONV1X1, CONV3X3, LINEAR, ROLE_CODES, SKIP, Op
from nasplug.scorers.base import Archs, BatchScorer
from nasplug.scorers.registry import register

MLP_IN, MLP_WIDTH, MLP_OUT = 64, 256, 10
NB201_INPUT = (3, 32, 32)  # CIFAR resolution: what num_params / flops describe
#: NASWOT and synflow inputs for NB201 cells: ImageNet16-120's resolution. The network is fully
#: convolutional up to global pooling, so this is the same network; it keeps a cell < 2 s on CPU.
NB201_PROXY_INPUT = (3, 16, 16)
PROXY_BATCH = 32  # NASWOT mini-batch (the paper uses 128 on CIFAR)
PROXY_SEED = 0


def arch_from_batch(batch: ArchBatch, b: int) -> ArchGraph:
    """Architecture ``b`` of a batch, with ops recovered from role and kernel size (see module doc)."""
    roles, kernels = batch.roles[b], batch.kernel_sizes[b]
    nb201_like = batch.n_nodes == 4
    edges: dict[tuple[int, int], Op] = {}
    for e, pair in enumerate(batch.pairs):
        role = int(roles[e])
        if role == ROLE_CODES["skip"]:
            edges[pair] = SKIP
        elif role == ROLE_CODES["pool"]:
            edges[pair] = AVGPOOL3X3
        elif role == ROLE_CODES["param"]:
            k = int(kernels[e])
            edges[pair] = CONV3X3 if k == 3 else (CONV1X1 if nb201_like else LINEAR)
    return ArchGraph(batch.n_nodes, edges)


def proxy_network(arch: ArchGraph, *, bn: bool = True, seed: int = PROXY_SEED, meta: bool = False):
    """The network a baseline proxy measures, and its input shape (see module doc). ``meta``: build
    on the ``meta`` device with PyTorch's init (for counting parameters and FLOPs)."""
    init = "torch" if meta else "he"
    with torch.device("meta" if meta else "cpu"):
        if is_nb201_cell(arch):
            return build_nb201(arch, 10, init=init, bn=bn, seed=seed), NB201_INPUT
        if is_nb101_cell(arch):
            return build_nb101(arch, 10, init=init, seed=seed), NB201_INPUT
        if is_darts_genotype(arch):
            return build_darts(arch, 10, init=init, seed=seed), NB201_INPUT
        return build_mlp(arch, MLP_IN, MLP_WIDTH, MLP_OUT, init="torch" if meta else "he", bn=False,
                         seed=seed), (MLP_IN,)


def proxy_inputs(shape: tuple[int, ...], n: int = PROXY_BATCH, seed: int = PROXY_SEED):
    """Deterministic proxy inputs: the first ``n`` digits (standardized) for the MLP, seeded
    Gaussian images for the NB201 network (no dataset download needed)."""
    if shape == (MLP_IN,):
        return _digits_inputs(n).clone()
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


@lru_cache(maxsize=4)
def _digits_inputs(n: int):
    # the 1,438-image training split the documented scores were measured on
    return load_digits(valid_fraction=0.0).x_train[:n].reshape(n, -1)


# ====================================================================== scorers
class NetworkProxy(BatchScorer):
    """A per-architecture proxy computed on :func:`proxy_network` (a Python loop: these need a
    torch forward pass per cell)."""

    def __init__(self, name: str, fn: Callable[[ArchGraph], float], description: str,
                 higher_is_better: bool = True):
        self.name, self.fn, self.description = name, fn, description
        self.higher_is_better = higher_is_better

    def score_many(self, archs: Archs) -> np.ndarray:
        if isinstance(archs, ArchBatch):
            return self.score_batch(archs)
        return np.array([self._one(ArchGraph.parse(a)) for a in archs], dtype=np.float64)

    def score_batch(self, batch: ArchBatch) -> np.ndarray:
        return np.array([self._one(arch_from_batch(batch, b)) for b in range(len(batch))], dtype=np.float64)

    def _one(self, arch: ArchGraph) -> float:
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
            return float(self.fn(arch))


def _num_params(arch: ArchGraph) -> float:
    return float(count_parameters(proxy_network(arch, meta=True)[0]))


def _flops(arch: ArchGraph) -> float:
    net, shape = proxy_network(arch, meta=True)
    return count_flops(net, shape) / 1e6


def _proxy_shape(arch: ArchGraph, shape: tuple[int, ...]) -> tuple[int, ...]:
    return NB201_PROXY_INPUT if is_nb201_cell(arch) else shape


def _naswot(arch: ArchGraph) -> float:
    net, shape = proxy_network(arch)
    return naswot_score(net, proxy_inputs(_proxy_shape(arch, shape)))


def _synflow(arch: ArchGraph) -> float:
    net, shape = proxy_network(arch, bn=False)
    return synflow_score(net, _proxy_shape(arch, shape))


@register("num_params", "scorer",
          "trainable parameters of the built network (NB201 macro net / MLP-DAG width 256)", slow=True)
def num_params() -> NetworkProxy:
    return NetworkProxy("num_params", _num_params, "number of parameters")


@register("flops", "scorer", "MFLOPs (multiply-accumulates of conv/linear) of the built network, one input",
          slow=True)
def flops() -> NetworkProxy:
    return NetworkProxy("flops", _flops, "MFLOPs")


@register("naswot", "scorer", "NASWOT (Mellor et al. 2021): log-det of the ReLU activation-pattern kernel",
          slow=True)
def naswot() -> NetworkProxy:
    return NetworkProxy("naswot", _naswot, "NASWOT log|K_H|")


@register("synflow", "scorer", "synflow (Tanaka et al. 2020): Σ θ·∂R/∂θ on |weights|, ones input, no BN",
          slow=True)
def synflow() -> NetworkProxy:
    return NetworkProxy("synflow", _synflow, "synflow")
