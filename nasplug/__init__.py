"""nasplug — neural architecture search made cheaper by theory.

Architectures are DAGs (:class:`ArchGraph`); scorers rank them without training using path
statistics, NNGP kernels [C22] and architecture-aware hyper-parameters [C24].
"""

from nasplug.errors import ArchError, DataError, NasplugError
from nasplug.graph import ArchBatch, ArchGraph, PathStats
from nasplug.ops import Op, get_op, register_op

__version__ = "0.2.0"

__all__ = [
    "ArchGraph",
    "ArchBatch",
    "PathStats",
    "Op",
    "get_op",
    "register_op",
    "NasplugError",
    "ArchError",
    "DataError",
    "__version__",
]
