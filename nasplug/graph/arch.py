"""Architectures as DAGs: :class:`ArchGraph`, an immutable DAG with its codecs and canonical form.

An architecture is a DAG over nodes ``0..H`` in topological order: node 0 is the input, node H the
output, every node is the *sum* of its incoming edges, and every edge ``(s, t)``, ``s < t``, carries
one op from :mod:`nasplug.ops`. Zero edges are simply absent. A node with ``concat`` in-edges
stacks one block of its channels from each of their sources instead of adding them (NAS-Bench-101
and DARTS cells, whose layouts are in :mod:`nasplug.graph.nb101` and :mod:`nasplug.graph.darts`).
This is the abstraction of both [C22] (W. Chen et al., *Deep Architecture Connectivity Matters for
Its Convergence*, NeurIPS 2022) and [C24] (W. Chen et al., *Principled Architecture-aware Scaling
of Hyperparameters*, ICLR 2024).

Everything in this package is pure Python + numpy + networkx, so ``import nasplug`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np

from nasplug.checks import format_count
from nasplug.errors import ArchError
from nasplug.graph import canonical, codecs, darts, nb101
from nasplug.graph.batch import ArchBatch
from nasplug.graph.paths import PathStats, depth_histograms, live_edge_mask
from nasplug.ops import CONCAT, DAG_CODE_OPS, NB101_CONV1X1, NB101_CONV3X3, ZERO, Op, get_op


class ArchGraph:
    """An immutable architecture DAG.

    Parameters
    ----------
    n_nodes
        Number of nodes ``H + 1`` (at least 2: input and output).
    edges
        Mapping ``(source, target) -> op`` (an :class:`~nasplug.ops.Op` or op name) with
        ``0 <= source < target < n_nodes``. Zero ops may be given; they are dropped.

    Examples
    --------
    >>> arch = ArchGraph.parse("2_21_112")
    >>> arch.path_stats().effective_depth
    1.25
    >>> ArchGraph(3, {(0, 1): "linear", (1, 2): "linear", (0, 2): "skip"}).to_dag_code()
    '2_12'
    """

    __slots__ = ("_n_nodes", "_edges")

    def __init__(self, n_nodes: int, edges: Mapping[tuple[int, int], Op | str]):
        if not isinstance(n_nodes, (int, np.integer)) or n_nodes < 2:
            raise ArchError(f"an architecture needs at least 2 nodes (input, output), got {n_nodes!r}")
        clean: dict[tuple[int, int], Op] = {}
        for (s, t), op in edges.items():
            if not (0 <= s < t < n_nodes):
                raise ArchError(
                    f"edge ({s}, {t}) is invalid for {n_nodes} nodes: need 0 <= source < target < "
                    f"{n_nodes} (nodes are in topological order, so a backward edge would be a cycle)"
                )
            op = op if isinstance(op, Op) else get_op(op)
            if not op.is_zero:
                clean[(int(s), int(t))] = op
        self._n_nodes = int(n_nodes)
        self._edges = tuple(sorted(clean.items()))

    # ------------------------------------------------------------------ basic accessors
    @property
    def n_nodes(self) -> int:
        return self._n_nodes

    @property
    def output(self) -> int:
        return self._n_nodes - 1

    @property
    def edge_items(self) -> tuple[tuple[tuple[int, int], Op], ...]:
        """The non-zero edges as a sorted tuple of ``((source, target), Op)`` (no copy)."""
        return self._edges

    @property
    def edges(self) -> dict[tuple[int, int], Op]:
        """The non-zero edges, ``{(source, target): Op}``, sorted."""
        return dict(self._edges)

    def op(self, source: int, target: int) -> Op:
        """The op on an edge (:data:`~nasplug.ops.ZERO` when absent)."""
        return self.edges.get((source, target), ZERO)

    @property
    def graph(self) -> nx.DiGraph:
        """A frozen ``networkx.DiGraph`` of the non-zero edges; the ``op`` attribute holds the op name."""
        g = nx.DiGraph()
        g.add_nodes_from(range(self._n_nodes))
        g.add_edges_from((s, t, {"op": op.name}) for (s, t), op in self._edges)
        return nx.freeze(g)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ArchGraph)
            and self._n_nodes == other._n_nodes
            and self._edges == other._edges
        )

    def __hash__(self) -> int:
        return hash((self._n_nodes, self._edges))

    def __reduce__(self):  # compact pickles for multiprocessing / Ray
        return (ArchGraph, (self._n_nodes, {e: op.name for e, op in self._edges}))

    def __str__(self) -> str:
        """The cell's most specific text form: a DAG code, an NB101 spec (JSON), a DARTS genotype
        (or one cell's pairs), else the NB201 string form (any DAG; ``ArchGraph.parse`` reads all)."""
        if all(op in DAG_CODE_OPS for _, op in self._edges):
            return self.to_dag_code()
        ops = {op for _, op in self._edges}
        try:
            if self._n_nodes == nb101.N_NODES and ops & {NB101_CONV1X1, NB101_CONV3X3}:
                return nb101.format_spec_json(*self.to_nb101())
            if self._n_nodes in (darts.CELL_NODES, darts.PAIR_NODES) and CONCAT in ops:
                return str(self.to_darts())
        except ArchError:
            pass
        return self.to_nb201()

    def __repr__(self) -> str:
        return f"ArchGraph.parse({str(self)!r})"

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, arch: Any) -> ArchGraph:
        """Parse any supported encoding.

        Accepts an NB201 string (``|nor_conv_3x3~0|+|...|``), a [C22] DAG code (``2_21_112``), a
        NASLib tuple (NB201: ``(4, 3, 3, 3, 2, 3)``; NB101: 56 integers), an NB101 spec (``{"matrix":
        ..., "ops": ...}`` as a dict or JSON, or a ``(matrix, ops)`` pair), a DARTS genotype (the object,
        its printed ``Genotype(...)`` text, ``{"normal": ..., "reduce": ...}``, NASLib's compact form,
        or one cell's list of 8 ``(op, input)`` pairs), or an ArchGraph. Text forms may be given as
        the objects they print.
        """
        if isinstance(arch, ArchGraph):
            return arch
        if isinstance(arch, dict) or (hasattr(arch, "normal") and hasattr(arch, "reduce")):
            return cls._from_mapping(arch)
        if isinstance(arch, (tuple, list, np.ndarray)):
            return cls._from_sequence(arch)
        if not isinstance(arch, str):
            raise ArchError(f"cannot parse an architecture from {type(arch).__name__}")
        text = arch.strip()
        if not text:
            raise ArchError("empty architecture string")
        if text.startswith("|"):
            return cls.from_nb201(text)
        if text.startswith(("Genotype(", "{")):
            return cls._from_mapping(text)
        if text[0] in "([":
            if any(c in text[1:] for c in "([\'\""):
                return cls._from_sequence(darts._literal(text))
            return cls.from_naslib(codecs.parse_int_tuple(text))
        if text[0].isdigit():
            return cls.from_dag_code(text)
        raise ArchError(
            f"unrecognised architecture {text!r}: expected an NB201 string '|op~0|+|op~0|op~1|+...', "
            "a DAG code like '2_21_112', a NASLib tuple like '(4, 3, 3, 3, 2, 3)', an NB101 spec "
            "'{\"matrix\": ..., \"ops\": ...}' or a DARTS 'Genotype(normal=..., reduce=...)'"
        )

    @classmethod
    def _from_mapping(cls, value: Any) -> ArchGraph:
        """An NB101 spec or a DARTS genotype given as a dict, JSON text, or genotype object/text."""
        if isinstance(value, str) and value.startswith("{"):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = darts._literal(value)
        if isinstance(value, dict) and ("matrix" in value or "ops" in value):
            if "matrix" not in value or "ops" not in value:
                raise ArchError("an NB101 spec needs both 'matrix' and 'ops'")
            return cls.from_nb101(value["matrix"], value["ops"])
        return cls.from_darts(value)

    @classmethod
    def _from_sequence(cls, value: Any) -> ArchGraph:
        """A flat NASLib tuple, an NB101 ``(matrix, ops)`` pair, or a DARTS pair / compact / cell list."""
        items = list(value)
        if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in items):
            return cls.from_naslib(items)
        if len(items) == 2 and np.ndim(items[0]) == 2 and all(isinstance(o, str) for o in items[1]):
            return cls.from_nb101(items[0], items[1])
        if len(items) == 8:
            return cls.from_darts(items, cell="normal")
        return cls.from_darts(items)

    @classmethod
    def from_nb201(cls, text: str) -> ArchGraph:
        """Parse an NB201 string: group ``j`` lists the inputs ``op~source`` of node ``j``."""
        return cls(*codecs.parse_nb201(text))

    @classmethod
    def from_dag_code(cls, code: str) -> ArchGraph:
        """Parse a [C22] DAG code: ``_``-separated groups, group ``j`` has one digit per source
        ``0..j-1`` (0 zero, 1 skip, 2 linear). ``2_02_002`` is a 3-layer chain."""
        return cls(*codecs.parse_dag_code(code))

    @classmethod
    def from_naslib(cls, ops: Sequence[int]) -> ArchGraph:
        """Parse NASLib's NB201 op-index tuple (0 skip, 1 none, 2 conv3x3, 3 conv1x1, 4 avgpool),
        positions = edges (1,2),(1,3),(1,4),(2,3),(2,4),(3,4) of NASLib's 1-based nodes."""
        return cls(*codecs.parse_naslib(ops))

    @classmethod
    def from_nb101(cls, matrix: Any, ops: Sequence[str]) -> ArchGraph:
        """A NAS-Bench-101 cell from its ``ModelSpec`` form: an ``n×n`` upper-triangular 0/1 matrix
        and ``n`` vertex ops (``input``, ``conv3x3-bn-relu``, ``conv1x1-bn-relu``, ``maxpool3x3``,
        ``output``). Pruned by the benchmark's rule first; the DAG layout (12 nodes, 1×1 input
        projections, concatenating output) is in :mod:`nasplug.graph.nb101`. Raises
        :class:`ArchError` naming the problem (size, triangularity, op, path, > 7 vertices, > 9 edges)."""
        return cls(*nb101.parse_nb101(matrix, ops))

    @classmethod
    def from_darts(cls, genotype: Any, cell: str | None = None) -> ArchGraph:
        """A DARTS / NAS-Bench-301 genotype as the pair DAG (normal cell, then reduction cell: 31
        nodes), or with ``cell="normal"``/``"reduce"`` one cell's 16-node DAG. Accepts the forms of
        :func:`nasplug.graph.darts.parse_genotype` (and, with ``cell``, one cell's 8 pairs); layout
        in :mod:`nasplug.graph.darts`."""
        return cls(*darts.parse_darts(genotype, cell))

    @classmethod
    def from_networkx(cls, graph: nx.DiGraph, op_attr: str = "op") -> ArchGraph:
        """Build from any user DAG whose edges carry an op name (or :class:`Op`) in ``op_attr``.

        Node labels may be anything hashable; nodes are renumbered in a topological order (ties
        broken by label). The DAG must be acyclic with exactly one source (the input) and one sink
        (the output); edges with the zero op count for that structure, so a node that only receives
        zero edges is an allowed dead node rather than a second input.
        """
        if not isinstance(graph, nx.DiGraph) or graph.is_multigraph():
            raise ArchError("from_networkx needs a networkx.DiGraph (one op per edge)")
        if graph.number_of_nodes() < 2:
            raise ArchError("an architecture needs at least 2 nodes (input, output)")
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle:
            raise ArchError(f"the graph has a cycle: {' -> '.join(str(u) for u, _ in cycle)}")
        sources = [v for v in graph if graph.in_degree(v) == 0]
        sinks = [v for v in graph if graph.out_degree(v) == 0]
        if len(sources) != 1 or len(sinks) != 1:
            raise ArchError(
                f"an architecture needs exactly one input (no in-edges) and one output (no "
                f"out-edges); got inputs {sources} and outputs {sinks}"
            )
        order = list(nx.lexicographical_topological_sort(graph, key=str))
        index = {v: i for i, v in enumerate(order)}
        edges = {}
        for u, v, data in graph.edges(data=True):
            if op_attr not in data:
                raise ArchError(f"edge {u!r} -> {v!r} has no {op_attr!r} attribute")
            edges[(index[u], index[v])] = data[op_attr]
        return cls(len(order), edges)

    # ------------------------------------------------------------------ encoding
    def to_nb201(self) -> str:
        """The NB201 string, listing every source of every node (``none`` for zero edges)."""
        return codecs.format_nb201(self._n_nodes, self.edges)

    def to_dag_code(self) -> str:
        """The [C22] DAG code; only for zero/skip/linear ops (see :meth:`abstract` for others)."""
        return codecs.format_dag_code(self._n_nodes, self.edges)

    def to_naslib(self) -> tuple[int, ...]:
        """NASLib's op-index tuple: 6 indices for a 4-node cell with NB201 ops, NASLib's 56-integer
        NB101 tuple (7×7 matrix, 7 op indices; smaller cells padded as NASLib pads) for an NB101 cell."""
        if self._n_nodes == nb101.N_NODES:
            return nb101.format_naslib_nb101(*self.to_nb101())
        return codecs.format_naslib(self._n_nodes, self.edges, str(self))

    def to_nb101(self) -> tuple[list[list[int]], list[str]]:
        """The pruned NAS-Bench-101 ``(matrix, ops)`` of a cell built by :meth:`from_nb101` (its
        inverse up to pruning); an :class:`ArchError` for any other DAG."""
        return nb101.format_nb101(self._n_nodes, self.edges)

    def to_darts(self) -> darts.Genotype | list[tuple[str, int]]:
        """The DARTS :class:`~nasplug.graph.darts.Genotype` of a pair DAG, or the 8 pairs of a one-cell
        DAG, built by :meth:`from_darts` (its inverse); an :class:`ArchError` for any other DAG."""
        return darts.format_darts(self._n_nodes, self.edges)

    def abstract(self) -> ArchGraph:
        """The MLP abstraction used by the theory network: every parameterized op becomes
        ``linear`` and every non-parameterized op (pooling) becomes ``skip`` [C22, C24]."""
        ops = {"param": DAG_CODE_OPS[2], "pool": DAG_CODE_OPS[1], "skip": DAG_CODE_OPS[1], "concat": CONCAT}
        return ArchGraph(self._n_nodes, {e: ops[op.role] for e, op in self._edges})

    # ------------------------------------------------------------------ semantics
    def live_edges(self) -> dict[tuple[int, int], Op]:
        """Edges on at least one input→output path; the others cannot affect the output."""
        batch = ArchBatch.from_archs([self])
        live = {p for p, keep in zip(batch.pairs, live_edge_mask(batch)[0]) if keep}
        return {e: op for e, op in self._edges if e in live}

    def canonical_form(self) -> str:
        """A readable canonical expression of the output, e.g. ``nor_conv_3x3(x)+x``; ``0`` when
        no path reaches the output (rules in :mod:`nasplug.graph.canonical`). Its length can grow
        exponentially with the DAG's size (a complete DAG of skips is ``x+…+x``, ``2^(N−2)`` terms):
        beyond :data:`~nasplug.graph.canonical.CANONICAL_FORM_LIMIT` characters it raises an
        :class:`ArchError` giving the length (:meth:`canonical_form_length`), without writing it."""
        length = self.canonical_form_length()
        if length > canonical.CANONICAL_FORM_LIMIT:
            raise ArchError(
                f"the canonical form of this {self._n_nodes}-node cell would be {format_count(length)} "
                f"characters long (limit {canonical.CANONICAL_FORM_LIMIT:,}); compare cells by "
                "canonical_key()"
            )
        return canonical.fold(self._n_nodes, self._edges, canonical.TEXT)

    def canonical_form_length(self) -> int:
        """The exact number of characters of :meth:`canonical_form`, counted by dynamic programming
        without writing it (an exact Python int; polynomial in the number of edges)."""
        return canonical.fold(self._n_nodes, self._edges, canonical.LENGTH)

    def canonical_key(self) -> str:
        """A compact key (32 hex digits), equal exactly for architectures that compute the same
        function (up to the weights): a BLAKE2b digest of :meth:`canonical_form`'s structure, a sum
        hashed as its distinct terms with their multiplicities, so its cost is polynomial in the
        number of edges for any DAG (:func:`nasplug.graph.canonical.fold`)."""
        return canonical.fold(self._n_nodes, self._edges, canonical.DIGEST)

    def path_stats(self) -> PathStats:
        """Path statistics of [C22 §4] by dynamic programming, with exact integer counts."""
        hist = depth_histograms(ArchBatch.from_archs([self]), dtype=object)[0]
        return PathStats.from_histogram(hist)


def as_batch(archs: Iterable[ArchGraph | str] | ArchBatch) -> ArchBatch:
    """Accept an :class:`ArchBatch`, or any iterable of architectures (or their encodings) with one
    node count. A list of NB201 strings is read straight into arrays without building a cell
    object per string (:func:`~nasplug.graph.codecs.nb201_op_indices`)."""
    if isinstance(archs, ArchBatch):
        return archs
    archs = list(archs)
    fast = batch_of_encodings(archs)
    return fast if fast is not None else ArchBatch.from_archs(ArchGraph.parse(a) for a in archs)


def batch_of_encodings(archs: list) -> ArchBatch | None:
    """The batch of a list of cells all in one benchmark's own form, read without a cell object per
    row — NB201 strings (:func:`~nasplug.graph.codecs.nb201_op_indices`), NB101 specs as
    ``{"matrix", "ops"}`` dicts or ``(matrix, ops)`` pairs (:func:`~nasplug.graph.nb101.batch_specs`),
    DARTS genotypes (:func:`~nasplug.graph.darts.batch_genotypes`); ``None`` for anything else.
    Raises :class:`ArchError` naming the first bad row."""
    if not archs:
        return None
    first = archs[0]
    if isinstance(first, str) and first.startswith("|"):  # every row is checked by the codec
        return ArchBatch.from_op_indices(*codecs.nb201_op_indices(archs))
    elif isinstance(first, str) and first.startswith("Genotype(") or isinstance(first, darts.Genotype):
        if all(isinstance(a, darts.Genotype) or isinstance(a, str) and a.startswith("Genotype(")
               for a in archs):
            return darts.batch_genotypes(archs)
    elif isinstance(first, str) and first.startswith('{"matrix"'):
        if all(isinstance(a, str) and a.startswith('{"matrix"') for a in archs):
            specs = []
            for row, text in enumerate(archs):
                try:
                    spec = json.loads(text)
                    specs.append((spec["matrix"], spec["ops"]))
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ArchError(f"row {row}: {text[:60]!r} is not an NB101 spec "
                                    '{"matrix": ..., "ops": ...}') from None
            return nb101.batch_specs(specs)
    elif isinstance(first, dict) and "matrix" in first:
        if all(isinstance(a, dict) and "matrix" in a and "ops" in a for a in archs):
            return nb101.batch_specs([(a["matrix"], a["ops"]) for a in archs])
    return None
