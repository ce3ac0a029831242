"""NAS-Bench-101 cells (Ying et al., *NAS-Bench-101*, ICML 2019) as DAGs.

The benchmark's own form is its ``ModelSpec``: an upper-triangular ``n×n`` adjacency matrix over
vertices ``0..n−1`` (0 = input, n−1 = output) and one op per vertex (``input``, ``conv3x3-bn-relu``,
``conv1x1-bn-relu``, ``maxpool3x3``, ``output``). Ops sit on **vertices** and the output vertex
**concatenates** its inputs, so a cell becomes an :class:`~nasplug.ArchGraph` (ops on edges, nodes
sum) by this fixed layout of 12 nodes (docs/nasbench.md):

* node 0 is the input vertex, node 11 the output vertex;
* interior vertex ``p`` (1..5, in the pruned cell's order) becomes two nodes, ``2p−1`` (the sum of its
  inputs) and ``2p`` (its op applied to that sum), joined by the edge ``(2p−1, 2p)`` that carries the
  vertex op: ``conv3x3-bn-relu`` / ``conv1x1-bn-relu`` (parameterized) or ``max_pool_3x3`` (pool);
* an input→vertex edge is the network's 1×1 projection (Conv 1×1 → BN → ReLU, parameterized):
  ``(0, 2p−1)``, or ``(0, 11)`` into the output, where the projected input is *added* to the concat;
* an interior edge ``u → v`` sums ``u``'s output into ``v``: a skip ``(2u, 2v−1)``;
* an interior vertex feeding the output is one concatenated block: a ``concat`` edge ``(2u, 11)``.

Unused node pairs (pruned cells with fewer than 7 vertices) have no edges. The benchmark **prunes**
every vertex that is not on an input→output path before anything else (``model_spec.py``): it keeps
the vertices reachable from the input *and* reaching the output, deletes the others' rows, columns and
ops, and rejects a cell with no input→output path; the query domain then allows at most 7 vertices
and 9 edges *after* pruning. :func:`prune` is that rule.

NASLib's tuple (``convert_spec_to_tuple``) is the 49 entries of a 7×7 matrix (row-major) followed by
7 op indices, ``input 0, output 1, maxpool3x3 2, conv1x1-bn-relu 3, conv3x3-bn-relu 4``; a smaller
pruned cell is padded as NASLib does (output moved to vertex 6, unused vertices disconnected with op
``conv3x3-bn-relu``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from nasplug.errors import ArchError
from nasplug.graph.batch import ArchBatch, all_pairs
from nasplug.ops import CONCAT, MAXPOOL3X3, NB101_CONV1X1, NB101_CONV3X3, ROLE_CODES, SKIP, Op

Edges = dict[tuple[int, int], Op]

INPUT, OUTPUT = "input", "output"
#: Interior vertex ops in the benchmark's spelling, and the op each becomes on its vertex edge.
VERTEX_OPS: dict[str, Op] = {"conv3x3-bn-relu": NB101_CONV3X3, "conv1x1-bn-relu": NB101_CONV1X1,
                             "maxpool3x3": MAXPOOL3X3}
#: The projection of every input→vertex edge.
PROJECTION = NB101_CONV1X1
MAX_VERTICES, MAX_EDGES = 7, 9
#: Nodes of the DAG layout (module docstring) and its output node.
N_NODES = 2 * (MAX_VERTICES - 2) + 2
OUTPUT_NODE = N_NODES - 1
#: NASLib's op indices in its NB101 tuples.
NASLIB_OPS = (INPUT, OUTPUT, "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu")
_OP_NAME = {op: name for name, op in VERTEX_OPS.items()}


# ---------------------------------------------------------------------- validation and pruning
def check_spec(matrix, ops: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Validate a ModelSpec-style cell; returns the matrix as an int array and the ops as a list.

    Raises :class:`~nasplug.errors.ArchError` with one line naming the problem: a matrix that is not
    square, ops of the wrong length, an entry that is not 0/1, an entry on or below the diagonal (the
    vertices must be in topological order), an unknown op, or input/output ops in the wrong place.
    """
    try:
        m = np.asarray(matrix)
        if m.dtype == object or not (np.issubdtype(m.dtype, np.number) or m.dtype == bool):
            raise ValueError
    except ValueError:
        raise ArchError("an NB101 matrix must be a rectangular array of 0/1 entries") from None
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ArchError(f"an NB101 matrix must be square (n×n), got shape {m.shape}")
    n = m.shape[0]
    if isinstance(ops, str) or not all(isinstance(o, str) for o in ops):
        raise ArchError(f"NB101 ops must be a list of op names, got {ops!r}")
    ops = list(ops)
    if len(ops) != n:
        raise ArchError(f"an NB101 cell has one op per vertex: got {len(ops)} ops for a {n}×{n} matrix")
    if n < 2:
        raise ArchError("an NB101 cell needs at least 2 vertices (input, output)")
    bad = np.argwhere((m != 0) & (m != 1))
    if bad.size:
        i, j = bad[0]
        raise ArchError(f"NB101 matrix entries must be 0 or 1: entry ({i}, {j}) is {m[i, j]}")
    below = np.argwhere(np.tril(m) != 0)
    if below.size:
        i, j = below[0]
        raise ArchError(f"the NB101 matrix must be strictly upper triangular (vertices in topological "
                        f"order): entry ({i}, {j}) is 1")
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        raise ArchError(f"NB101 vertex 0 must be 'input' and vertex {n - 1} 'output', got {ops[0]!r} "
                        f"and {ops[-1]!r}")
    for v, op in enumerate(ops[1:-1], start=1):
        if op not in VERTEX_OPS:
            raise ArchError(f"unknown NB101 op {op!r} at vertex {v}; NB101 ops: {', '.join(VERTEX_OPS)}")
    return m.astype(np.int64), ops


def prune(matrix, ops: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """The benchmark's pruning: keep the vertices reachable from the input that also reach the
    output, in their order; then the query domain (≤ 7 vertices, ≤ 9 edges).

    Raises :class:`~nasplug.errors.ArchError` for an invalid spec (:func:`check_spec`), a cell with
    no input→output path, and a pruned cell outside the benchmark's domain.
    """
    m, ops = check_spec(matrix, ops)
    n = len(m)
    forward = np.zeros(n, dtype=bool)
    forward[0] = True
    for v in range(1, n):
        forward[v] = bool((forward[:v] & (m[:v, v] == 1)).any())
    backward = np.zeros(n, dtype=bool)
    backward[n - 1] = True
    for u in range(n - 2, -1, -1):
        backward[u] = bool((backward[u + 1:] & (m[u, u + 1:] == 1)).any())
    if not forward[n - 1]:
        raise ArchError("the NB101 cell has no input→output path (the benchmark rejects a disconnected cell)")
    keep = np.flatnonzero(forward & backward)
    m, ops = m[np.ix_(keep, keep)], [ops[i] for i in keep]
    if len(keep) > MAX_VERTICES:
        raise ArchError(f"the NB101 cell has {len(keep)} vertices after pruning; the benchmark allows at "
                        f"most {MAX_VERTICES}")
    if int(m.sum()) > MAX_EDGES:
        raise ArchError(f"the NB101 cell has {int(m.sum())} edges after pruning; the benchmark allows at "
                        f"most {MAX_EDGES}")
    return m, ops


# ---------------------------------------------------------------------- ModelSpec <-> DAG
def parse_nb101(matrix, ops: Sequence[str]) -> tuple[int, Edges]:
    """``(n_nodes, edges)`` of the 12-node DAG of a cell (pruned first, module docstring)."""
    m, ops = prune(matrix, ops)
    n = len(m)
    node_out = {0: 0, **{v: 2 * v for v in range(1, n - 1)}}
    node_in = {n - 1: OUTPUT_NODE, **{v: 2 * v - 1 for v in range(1, n - 1)}}
    edges: Edges = {(2 * v - 1, 2 * v): VERTEX_OPS[ops[v]] for v in range(1, n - 1)}
    for u, v in np.argwhere(m == 1).tolist():
        if u == 0:
            op = PROJECTION
        elif v == n - 1:
            op = CONCAT
        else:
            op = SKIP
        edges[(node_out[u], node_in[v])] = op
    return N_NODES, edges


def format_nb101(n_nodes: int, edges: dict[tuple[int, int], Op]) -> tuple[list[list[int]], list[str]]:
    """The pruned ``(matrix, ops)`` of a DAG in the layout of :func:`parse_nb101` (the inverse).

    Raises :class:`~nasplug.errors.ArchError` when the DAG is not an NB101 cell in that layout.
    """
    if n_nodes != N_NODES:
        raise ArchError(f"an NB101 cell has {N_NODES} nodes in nasplug's layout, got {n_nodes}")

    def vertex(node: int, side: str) -> int:
        if node == 0 and side == "out":
            return 0
        if node == OUTPUT_NODE and side == "in":
            return MAX_VERTICES - 1
        if 0 < node < OUTPUT_NODE and node % 2 == (0 if side == "out" else 1):
            return (node + 1) // 2
        raise ValueError

    ops_of: dict[int, str] = {}
    raw: list[tuple[int, int]] = []
    for (s, t), op in edges.items():
        try:
            if s % 2 == 1 and t == s + 1 and s < OUTPUT_NODE:
                if op not in _OP_NAME:
                    raise ValueError
                ops_of[t // 2] = _OP_NAME[op]
                continue
            u, v = vertex(s, "out"), vertex(t, "in")
            expected = PROJECTION if u == 0 else CONCAT if v == MAX_VERTICES - 1 else SKIP
            if op != expected:
                raise ValueError
        except ValueError:
            raise ArchError(f"not an NB101 cell in nasplug's layout: edge ({s}, {t}) with op "
                            f"{op.name!r}") from None
        raw.append((u, v))
    for u, v in raw:
        for w in (u, v):
            if 0 < w < MAX_VERTICES - 1 and w not in ops_of:
                raise ArchError(f"not an NB101 cell in nasplug's layout: vertex {w} has edges but no op")
    matrix = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int64)
    for u, v in raw:
        matrix[u, v] = 1
    names = [INPUT] + [ops_of.get(v, "conv3x3-bn-relu") for v in range(1, MAX_VERTICES - 1)] + [OUTPUT]
    m, ops = prune(matrix, names)
    return m.tolist(), ops


# ---------------------------------------------------------------------- NASLib tuple, JSON text
def parse_naslib_nb101(values: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """NASLib's tuple (``n² + n`` integers: the matrix row-major, then one op index per vertex) →
    ``(matrix, ops)`` (not yet pruned)."""
    values = list(values)
    n = int(round((np.sqrt(1 + 4 * len(values)) - 1) / 2))
    if n * n + n != len(values) or n < 3:
        raise ArchError(f"a NASLib NB101 tuple has n²+n integers (56 for 7 vertices), got {len(values)}")
    ops = []
    for pos, index in enumerate(values[n * n:]):
        if not 0 <= index < len(NASLIB_OPS):
            raise ArchError(f"NASLib NB101 op index {index} at position {n * n + pos} is out of range 0..4 "
                            "(0 input, 1 output, 2 maxpool3x3, 3 conv1x1-bn-relu, 4 conv3x3-bn-relu)")
        ops.append(NASLIB_OPS[index])
    return np.asarray(values[: n * n]).reshape(n, n), ops


def format_naslib_nb101(matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> tuple[int, ...]:
    """NASLib's 56-integer tuple of a pruned cell, padded to 7 vertices as NASLib does."""
    m = np.asarray(matrix)
    n = len(m)
    full = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int64)
    index = list(range(n - 1)) + [MAX_VERTICES - 1]
    full[np.ix_(index, index)] = m
    names = list(ops[:-1]) + ["conv3x3-bn-relu"] * (MAX_VERTICES - n) + [OUTPUT]
    return tuple(full.ravel().tolist()) + tuple(NASLIB_OPS.index(o) for o in names)


def format_spec_json(matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> str:
    """The cell as one line of JSON, ``{"matrix": [[...]], "ops": [...]}`` (ModelSpec's fields)."""
    return json.dumps({"matrix": [list(map(int, row)) for row in matrix], "ops": list(ops)})


# ---------------------------------------------------------------------- batched
_PAIRS = all_pairs(N_NODES)
_COL = np.full((N_NODES, N_NODES), -1, dtype=np.int64)
for _e, (_s, _t) in enumerate(_PAIRS):
    _COL[_s, _t] = _e
_RAW = [(u, v) for v in range(1, MAX_VERTICES) for u in range(v)]


def batch_arrays(matrices: np.ndarray, ops: np.ndarray) -> tuple[ArchBatch, np.ndarray]:
    """Prune and lay out many 7-vertex cells at once, without per-cell objects.

    Parameters
    ----------
    matrices
        ``(B, 7, 7)`` 0/1 adjacency matrices (only the strict upper triangle is read).
    ops
        ``(B, 5)`` interior op indices into ``("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")``.

    Returns
    -------
    The :class:`~nasplug.graph.ArchBatch` of the 12-node DAGs (the same as :func:`parse_nb101` row by
    row) and a ``(B,)`` bool mask of the cells inside the benchmark's domain (an input→output path,
    ≤ 9 edges after pruning). Rows outside it get no edges.
    """
    a = np.asarray(matrices).astype(bool)
    ops = np.asarray(ops, dtype=np.int64)
    b, n = a.shape[0], MAX_VERTICES
    forward = np.zeros((b, n), dtype=bool)
    forward[:, 0] = True
    for v in range(1, n):
        forward[:, v] = (forward[:, :v] & a[:, :v, v]).any(axis=1)
    backward = np.zeros((b, n), dtype=bool)
    backward[:, n - 1] = True
    for u in range(n - 2, -1, -1):
        backward[:, u] = (backward[:, u + 1:] & a[:, u, u + 1:]).any(axis=1)
    keep = forward & backward
    edge = a & keep[:, :, None] & keep[:, None, :]
    valid = forward[:, n - 1] & (edge.sum(axis=(1, 2)) <= MAX_EDGES)
    edge &= valid[:, None, None]
    keep &= valid[:, None]
    position = np.cumsum(keep[:, 1: n - 1], axis=1)  # compacted position of each kept interior vertex
    src = np.zeros((b, n), dtype=np.int64)
    src[:, 1: n - 1] = 2 * position
    dst = np.full((b, n), OUTPUT_NODE, dtype=np.int64)
    dst[:, 1: n - 1] = 2 * position - 1
    roles = np.zeros((b, len(_PAIRS)), dtype=np.int8)
    kernels = np.ones((b, len(_PAIRS)), dtype=np.int16)
    rows = np.arange(b)
    for u, v in _RAW:
        on = edge[:, u, v]
        if not on.any():
            continue
        role = ROLE_CODES["param"] if u == 0 else ROLE_CODES["concat"] if v == n - 1 else ROLE_CODES["skip"]
        roles[rows[on], _COL[src[on, u], dst[on, v]]] = role
    op_roles = np.array([ROLE_CODES[o.role] for o in VERTEX_OPS.values()], dtype=np.int8)
    op_kernels = np.array([o.kernel_size for o in VERTEX_OPS.values()], dtype=np.int16)
    for v in range(1, n - 1):
        on = keep[:, v]
        cols = _COL[2 * position[on, v - 1] - 1, 2 * position[on, v - 1]]
        roles[rows[on], cols] = op_roles[ops[on, v - 1]]
        kernels[rows[on], cols] = op_kernels[ops[on, v - 1]]
    return ArchBatch(N_NODES, _PAIRS, roles, kernels), valid


def batch_specs(specs: Sequence) -> ArchBatch:
    """One batch of many ``(matrix, ops)`` specs (raw or pruned, any size up to 7 vertices after
    pruning), pruned and laid out by :func:`batch_arrays` — per row only a light array copy.

    Raises :class:`~nasplug.errors.ArchError` naming the first bad row and its problem.
    """
    index = {name: i for i, name in enumerate(VERTEX_OPS)}
    mats = np.zeros((len(specs), MAX_VERTICES, MAX_VERTICES), dtype=np.int64)
    ops = np.zeros((len(specs), MAX_VERTICES - 2), dtype=np.int64)
    for row, (matrix, names) in enumerate(specs):
        try:
            m = np.asarray(matrix)
            n = len(m)
            if n > MAX_VERTICES or m.shape != (n, n) or len(names) != n or names[0] != INPUT \
                    or names[-1] != OUTPUT:
                m, names = prune(matrix, names)
                n = len(m)
            keep = [*range(n - 1), MAX_VERTICES - 1]
            mats[row][np.ix_(keep, keep)] = m
            ops[row, : n - 2] = [index[name] for name in names[1:-1]]
        except (ArchError, KeyError, ValueError, TypeError, IndexError) as err:
            raise ArchError(f"row {row}: {_problem(matrix, names, err)}") from None
    bad = ((mats != 0) & (mats != 1)).any(axis=(1, 2)) | (np.tril(mats) != 0).any(axis=(1, 2))
    batch, valid = batch_arrays(mats, ops)
    bad |= ~valid
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ArchError(f"row {row}: {_problem(*specs[row], 'not an NB101 cell')}")
    return batch


def _problem(matrix, ops, fallback: object) -> str:
    """What :func:`prune` says is wrong with a spec (``fallback`` if it accepts it)."""
    try:
        prune(matrix, ops)
    except ArchError as err:
        return str(err)
    return str(fallback)
