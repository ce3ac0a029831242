"""Architecture-aware hyper-parameters [C24]: per-edge initialization and the maximal learning rate.

[C24] W. Chen, J. Wu, Z. Wang, B. Hanin. *Principled Architecture-aware Scaling of
Hyper-parameters.* ICLR 2024, arXiv:2402.17440.

**Initialization** (eq. 4, App. A). A node sums its incoming edges, so with He init its
pre-activation variance grows with its in-degree. Dividing each parameterized edge's variance by
the in-degree keeps ``E‖z_t‖²/n`` flat along the DAG::

    Var W_st = gain_st / fan_in,     gain_st = 2 / d_in(t)

The appendix derivation sums over the in-edges of the *target* node ``t`` (our default,
``rule="target"``); the main text's superscript and the authors' code use the *source* node
(``rule="source"``). ``d_in`` counts the non-zero in-edges whose source is reachable from the
input: an edge from a dead node carries no signal and must not dilute the live ones. Skip edges
have no weights, so with skips the norm is preserved only approximately.

**Maximal learning rate** (eq. 8–9). ``η* ∝ (Σ_p L_p³)^(-1/2)`` for MLPs and additionally ``∝ 1/q``
for CNNs with kernel size ``q``, where ``L_p`` is the depth of path ``p``. We write
``L_p = d_p + offset`` (``d_p`` = parameterized edges on the path) and scale a base learning rate
tuned on a base network::

    η = η_base · sqrt(Σ_b L_b³ / Σ_p L_p³) · (q_base / q)

The depth convention is the paper's open choice: the authors' code counts ``d_p + 3`` for MLPs
against a base of depth 3 (stem + hidden + readout), which is our default. For a cell with mixed
kernel sizes ``q`` is the largest kernel of a live parameterized edge (the most sensitive layer
bounds the stable step). Cells without an input→output path have no learning rate: scalar calls
raise :class:`~nasplug.errors.ArchError`, batched calls give NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nasplug.errors import ArchError
from nasplug.graph import ArchBatch, ArchGraph, depth_histograms
from nasplug.ops import ROLE_CODES
from scorers.base import BatchScorer, register

#: The authors' code convention: L_p = (#param edges on p) + 3, base network of depth 3.
DEFAULT_OFFSET = 3
DEFAULT_BASE_DEPTHS: tuple[int, ...] = (3,)

INIT_RULES = ("target", "source")


def live_in_degrees(arch: ArchGraph) -> list[int]:
    """Per node, the number of non-zero in-edges whose source is reachable from the input."""
    reachable = [True] + [False] * (arch.n_nodes - 1)
    degree = [0] * arch.n_nodes
    for (s, t), _ in sorted(arch.edges.items()):  # sorted by source: s is final before its out-edges
        if reachable[s]:
            reachable[t] = True
            degree[t] += 1
    return degree


def init_gains(arch: ArchGraph | str, rule: str = "target") -> dict[tuple[int, int], float]:
    """``gain_st`` of every parameterized edge, so that ``Var W_st = gain_st / fan_in``.

    ``rule="target"`` divides He's gain 2 by the in-degree of the edge's target node [C24 App. A];
    ``rule="source"`` by that of its source node, as the authors' code does (the input node counts
    as in-degree 1). ``rule="he"`` gives plain He init (gain 2) for comparison.
    """
    arch = ArchGraph.parse(arch)
    if rule not in (*INIT_RULES, "he"):
        raise ArchError(f"unknown init rule {rule!r}; use 'target', 'source' or 'he'")
    degree = live_in_degrees(arch)
    gains = {}
    for (s, t), op in arch.edges.items():
        if not op.is_parameterized:
            continue
        d_in = {"target": degree[t], "source": max(degree[s], 1), "he": 1}[rule]
        gains[(s, t)] = 2.0 / max(d_in, 1)
    return gains


def readout_gain(arch: ArchGraph | str) -> float:
    """μP-style readout variance numerator [C24]: ``Var W_out = readout_gain / n²`` with
    ``readout_gain = 2 / d_in(H)``, so the output stays O(1/√n) at initialization."""
    arch = ArchGraph.parse(arch)
    return 2.0 / max(live_in_degrees(arch)[arch.output], 1)


def _path_cube_sums(batch: ArchBatch, offset: float) -> np.ndarray:
    hist = depth_histograms(batch)
    depths = np.arange(hist.shape[1], dtype=np.float64) + offset
    return hist @ depths**3


def _max_kernel(batch: ArchBatch) -> np.ndarray:
    """Largest kernel size over parameterized edges (1 when there is none)."""
    param = batch.roles == ROLE_CODES["param"]
    return np.where(param, batch.kernel_sizes, 1).max(axis=1).astype(np.float64)


def lr_multipliers(batch: ArchBatch, offset: float = DEFAULT_OFFSET,
                   base_depths: Sequence[float] = DEFAULT_BASE_DEPTHS,
                   kernel_scaling: bool = False, base_kernel: int = 1) -> np.ndarray:
    """Batched ``η / η_base = sqrt(Σ_b L_b³ / Σ_p L_p³)`` (× ``base_kernel / q`` with
    ``kernel_scaling``); NaN for cells without an input→output path.

    ``base_depths`` are the path depths ``L_b`` of the base network, already including the offset.
    """
    if offset < 0:
        raise ArchError(f"the depth offset must be >= 0, got {offset}")
    base = float(np.sum(np.asarray(base_depths, dtype=np.float64) ** 3))
    if base <= 0:
        raise ArchError("the base network needs a path of positive depth")
    cubes = _path_cube_sums(batch, offset)
    num_paths = depth_histograms(batch).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mult = np.where((num_paths > 0) & (cubes > 0), np.sqrt(base / cubes), np.nan)
    if kernel_scaling:
        mult = mult * base_kernel / _max_kernel(batch)
    return mult


def lr_multiplier(arch: ArchGraph | str, offset: float = DEFAULT_OFFSET,
                  base: ArchGraph | str | Sequence[float] = DEFAULT_BASE_DEPTHS,
                  kernel_scaling: bool = False, base_kernel: int = 1) -> float:
    """``η / η_base`` for one architecture [C24 eq. 8–9].

    ``base`` is either the base network as an architecture (its path depths get the same
    ``offset``) or the base path depths ``L_b`` themselves. Raises :class:`ArchError` with the
    reason when the architecture has no input→output path.
    """
    arch = ArchGraph.parse(arch)
    if isinstance(base, (str, ArchGraph)):
        stats = ArchGraph.parse(base).path_stats()
        if not stats.num_paths:
            raise ArchError(f"the base network {base} has no input→output path")
        base = [d + offset for d, count in enumerate(stats.depth_histogram) for _ in range(count)]
    value = lr_multipliers(ArchBatch.from_archs([arch]), offset, base, kernel_scaling, base_kernel)[0]
    if not np.isfinite(value):
        raise ArchError(
            f"{arch} has no input→output path with positive depth: it computes a constant, "
            "so it has no learning rate (reject it before training)"
        )
    return float(value)


class LRMultiplierScorer(BatchScorer):
    """The maximal-LR multiplier as a scorer (a hyper-parameter, not a quality proxy)."""

    higher_is_better = True

    def __init__(self, offset: float = DEFAULT_OFFSET, kernel_scaling: bool = False):
        self.offset, self.kernel_scaling = offset, kernel_scaling
        self.name = "max_lr_multiplier_cnn" if kernel_scaling else "max_lr_multiplier"
        self.description = f"η*/η_base, depth = #param edges + {offset} [C24]"

    def score_batch(self, batch: ArchBatch) -> np.ndarray:
        return lr_multipliers(batch, self.offset, kernel_scaling=self.kernel_scaling)


@register("max_lr_multiplier", "scorer",
          "[C24 eq. 8] η*/η_base = sqrt(Σ_b L_b³ / Σ_p L_p³), L = #param edges + 3 (MLP)")
def max_lr_multiplier(offset: float = DEFAULT_OFFSET) -> LRMultiplierScorer:
    return LRMultiplierScorer(offset)


@register("max_lr_multiplier_cnn", "scorer",
          "[C24 eq. 9] max-LR multiplier with the 1/q kernel-size factor (CNN, base q = 1)")
def max_lr_multiplier_cnn(offset: float = DEFAULT_OFFSET) -> LRMultiplierScorer:
    return LRMultiplierScorer(offset, kernel_scaling=True)
