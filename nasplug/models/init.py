"""Principled initialization applied at build time [C24 eq. 4, App. A].

Every parameterized edge ``(s, t)`` of the DAG gets ``Var W_st = gain_st / fan_in`` with the gains of
:func:`nasplug.theory.hparams.init_gains` (``fan_in`` = ``in_features`` for a linear layer,
``in_channels · k · k`` for a conv). Dividing He's gain 2 by the in-degree of the node keeps the
pre-activation norm ``E‖z_t‖²/n`` flat along the DAG: a node *sums* its in-edges, so with plain He
init its variance grows with the number of incoming branches (see ``docs/norm_preservation.md``).

Layers outside the DAG follow fixed rules, identical for every init mode so that comparisons isolate
the DAG: a stem that sees raw inputs gets gain 1 (variance-preserving for a linear map; He's factor 2
compensates a ReLU that is not there), other convs behind a ReLU gain 2 (He). The readout gets the
μP-style ``Var = readout_gain / n²`` of [C24] under the architecture-aware modes and He's
``2 / n`` under ``"he"``.

[C24] W. Chen, J. Wu, Z. Wang, B. Hanin. *Principled Architecture-aware Scaling of
Hyper-parameters.* ICLR 2024, arXiv:2402.17440.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nasplug.errors import NasplugError
from nasplug.graph import ArchGraph
from nasplug.theory.hparams import init_gains, readout_gain

#: Init modes of the builders and the :func:`nasplug.theory.hparams.init_gains` rule each one uses.
INIT_MODES: dict[str, str | None] = {
    "arch_aware": "target",  # [C24 App. A]: d_in of the edge's target node (default)
    "arch_aware_source": "source",  # the authors' code: d_in of the source node
    "he": "he",  # gain 2 on every edge, for comparison
    "torch": None,  # keep PyTorch's default init (no re-initialization)
}


def check_init(init: str) -> str:
    """Validate an init mode name (a user error, not a crash, when unknown)."""
    if init not in INIT_MODES:
        raise NasplugError(f"unknown init {init!r}; use one of {', '.join(INIT_MODES)}")
    return init


def fan_in(layer: nn.Module) -> int:
    """Inputs feeding one output unit: ``in_features`` or ``in_channels / groups · k_h · k_w``."""
    if isinstance(layer, nn.Linear):
        return layer.in_features
    if isinstance(layer, nn.Conv2d | nn.Conv1d):
        return layer.in_channels // layer.groups * math.prod(layer.kernel_size)
    raise TypeError(f"no fan-in rule for {type(layer).__name__}")


def weight_layer(module: nn.Module) -> nn.Module | None:
    """The first linear or conv layer inside an edge module (None for weight-free edges)."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d):
            return m
    return None


@torch.no_grad()
def init_layer_(layer: nn.Module, var_numerator: float, *, divisor: float | None = None,
                generator: torch.Generator | None = None) -> None:
    """Draw ``W ~ N(0, var_numerator / divisor)`` (``divisor`` defaults to the layer's fan-in) and
    zero the bias: a zero bias keeps the variance recursion of docs/theory.md §4 exact."""
    divisor = float(fan_in(layer)) if divisor is None else float(divisor)
    std = math.sqrt(var_numerator / divisor)
    layer.weight.normal_(0.0, std, generator=generator)
    if getattr(layer, "bias", None) is not None:
        layer.bias.zero_()


def dag_edge_gains(arch: ArchGraph, init: str) -> dict[tuple[int, int], float]:
    """The variance numerator of every parameterized edge for an init mode."""
    rule = INIT_MODES[check_init(init)]
    if rule is None:
        return {}
    return init_gains(arch, rule)


def readout_numerator(arch: ArchGraph, init: str, width: int) -> tuple[float, float]:
    """``(numerator, divisor)`` of the readout variance: μP ``readout_gain / n²`` [C24] for the
    architecture-aware modes, He ``2 / n`` otherwise."""
    if INIT_MODES[check_init(init)] in ("target", "source"):
        return readout_gain(arch), float(width) ** 2
    return 2.0, float(width)


def he_init_(net: nn.Module, classifier: nn.Module, seed: int | None) -> None:
    """He-normal init of every conv of ``net`` (``Var = 2 / fan_in``: each follows a ReLU or is
    followed by BN) and ``Var = 1 / fan_in`` for the ``classifier``, from one seeded generator: the
    init of the benchmarks' own networks (NB101, DARTS), whose convs all have BN after them."""
    gen = make_generator(seed)
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            init_layer_(module, 2.0, generator=gen)
    init_layer_(classifier, 1.0, generator=gen)


def make_generator(seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    return torch.Generator().manual_seed(int(seed))
