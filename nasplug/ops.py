"""The op vocabulary: what an edge of an architecture DAG can compute.

Every scorer only needs to know an op's *role* — zero (no edge), identity (skip), non-parameterized
(average or max pooling), parameterized (linear, conv k×k) or a concatenated block (``concat``) — plus,
for the learning-rate rule of [C24], the kernel size. Keeping that knowledge here means a new op is
one :func:`register_op` call away from working with every scorer, builder and codec.

The ``concat`` role is how cells whose output vertex *concatenates* its inputs (NAS-Bench-101,
DARTS / NAS-Bench-301) enter the DAG model: a node with ``k`` concat in-edges stacks one block of
``1/k`` of its channels from each of their sources (docs/nasbench.md). For path statistics a concat
edge is transparent like a skip; the NNGP kernel weights each block by ``1/k``
(:mod:`nasplug.theory.nngp`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nasplug.errors import ArchError

Role = Literal["zero", "skip", "pool", "param", "concat"]

#: Integer codes of the roles in batched arrays (see :class:`nasplug.graph.ArchBatch`).
ROLE_CODES: dict[str, int] = {"zero": 0, "skip": 1, "pool": 2, "param": 3, "concat": 4}


@dataclass(frozen=True)
class Op:
    """One edge operation.

    Parameters
    ----------
    name
        Canonical name, as written in NB201 strings (``nor_conv_3x3``).
    role
        ``"zero"`` (the edge does not exist), ``"skip"`` (identity), ``"pool"`` (non-parameterized,
        not the identity: kept as an op in canonical keys), ``"param"`` (has weights) or ``"concat"``
        (the source is one concatenated block of the target, see the module docstring).
    kernel_size
        Spatial kernel size ``q`` of conv/pool ops; 1 for linear layers. Enters the CNN rule of the
        maximal learning rate [C24, eq. 9].
    """

    name: str
    role: Role
    kernel_size: int = 1

    @property
    def is_zero(self) -> bool:
        return self.role == "zero"

    @property
    def is_skip(self) -> bool:
        return self.role == "skip"

    @property
    def is_parameterized(self) -> bool:
        return self.role == "param"

    @property
    def code(self) -> int:
        return ROLE_CODES[self.role]


_OPS: dict[str, Op] = {}
_ALIASES: dict[str, str] = {}


def register_op(op: Op, *aliases: str) -> Op:
    """Add an op (and optional alias names) to the vocabulary; returns it.

    Re-registering the same definition is a no-op; redefining an existing name is an error, because
    architectures already built would silently change meaning.
    """
    for name in (op.name, *aliases):
        existing = _OPS.get(_ALIASES.get(name, name))
        if existing is not None and existing != op:
            raise ArchError(f"op name {name!r} is already registered as {existing}")
    _OPS[op.name] = op
    for alias in aliases:
        _ALIASES[alias] = op.name
    return op


def known_ops() -> dict[str, Op]:
    """Every registered name and alias with its op."""
    return {**_OPS, **{alias: _OPS[name] for alias, name in _ALIASES.items()}}


def get_op(name: str) -> Op:
    """Look an op up by name or alias, with a clear error listing the known ones."""
    try:
        return _OPS[_ALIASES.get(name, name)]
    except KeyError:
        known = ", ".join(sorted(_OPS))
        raise ArchError(f"unknown op {name!r}; known ops: {known}") from None


ZERO = register_op(Op("none", "zero"), "zero")
SKIP = register_op(Op("skip_connect", "skip"), "skip", "identity")
LINEAR = register_op(Op("linear", "param"))
CONV1X1 = register_op(Op("nor_conv_1x1", "param", 1))
CONV3X3 = register_op(Op("nor_conv_3x3", "param", 3))
AVGPOOL3X3 = register_op(Op("avg_pool_3x3", "pool", 3))

#: A concatenated block (NAS-Bench-101's and DARTS's output vertex).
CONCAT = register_op(Op("concat", "concat"))
#: Max pooling 3×3, stride 1 (NAS-Bench-101 ``maxpool3x3``, DARTS ``max_pool_3x3``).
MAXPOOL3X3 = register_op(Op("max_pool_3x3", "pool", 3), "maxpool3x3")

#: NAS-Bench-101's vertex ops (Ying et al. 2019): Conv → BN → ReLU. The 1×1 one is also the
#: projection every input→vertex edge applies.
NB101_CONV3X3 = register_op(Op("conv3x3-bn-relu", "param", 3))
NB101_CONV1X1 = register_op(Op("conv1x1-bn-relu", "param", 1))

#: DARTS / NAS-Bench-301 ops (Liu et al. 2019). A separable conv is two stacked blocks (ReLU →
#: depthwise k×k → 1×1 → BN), so it is written on two edges in a row (nasplug.graph.darts); a dilated
#: conv is one such block; a skip at stride 2 is a factorized reduction (two 1×1 convs, BN).
SEP_CONV3X3 = register_op(Op("sep_conv_3x3", "param", 3))
SEP_CONV5X5 = register_op(Op("sep_conv_5x5", "param", 5))
DIL_CONV3X3 = register_op(Op("dil_conv_3x3", "param", 3))
DIL_CONV5X5 = register_op(Op("dil_conv_5x5", "param", 5))
FACTORIZED_REDUCE = register_op(Op("factorized_reduce", "param", 1))
#: DARTS's preprocessing of a cell's two inputs (ReLU → Conv 1×1 → BN of the outputs of the cells two
#: back and one back). Two names, so that swapping a genotype's inputs 0 and 1 changes its
#: canonical key: in the network they read different cells.
PREPROCESS0 = register_op(Op("preprocess0", "param", 1))
PREPROCESS1 = register_op(Op("preprocess1", "param", 1))

#: NAS-Bench-201's op list, in the benchmark's own order.
NB201_OPS: tuple[Op, ...] = (ZERO, SKIP, CONV1X1, CONV3X3, AVGPOOL3X3)
#: [C22]'s DAG-code digits: 0 zero, 1 skip, 2 linear.
DAG_CODE_OPS: tuple[Op, ...] = (ZERO, SKIP, LINEAR)
#: NASLib's NB201 op indices: 0 skip, 1 none, 2 conv3x3, 3 conv1x1, 4 avgpool.
NASLIB_OPS: tuple[Op, ...] = (SKIP, ZERO, CONV3X3, CONV1X1, AVGPOOL3X3)
