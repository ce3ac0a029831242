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

**Variance-weighted paths** (``path_weights="target"`` or ``"source"``, an option; the default
``"none"`` is [C24]'s unweighted sum). Under the architecture-aware init a path does not carry a
unit share of the signal: every linear edge ``(s, t)`` on it scales the variance by
``gain_st / 2 = 1 / d_in``, so path ``p`` contributes ``w_p = Π_{param (s,t) ∈ p} gain_st / 2`` to the
output variance (skips contribute 1; ``Σ_p w_p = 1`` on all-linear DAGs). Weighting the path sum
accordingly, ``η* ∝ (Σ_p w_p L_p³)^(-1/2)``, makes a dense all-linear DAG behave like a chain of its
average depth instead of like ``P`` parallel chains, and lets unattenuated skip paths weigh fully.
On MLP-DAGs trained on digits this fits grid-searched maximal LRs better than the unweighted sum,
both on the topologies it was chosen on and on held-out random 6-node DAGs (``docs/lr_fidelity.md``,
16 seeds, offset 3: in-sample Pearson r 0.83 vs 0.54, held-out 0.82 vs 0.70). Chains have
``w_p = 1``, so the convention agrees with [C24] on them. It stays an option (the default is the
authors' convention and docs/theory.md §5's worked checks): the evidence is one small dataset, and on
the held-out DAGs a different correction (dividing by the square root of the exact NNGP output
variance, skip growth included) did as well or better, so which correction is right is open.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nasplug.errors import ArchError
from nasplug.graph import ArchBatch, ArchGraph, depth_histograms, live_in_degree_matrix
from nasplug.ops import ROLE_CODES

#: The authors' code convention: L_p = (#param edges on p) + 3, base network of depth 3.
DEFAULT_OFFSET = 3
DEFAULT_BASE_DEPTHS: tuple[int, ...] = (3,)

INIT_RULES = ("target", "source")

#: Path weightings of the maximal-LR sum: [C24]'s unweighted sum, or each path's variance share
#: under the target-/source-rule arch-aware init (module docstring).
PATH_WEIGHTS = ("none", "target", "source")


def live_in_degrees(arch: ArchGraph) -> list[int]:
    """Per node, the number of non-zero in-edges whose source is reachable from the input."""
    return live_in_degree_matrix(ArchBatch.from_archs([ArchGraph.parse(arch)]))[0].tolist()


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


def weighted_depth_histograms(batch: ArchBatch, rule: str = "target") -> np.ndarray:
    """``(B, n_nodes)``: entry ``[b, d]`` is ``Σ w_p`` over the input→output paths of depth ``d``,
    with ``w_p = Π_{param (s,t) ∈ p} 1/d_in`` (``d_in`` of the target node for ``rule="target"``,
    of the source node, at least 1, for ``"source"``): the path's share of the output variance under
    that init rule (skip and pooling edges carry weight 1). Dynamic programming over the topological
    order like :func:`~nasplug.graph.depth_histograms`, with ``d_in`` as in :func:`live_in_degrees`.
    """
    if rule not in INIT_RULES:
        raise ArchError(f"unknown path weighting {rule!r}; use one of {', '.join(PATH_WEIGHTS)}")
    degree = live_in_degree_matrix(batch)
    node = [t for _, t in batch.pairs] if rule == "target" else [s for s, _ in batch.pairs]
    return depth_histograms(batch, param_weights=1.0 / np.maximum(degree[:, node], 1))


def _path_cube_sums(batch: ArchBatch, offset: float, path_weights: str = "none") -> np.ndarray:
    if path_weights not in PATH_WEIGHTS:
        raise ArchError(f"unknown path weighting {path_weights!r}; use one of {', '.join(PATH_WEIGHTS)}")
    if path_weights == "none":
        hist = depth_histograms(batch)
    else:
        hist = weighted_depth_histograms(batch, path_weights)
    depths = np.arange(hist.shape[1], dtype=np.float64) + offset
    return hist @ depths**3


def _max_kernel(batch: ArchBatch) -> np.ndarray:
    """Largest kernel size over parameterized edges (1 when there is none)."""
    param = batch.roles == ROLE_CODES["param"]
    return np.where(param, batch.kernel_sizes, 1).max(axis=1).astype(np.float64)


def lr_multipliers(batch: ArchBatch, offset: float = DEFAULT_OFFSET,
                   base_depths: Sequence[float] = DEFAULT_BASE_DEPTHS,
                   kernel_scaling: bool = False, base_kernel: int = 1, *,
                   path_weights: str = "none", base_weights: Sequence[float] | None = None) -> np.ndarray:
    """Batched ``η / η_base = sqrt(Σ_b L_b³ / Σ_p L_p³)`` (× ``base_kernel / q`` with
    ``kernel_scaling``); NaN for cells without an input→output path.

    ``base_depths`` are the path depths ``L_b`` of the base network, already including the offset.
    ``path_weights`` (``"none"``, ``"target"``, ``"source"``) weights each path of the batch by
    its variance share ``w_p`` (module docstring): ``sqrt(Σ_b w_b L_b³ / Σ_p w_p L_p³)``, with
    ``base_weights`` the base paths' ``w_b`` (default 1 each, right for a chain base).
    """
    if offset < 0:
        raise ArchError(f"the depth offset must be >= 0, got {offset}")
    depths = np.asarray(base_depths, dtype=np.float64)
    weights = np.ones_like(depths) if base_weights is None else np.asarray(base_weights, dtype=np.float64)
    if weights.shape != depths.shape:
        raise ArchError("base_weights needs one weight per base path depth")
    base = float(np.sum(weights * depths**3))
    if base <= 0:
        raise ArchError("the base network needs a path of positive depth")
    cubes = _path_cube_sums(batch, offset, path_weights)
    num_paths = depth_histograms(batch).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mult = np.where((num_paths > 0) & (cubes > 0), np.sqrt(base / cubes), np.nan)
    if kernel_scaling:
        mult = mult * base_kernel / _max_kernel(batch)
    return mult


def lr_multiplier(arch: ArchGraph | str, offset: float = DEFAULT_OFFSET,
                  base: ArchGraph | str | Sequence[float] = DEFAULT_BASE_DEPTHS,
                  kernel_scaling: bool = False, base_kernel: int = 1, *,
                  path_weights: str = "none") -> float:
    """``η / η_base`` for one architecture [C24 eq. 8–9].

    ``base`` is either the base network as an architecture (its path depths get the same
    ``offset`` and, with ``path_weights``, the same weighting) or the base path depths ``L_b``
    themselves (weight 1 each). ``path_weights="target"``/``"source"`` selects the
    variance-weighted path sum (module docstring); ``"none"`` is [C24]'s. Raises
    :class:`ArchError` with the reason when the architecture has no input→output path.
    """
    arch = ArchGraph.parse(arch)
    base_weights = None
    if isinstance(base, (str, ArchGraph)):
        base_batch = ArchBatch.from_archs([ArchGraph.parse(base)])
        if path_weights == "none":
            hist = depth_histograms(base_batch)[0]
        else:
            hist = weighted_depth_histograms(base_batch, path_weights)[0]
        if not hist.any():
            raise ArchError(f"the base network {base} has no input→output path")
        depths = np.flatnonzero(hist)
        base, base_weights = list(depths + offset), list(hist[depths])
    value = lr_multipliers(ArchBatch.from_archs([arch]), offset, base, kernel_scaling, base_kernel,
                           path_weights=path_weights, base_weights=base_weights)[0]
    if not np.isfinite(value):
        raise ArchError(
            f"{arch} has no input→output path with positive depth: it computes a constant, "
            "so it has no learning rate (reject it before training)"
        )
    return float(value)


#: The network families built around a cell (nasplug.models): the theory MLP-DAG, the CNN-DAG and
#: the NAS-Bench-201, NAS-Bench-101 and DARTS/NAS-Bench-301 networks.
MODELS = ("mlp", "cnn", "nb201", "nb101", "darts")
#: Hidden width (mlp), channels (cnn), the benchmarks' C (nb201, darts) or stem channels (nb101)
#: when none is given.
DEFAULT_WIDTH = {"mlp": 256, "cnn": 16, "nb201": 16, "nb101": 128, "darts": 32}
#: Base learning rate of the [C24] rule when neither a learning rate nor a base LR is given: the
#: LR of the family's base network. 0.1 is NAS-Bench-201's; the CNN-DAG's 1.0 was chosen on the
#: validation split of digits (benchmarks/demo_calibration.py, docs/demo_calibration.md: 0.1 leaves
#: it undertrained after 10 epochs; 1.0 trains more cells past 97 % with less seed noise than 0.5).
#: NAS-Bench-101 and DARTS take their benchmarks' SGD learning rates (0.1 as NB201's cell convention is
#: used for them; DARTS's 0.025), not validated for the [C24] rule.
DEFAULT_BASE_LR = {"mlp": 0.1, "cnn": 1.0, "nb201": 0.1, "nb101": 0.1, "darts": 0.025}


def default_lr_rule(model: str) -> dict[str, Any]:
    """The [C24] LR-scaling convention per model family (docs/theory.md §5): MLP/CNN count
    ``#param edges + DEFAULT_OFFSET`` against the base depths of this module; CNNs add the
    ``1/q`` kernel factor against a 3×3 base; NB201 counts ``1 + #convs in one cell`` against a
    base of depth 1 (the authors' code), with the kernel factor; the NB101 and DARTS networks use
    NB201's cell convention on their cell DAGs (a choice, not validated on those benchmarks)."""
    if model in ("nb201", "nb101", "darts"):
        return {"offset": 1, "base": (1,), "kernel_scaling": True, "base_kernel": 3}
    if model == "cnn":
        return {"offset": DEFAULT_OFFSET, "base": DEFAULT_BASE_DEPTHS, "kernel_scaling": True,
                "base_kernel": 3}
    return {"offset": DEFAULT_OFFSET, "base": DEFAULT_BASE_DEPTHS, "kernel_scaling": False,
            "base_kernel": 1}


def principled_lr(arch: ArchGraph | str, base_lr: float, model: str = "mlp", *,
                  offset: float | None = None, base: ArchGraph | str | Sequence[float] | None = None,
                  path_weights: str = "none") -> float:
    """``base_lr × lr_multiplier(arch)`` [C24 eq. 8–9] with the model family's convention
    (:func:`default_lr_rule`); raises :class:`~nasplug.errors.ArchError` for cells without a path.
    ``path_weights="target"``/``"source"`` weights each path by its variance share under that
    init rule (this module; fits grid-searched MLP max LRs better, docs/lr_fidelity.md)."""
    rule = default_lr_rule(model)
    if offset is not None:
        rule["offset"] = offset
    if base is not None:
        rule["base"] = base
    return base_lr * lr_multiplier(arch, rule["offset"], rule["base"], rule["kernel_scaling"],
                                   rule["base_kernel"], path_weights=path_weights)
