"""Torch builders for architecture DAGs, with the principled init of [C24] applied at build time.

``build_mlp`` (the theory network), ``build_cnn`` (CNN-DAG) and ``build_nb201`` (NAS-Bench-201's
macro network) share one edge-op abstraction, :class:`DAGCell`. ``build_nb101`` and ``build_darts``
are the NAS-Bench-101 and DARTS / NAS-Bench-301 networks of those benchmarks' cells
(:mod:`nasplug.models.nb101`, :mod:`nasplug.models.darts`). See ``docs/models_training.md`` and
``docs/nasbench.md``.
"""

from nasplug.models.builders import (
    DAGNet,
    NB201Network,
    ResNetBasicBlock,
    build_cnn,
    build_mlp,
    build_nb201,
    count_parameters,
    is_nb201_cell,
)
from nasplug.models.dag import DAGCell, node_sq_norms
from nasplug.models.darts import DartsNetwork, build_darts, is_darts_genotype
from nasplug.models.init import INIT_MODES, fan_in, init_layer_, weight_layer
from nasplug.models.nb101 import NB101Network, build_nb101, is_nb101_cell

__all__ = [
    "DAGCell",
    "node_sq_norms",
    "DAGNet",
    "NB201Network",
    "ResNetBasicBlock",
    "build_mlp",
    "build_cnn",
    "build_nb201",
    "build_nb101",
    "build_darts",
    "NB101Network",
    "DartsNetwork",
    "is_nb101_cell",
    "is_darts_genotype",
    "count_parameters",
    "is_nb201_cell",
    "INIT_MODES",
    "fan_in",
    "init_layer_",
    "weight_layer",
]
