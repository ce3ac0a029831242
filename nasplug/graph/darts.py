"""DARTS / NAS-Bench-301 cells (Liu et al., *DARTS*, ICLR 2019; Siems et al., *NAS-Bench-301*) as DAGs.

A DARTS ``Genotype`` has a normal and a reduction cell, each a list of 8 ``(op, input)`` pairs, two
per intermediate node 2..5; inputs 0 and 1 are the outputs of the two previous cells, each passed
through a 1×1 ReLU-Conv-BN ("preprocessing"); the cell output concatenates nodes 2..5. A cell becomes
an :class:`~nasplug.ArchGraph` of 16 nodes (docs/nasbench.md):

* node 0 is the cell's input ``x``; nodes 1 and 2 are the two input states, each the preprocessing of
  ``x`` (``preprocess0``, ``preprocess1`` = ReLU → Conv 1×1 → BN, parameterized). The real network
  feeds them from two *different* previous cells; the DAG of one cell feeds both from ``x`` (two op
  names keep them apart in canonical keys);
* every pair gets its own *op node*: intermediate node ``i`` (2..5) is node ``3i − 1``, its two op
  nodes are ``3i − 3`` and ``3i − 2``; the edge state → op node carries the op's first layer and the
  edge op node → node ``3i − 1`` its second: ``sep_conv_k`` on both (two stacked separable convs, depth 2 on a
  path), ``dil_conv_k`` / pooling / ``skip_connect`` then a skip. In a reduction cell a
  ``skip_connect`` from input 0 or 1 runs at stride 2, which DARTS implements as a factorized
  reduction (two 1×1 convs, BN): ``factorized_reduce``, parameterized. Two pairs of one node with
  the same input are two parallel branches, which the op nodes keep apart;
* node 15 concatenates nodes 5, 8, 11, 14 (the states 2..5): four ``concat`` edges.

A whole genotype is the **pair**: the normal cell followed by the reduction cell, whose input ``x``
is the normal cell's output (31 nodes; node 15 is shared). The network repeats normal and
reduction cells (8 cells: N N R N N R N N in NB301); the pair is the smallest DAG that contains both
and composes them in series, so path depths add and path counts multiply.

Text forms accepted by :func:`parse_genotype`: the printed ``Genotype(normal=[('sep_conv_3x3', 0),
...], normal_concat=range(2, 6), reduce=[...], reduce_concat=[2, 3, 4, 5])`` (read with
``ast.literal_eval``, never ``eval``), JSON ``{"normal": [["sep_conv_3x3", 0], ...], "reduce": ...}``,
and NASLib's compact form ``((input, op index) × 8, (input, op index) × 8)`` with op indices
:data:`OPS` (also NAS-Bench-301's own order).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from nasplug.errors import ArchError
from nasplug.graph.batch import ArchBatch, all_pairs
from nasplug.ops import CONCAT, FACTORIZED_REDUCE, PREPROCESS0, PREPROCESS1, SKIP, Op, get_op

Edges = dict[tuple[int, int], Op]
Cell = list[tuple[str, int]]

#: NB301's ops in NASLib's compact order (op index = position).
OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
       "dil_conv_5x5")
CONCAT_NODES = (2, 3, 4, 5)
CELL_NODES, PAIR_NODES = 16, 31
PREPROCESS = (PREPROCESS0, PREPROCESS1)
_OPS = {name: get_op(name) for name in OPS}


class Genotype(NamedTuple):
    """A DARTS genotype, with DARTS's field names; ``str()`` prints it as DARTS does."""

    normal: Cell
    normal_concat: list[int]
    reduce: Cell
    reduce_concat: list[int]


def state_node(state: int, offset: int = 0) -> int:
    """The DAG node of cell state ``state`` (0, 1 inputs; 2..5 intermediate nodes)."""
    return offset + (state + 1 if state < 2 else 3 * state - 1)


def op_node(pair: int, offset: int = 0) -> int:
    """The op node of pair ``pair`` (0..7) of a cell."""
    return offset + 3 * (pair // 2) + 3 + pair % 2


# ---------------------------------------------------------------------- validating genotypes
def check_cell(pairs: Any, name: str = "normal") -> Cell:
    """Validate one cell's 8 ``(op, input)`` pairs; returns them as a list of tuples.

    Raises :class:`~nasplug.errors.ArchError` naming the problem: not 8 pairs, a pair that is not
    ``(op name, input)``, an op outside NB301's seven, or the input of a node out of range (node ``i``
    reads states ``0..i−1``).
    """
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise ArchError(f"the {name} cell must be a list of 8 (op, input) pairs, got {pairs!r}")
    if len(pairs) != 8:
        raise ArchError(f"the {name} cell has {len(pairs)} (op, input) pairs; a DARTS cell has 8 (two per "
                        "intermediate node 2..5)")
    out: Cell = []
    for k, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2 \
                or not isinstance(pair[0], str) or isinstance(pair[1], bool) \
                or not isinstance(pair[1], (int, np.integer)):
            raise ArchError(f"pair {k} of the {name} cell must be (op name, input node), got {pair!r}")
        op, inp = pair[0], int(pair[1])
        if op not in _OPS:
            raise ArchError(f"unknown DARTS op {op!r} in pair {k} of the {name} cell; NB301 ops: "
                            f"{', '.join(OPS)}")
        node = 2 + k // 2
        if not 0 <= inp < node:
            raise ArchError(f"input {inp} of node {node} (pair {k} of the {name} cell) is out of range "
                            f"0..{node - 1}")
        out.append((op, inp))
    return out


def _check_concat(concat: Any, name: str) -> list[int]:
    try:
        values = [int(c) for c in concat]
    except (TypeError, ValueError):
        raise ArchError(f"{name}_concat must list node numbers, got {concat!r}") from None
    if values != list(CONCAT_NODES):
        raise ArchError(f"{name}_concat is {values}; the DARTS / NB301 space concatenates nodes 2, 3, 4, 5")
    return values


def genotype(normal: Any, reduce: Any, normal_concat: Any = CONCAT_NODES,
             reduce_concat: Any = CONCAT_NODES) -> Genotype:
    """A validated :class:`Genotype` (see :func:`check_cell`)."""
    return Genotype(check_cell(normal, "normal"), _check_concat(normal_concat, "normal"),
                    check_cell(reduce, "reduce"), _check_concat(reduce_concat, "reduce"))


_FIELD = re.compile(r"\b(normal_concat|reduce_concat|normal|reduce)\s*=")
_RANGE = re.compile(r"range\(\s*(\d+)\s*,\s*(\d+)\s*\)")


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ArchError(f"malformed genotype {text[:80]!r}: not a Python/JSON literal") from None


def parse_genotype(value: Any) -> Genotype:
    """A :class:`Genotype` from any accepted form (module docstring): a genotype object (anything with
    ``normal`` and ``reduce`` attributes, e.g. DARTS's own), its printed text, JSON text, a dict, the
    compact form, or a pair ``(normal, reduce)`` of pair lists."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("Genotype(") and text.endswith(")"):
            inner = _RANGE.sub(lambda m: str(list(range(int(m[1]), int(m[2])))), text[len("Genotype("):-1])
            return parse_genotype(_literal("{" + _FIELD.sub(lambda m: f"{m[1]!r}:", inner) + "}"))
        if text.startswith("{"):
            try:
                return parse_genotype(json.loads(text))
            except json.JSONDecodeError:
                return parse_genotype(_literal(text))
        return parse_genotype(_literal(text))
    if isinstance(value, dict):
        missing = [k for k in ("normal", "reduce") if k not in value]
        if missing:
            raise ArchError("a DARTS genotype needs the fields normal and reduce "
                            f"(missing {', '.join(missing)})")
        return genotype(value["normal"], value["reduce"], value.get("normal_concat", CONCAT_NODES),
                        value.get("reduce_concat", CONCAT_NODES))
    if hasattr(value, "normal") and hasattr(value, "reduce"):
        return genotype(value.normal, value.reduce, getattr(value, "normal_concat", CONCAT_NODES),
                        getattr(value, "reduce_concat", CONCAT_NODES))
    if isinstance(value, Sequence) and len(value) == 2:
        if _is_compact(value):
            return parse_compact(value)
        return genotype(value[0], value[1])
    raise ArchError(f"cannot read a DARTS genotype from {type(value).__name__}")


def _is_compact(value: Sequence) -> bool:
    try:
        return all(len(cell) == 8 and all(len(p) == 2 and all(isinstance(x, (int, np.integer))
                                                             and not isinstance(x, bool) for x in p)
                                          for p in cell) for cell in value)
    except TypeError:
        return False


def parse_compact(value: Sequence) -> Genotype:
    """NASLib's compact form: per cell, 8 ``(input, op index)`` pairs (op indices :data:`OPS`)."""
    cells = []
    for name, cell in zip(("normal", "reduce"), value):
        pairs = []
        for k, (inp, index) in enumerate(cell):
            if not 0 <= index < len(OPS):
                raise ArchError(f"op index {index} in pair {k} of the {name} cell is out of range 0..6 "
                                f"({', '.join(f'{i} {o}' for i, o in enumerate(OPS))})")
            pairs.append((OPS[index], int(inp)))
        cells.append(pairs)
    return genotype(*cells)


def format_compact(geno: Genotype) -> tuple[tuple[tuple[int, int], ...], ...]:
    """The compact form of a genotype (inverse of :func:`parse_compact`)."""
    return tuple(tuple((inp, OPS.index(op)) for op, inp in cell) for cell in (geno.normal, geno.reduce))


# ---------------------------------------------------------------------- genotype <-> DAG
def _layers(op: str, inp: int, reduction: bool) -> tuple[Op, Op]:
    """The ops of the two edges state → op node → intermediate node (module docstring)."""
    if op.startswith("sep_conv"):
        return _OPS[op], _OPS[op]
    if op == "skip_connect" and reduction and inp < 2:
        return FACTORIZED_REDUCE, SKIP
    return _OPS[op], SKIP


def cell_edges(cell: Cell, reduction: bool, offset: int = 0) -> Edges:
    """Edges of one validated cell's 16-node DAG, with node 0 at ``offset``."""
    edges: Edges = {(offset, offset + 1): PREPROCESS[0], (offset, offset + 2): PREPROCESS[1]}
    for k, (op, inp) in enumerate(cell):
        first, second = _layers(op, inp, reduction)
        edges[(state_node(inp, offset), op_node(k, offset))] = first
        edges[(op_node(k, offset), state_node(2 + k // 2, offset))] = second
    for state in CONCAT_NODES:
        edges[(state_node(state, offset), offset + CELL_NODES - 1)] = CONCAT
    return edges


def parse_darts(value: Any, cell: str | None = None) -> tuple[int, Edges]:
    """``(n_nodes, edges)``: the pair DAG (31 nodes) of a genotype, or with ``cell="normal"`` /
    ``"reduce"`` the 16-node DAG of that cell (a genotype, or one cell's 8 pairs)."""
    if cell is None:
        geno = parse_genotype(value)
        edges = cell_edges(geno.normal, False)
        edges.update(cell_edges(geno.reduce, True, CELL_NODES - 1))
        return PAIR_NODES, edges
    if cell not in ("normal", "reduce"):
        raise ArchError(f"cell must be 'normal', 'reduce' or None (the pair), got {cell!r}")
    pairs = getattr(parse_genotype(value), cell) if _looks_like_genotype(value) else check_cell(
        _literal(value) if isinstance(value, str) else value, cell)
    return CELL_NODES, cell_edges(pairs, cell == "reduce")


def _looks_like_genotype(value: Any) -> bool:
    if isinstance(value, str):
        return value.lstrip().startswith(("Genotype(", "{"))
    return isinstance(value, dict) or hasattr(value, "reduce") or (
        isinstance(value, Sequence) and len(value) == 2)


def _decode_cell(edges: Edges, offset: int, reduction: bool) -> Cell:
    """The 8 pairs of the cell at ``offset`` (inverse of :func:`cell_edges`)."""
    expected_fixed = {(offset, offset + 1): PREPROCESS[0], (offset, offset + 2): PREPROCESS[1],
                      **{(state_node(s, offset), offset + CELL_NODES - 1): CONCAT for s in CONCAT_NODES}}
    for e, op in expected_fixed.items():
        if edges.get(e) != op:
            raise ArchError(f"not a DARTS cell in nasplug's layout: edge {e} should be {op.name}")
    pairs: Cell = []
    for k in range(8):
        node = op_node(k, offset)
        ins = [(s, op) for (s, t), op in edges.items() if t == node]
        out = edges.get((node, state_node(2 + k // 2, offset)))
        if len(ins) != 1 or out is None:
            raise ArchError(f"not a DARTS cell in nasplug's layout: op node {node} needs one input and an "
                            "edge to its intermediate node")
        (src, first), = ins
        states = {state_node(s, offset): s for s in range(2 + k // 2)}
        if src not in states:
            raise ArchError(f"not a DARTS cell in nasplug's layout: op node {node} reads node {src}")
        inp = states[src]
        names = [name for name in OPS if _layers(name, inp, reduction) == (first, out)]
        if not names:
            raise ArchError(f"not a DARTS cell in nasplug's layout: ops ({first.name}, {out.name}) at op "
                            f"node {node} are no DARTS op")
        pairs.append((names[0], inp))
    return pairs


def format_darts(n_nodes: int, edges: Edges) -> Genotype | Cell:
    """The genotype of a pair DAG, or the 8 pairs of a one-cell DAG (inverse of :func:`parse_darts`).
    A one-cell DAG with a ``factorized_reduce`` edge is a reduction cell; otherwise it is read as a
    normal cell (the two differ only in that op)."""
    if n_nodes == PAIR_NODES:
        normal = _decode_cell(edges, 0, False)
        reduce = _decode_cell(edges, CELL_NODES - 1, True)
        expected = len(cell_edges(normal, False)) + len(cell_edges(reduce, True, CELL_NODES - 1))
        if len(edges) != expected:
            raise ArchError("not a DARTS genotype in nasplug's layout: it has extra edges")
        return Genotype(normal, list(CONCAT_NODES), reduce, list(CONCAT_NODES))
    if n_nodes == CELL_NODES:
        reduction = FACTORIZED_REDUCE in edges.values()
        cell = _decode_cell(edges, 0, reduction)
        if len(edges) != len(cell_edges(cell, reduction)):
            raise ArchError("not a DARTS cell in nasplug's layout: it has extra edges")
        return cell
    raise ArchError(f"a DARTS cell has {CELL_NODES} nodes and a genotype {PAIR_NODES} in nasplug's layout, "
                    f"got {n_nodes}")


# ---------------------------------------------------------------------- batched
def batch_arrays(ops: np.ndarray, inputs: np.ndarray, cell: str | None = None) -> ArchBatch:
    """The DAGs of many genotypes (or cells) at once, without per-cell objects.

    Parameters
    ----------
    ops, inputs
        ``(B, 2, 8)`` op indices (:data:`OPS`) and input states of the normal and reduction cells'
        pairs (already validated: ``0 <= inputs[:, :, k] < 2 + k // 2``); or ``(B, 8)`` with ``cell``.
    cell
        ``None``: the pair DAGs (31 nodes); ``"normal"`` or ``"reduce"``: one cell per row (16 nodes).

    The result equals :func:`parse_darts` row by row.
    """
    ops, inputs = np.asarray(ops, dtype=np.int64), np.asarray(inputs, dtype=np.int64)
    if cell is None:
        n_nodes, cells = PAIR_NODES, [(ops[:, 0], inputs[:, 0], False, 0),
                                      (ops[:, 1], inputs[:, 1], True, CELL_NODES - 1)]
    else:
        n_nodes, cells = CELL_NODES, [(ops, inputs, cell == "reduce", 0)]
    pairs = all_pairs(n_nodes)
    col = np.full((n_nodes, n_nodes), -1, dtype=np.int64)
    for e, (s, t) in enumerate(pairs):
        col[s, t] = e
    b = ops.shape[0]
    roles = np.zeros((b, len(pairs)), dtype=np.int8)
    kernels = np.ones((b, len(pairs)), dtype=np.int16)
    rows = np.arange(b)
    # per (op index, from an input state, reduction): role/kernel of the first and second layer
    table = {}
    for reduction in (False, True):
        for from_input in (False, True):
            layers = [_layers(name, 0 if from_input else 2, reduction) for name in OPS]
            table[reduction, from_input] = tuple(
                np.array([getattr(lay[i], attr) for lay in layers], dtype=dtype)
                for i in (0, 1) for attr, dtype in (("code", np.int8), ("kernel_size", np.int16)))
    for cell_ops, cell_inputs, reduction, offset in cells:
        for i, op in enumerate(PREPROCESS):
            roles[:, col[offset, offset + 1 + i]] = op.code
        for state in CONCAT_NODES:
            roles[:, col[state_node(state, offset), offset + CELL_NODES - 1]] = CONCAT.code
        state_nodes = np.array([state_node(s, offset) for s in range(6)])
        for k in range(8):
            node, target = op_node(k, offset), state_node(2 + k // 2, offset)
            op, inp = cell_ops[:, k], cell_inputs[:, k]
            from_input = inp < 2
            role1, kern1, role2, kern2 = (np.where(from_input, on_input[op], inner[op]) for on_input, inner
                                          in zip(table[reduction, True], table[reduction, False]))
            first = col[state_nodes[inp], node]
            roles[rows, first] = role1
            kernels[rows, first] = kern1
            roles[:, col[node, target]] = role2
            kernels[:, col[node, target]] = kern2
    return ArchBatch(n_nodes, pairs, roles, kernels)


_PAIR = re.compile(r"\(\s*'([a-z0-9_]+)'\s*,\s*(\d+)\s*\)")
_CONCAT_TEXT = r"(?:\[2, 3, 4, 5\]|range\(2, 6\))"
_PRINTED = re.compile(rf"Genotype\(normal=\[([^\]]*)\], normal_concat={_CONCAT_TEXT}, "
                      rf"reduce=\[([^\]]*)\], reduce_concat={_CONCAT_TEXT}\)")
_OP_INDEX = {name: i for i, name in enumerate(OPS)}
_MAX_INPUT = np.array([2 + k // 2 for k in range(8)])


def batch_genotypes(values: Sequence, cell: str | None = None) -> ArchBatch:
    """One batch of many genotypes (pair DAGs, or one cell of each with ``cell``): DARTS's printed
    strings are read with one regular expression each, other forms through :func:`parse_genotype`;
    validation is then array work. Raises :class:`~nasplug.errors.ArchError` naming the first bad row."""
    ops = np.zeros((len(values), 2, 8), dtype=np.int64)
    inputs = np.zeros((len(values), 2, 8), dtype=np.int64)
    for row, value in enumerate(values):
        m = _PRINTED.fullmatch(value) if isinstance(value, str) else None
        pairs = _PAIR.findall(m[1]) + _PAIR.findall(m[2]) if m else []
        if len(pairs) != 16 or any(op not in _OP_INDEX for op, _ in pairs):
            try:
                geno = parse_genotype(value)
            except ArchError as err:
                raise ArchError(f"row {row}: {err}") from None
            pairs = [(op, str(inp)) for op, inp in geno.normal + geno.reduce]
        ops[row] = np.reshape([_OP_INDEX[op] for op, _ in pairs], (2, 8))
        inputs[row] = np.reshape([int(inp) for _, inp in pairs], (2, 8))
    bad = (inputs >= _MAX_INPUT).any(axis=(1, 2))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        try:
            parse_genotype(values[row])
        except ArchError as err:
            raise ArchError(f"row {row}: {err}") from None
    if cell is None:
        return batch_arrays(ops, inputs)
    if cell not in ("normal", "reduce"):
        raise ArchError(f"cell must be 'normal', 'reduce' or None (the pair), got {cell!r}")
    c = 0 if cell == "normal" else 1
    return batch_arrays(ops[:, c], inputs[:, c], cell)
