"""Torch builders for architecture DAGs, with the principled init of [C24] applied at build time.

``build_mlp`` (the theory network), ``build_cnn`` (CNN-DAG) and ``build_nb201`` (NAS-Bench-201's
macro network) share one edge-op abstraction, :class:`DAGCell`. See ``docs/models_training.md``.
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
from nasplug.models.init import INIT_MODES, fan_in, init_layer_, weight_layer

__all__ = [
    "DAGCell",
    "node_sq_norms",
    "DAGNet",
    "NB201Network",
    "ResNetBasicBlock",
    "build_mlp",
    "build_cnn",
    "build_nb201",
    "count_parameters",
    "is_nb201_cell",
    "INIT_MODES",
    "fan_in",
    "init_layer_",
    "weight_layer",
]
