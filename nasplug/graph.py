"""Architectures as DAGs: :class:`ArchGraph`, its codecs, canonical form and path statistics.

An architecture is a DAG over nodes ``0..H`` in topological order: node 0 is the input, node H the
output, every node is the *sum* of its incoming edges, and every edge ``(s, t)``, ``s < t``, carries
one op from :mod:`nasplug.ops`. Zero edges are simply absent. This is the abstraction of both
[C22] (W. Chen et al., *Deep Architecture Connectivity Matters for Its Convergence*, NeurIPS 2022)
and [C24] (W. Chen et al., *Principled Architecture-aware Scaling of Hyperparameters*, ICLR 2024).

Everything in this module is pure Python + numpy + networkx, so ``import nasplug`` stays fast.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from nasplug.errors import ArchError
from nasplug.ops import DAG_CODE_OPS, NASLIB_OPS, ROLE_CODES, ZERO, Op, get_op

#: NASLib's order of the six NB201 edges, as (source, target) with 0-based nodes.
NASLIB_EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))


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
    >>> arch.path_stats().mean_depth
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
        if all(op in DAG_CODE_OPS for _, op in self._edges):
            return self.to_dag_code()
        return self.to_nb201()

    def __repr__(self) -> str:
        return f"ArchGraph.parse({str(self)!r})"

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, arch: str | Sequence[int] | ArchGraph) -> ArchGraph:
        """Parse any supported encoding.

        Accepts an NB201 string (``|nor_conv_3x3~0|+|...|``), a [C22] DAG code (``2_21_112``), a
        NASLib op-index tuple (``(4, 3, 3, 3, 2, 3)``, as a tuple or its text), or an ArchGraph.
        """
        if isinstance(arch, ArchGraph):
            return arch
        if isinstance(arch, (tuple, list, np.ndarray)):
            return cls.from_naslib(arch)
        if not isinstance(arch, str):
            raise ArchError(f"cannot parse an architecture from {type(arch).__name__}")
        text = arch.strip()
        if not text:
            raise ArchError("empty architecture string")
        if text.startswith("|"):
            return cls.from_nb201(text)
        if text[0] in "([":
            return cls.from_naslib(_parse_int_tuple(text))
        if text[0].isdigit():
            return cls.from_dag_code(text)
        raise ArchError(
            f"unrecognised architecture {text!r}: expected an NB201 string '|op~0|+|op~0|op~1|+...', "
            "a DAG code like '2_21_112' or a NASLib tuple like '(4, 3, 3, 3, 2, 3)'"
        )

    @classmethod
    def from_nb201(cls, text: str) -> ArchGraph:
        """Parse an NB201 string: group ``j`` lists the inputs ``op~source`` of node ``j``."""
        text = text.strip()
        edges: dict[tuple[int, int], Op] = {}
        groups = text.split("+")
        offset = 0
        for target, group in enumerate(groups, start=1):
            if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
                raise ArchError(
                    f"malformed NB201 string: group {group!r} at position {offset} (node {target}) "
                    "must look like |op~source|op~source|"
                )
            pos = offset + 1
            for token in group[1:-1].split("|"):
                m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)~(\d+)", token)
                if m is None:
                    raise ArchError(
                        f"malformed NB201 string: token {token!r} at position {pos} (node {target}) "
                        "must be op~source, e.g. nor_conv_3x3~0"
                    )
                source = int(m.group(2))
                if source >= target:
                    raise ArchError(
                        f"malformed NB201 string: token {token!r} at position {pos}: node {target} "
                        f"can only take inputs from nodes 0..{target - 1}"
                    )
                if (source, target) in edges:
                    raise ArchError(
                        f"malformed NB201 string: token {token!r} at position {pos}: edge "
                        f"{source}->{target} is given twice"
                    )
                try:
                    edges[(source, target)] = get_op(m.group(1))
                except ArchError as err:
                    raise ArchError(f"{err} (token {token!r} at position {pos})") from None
                pos += len(token) + 1
            offset += len(group) + 1
        return cls(len(groups) + 1, edges)

    @classmethod
    def from_dag_code(cls, code: str) -> ArchGraph:
        """Parse a [C22] DAG code: ``_``-separated groups, group ``j`` has one digit per source
        ``0..j-1`` (0 zero, 1 skip, 2 linear). ``2_02_002`` is a 3-layer chain."""
        code = code.strip()
        edges: dict[tuple[int, int], Op] = {}
        pos = 0
        for target, group in enumerate(code.split("_"), start=1):
            if len(group) != target:
                raise ArchError(
                    f"malformed DAG code {code!r}: group {group!r} at position {pos} is for node "
                    f"{target} and needs exactly {target} digits (one per source node)"
                )
            for source, digit in enumerate(group):
                if digit not in "012":
                    raise ArchError(
                        f"malformed DAG code {code!r}: {digit!r} at position {pos + source} is not "
                        "an op digit (0 zero, 1 skip, 2 linear)"
                    )
                edges[(source, target)] = DAG_CODE_OPS[int(digit)]
            pos += len(group) + 1
        return cls(code.count("_") + 2, edges)

    @classmethod
    def from_naslib(cls, ops: Sequence[int]) -> ArchGraph:
        """Parse NASLib's NB201 op-index tuple (0 skip, 1 none, 2 conv3x3, 3 conv1x1, 4 avgpool),
        positions = edges (1,2),(1,3),(1,4),(2,3),(2,4),(3,4) of NASLib's 1-based nodes."""
        ops = list(ops)
        if len(ops) != len(NASLIB_EDGES):
            raise ArchError(f"a NASLib NB201 tuple has 6 op indices, got {len(ops)}: {tuple(ops)}")
        edges = {}
        for pos, (edge, index) in enumerate(zip(NASLIB_EDGES, ops)):
            if not isinstance(index, (int, np.integer)) or not 0 <= index < len(NASLIB_OPS):
                raise ArchError(
                    f"NASLib op index {index!r} at position {pos} is out of range 0..4 "
                    "(0 skip, 1 none, 2 conv3x3, 3 conv1x1, 4 avgpool)"
                )
            edges[edge] = NASLIB_OPS[index]
        return cls(4, edges)

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
        edges = self.edges
        return "+".join(
            "|" + "|".join(f"{edges.get((s, t), ZERO).name}~{s}" for s in range(t)) + "|"
            for t in range(1, self._n_nodes)
        )

    def to_dag_code(self) -> str:
        """The [C22] DAG code; only for zero/skip/linear ops (see :meth:`abstract` for others)."""
        digits = {op: str(i) for i, op in enumerate(DAG_CODE_OPS)}
        edges = self.edges
        for op in edges.values():
            if op not in digits:
                raise ArchError(
                    f"op {op.name!r} has no DAG-code digit (0 zero, 1 skip, 2 linear); "
                    "use arch.abstract() for the MLP abstraction"
                )
        return "_".join(
            "".join(digits[edges.get((s, t), ZERO)] for s in range(t))
            for t in range(1, self._n_nodes)
        )

    def to_naslib(self) -> tuple[int, ...]:
        """NASLib's op-index tuple; only for 4-node cells with NB201 ops."""
        if self._n_nodes != 4 or any((s, t) not in NASLIB_EDGES for s, t in self.edges):
            raise ArchError("only 4-node NB201 cells have a NASLib tuple")
        edges = self.edges
        try:
            return tuple(NASLIB_OPS.index(edges.get(e, ZERO)) for e in NASLIB_EDGES)
        except ValueError:
            raise ArchError(f"{self} uses an op outside NB201's vocabulary") from None

    def abstract(self) -> ArchGraph:
        """The MLP abstraction used by the theory network: every parameterized op becomes
        ``linear`` and every non-parameterized op (pooling) becomes ``skip`` [C22, C24]."""
        ops = {"param": DAG_CODE_OPS[2], "pool": DAG_CODE_OPS[1], "skip": DAG_CODE_OPS[1]}
        return ArchGraph(self._n_nodes, {e: ops[op.role] for e, op in self._edges})

    # ------------------------------------------------------------------ semantics
    def live_edges(self) -> dict[tuple[int, int], Op]:
        """Edges on at least one input→output path; the others cannot affect the output."""
        batch = ArchBatch.from_archs([self])
        live = {p for p, keep in zip(batch.pairs, live_edge_mask(batch)[0]) if keep}
        return {e: op for e, op in self._edges if e in live}

    def _canonical_terms(self, leaf: str, combine) -> Any:
        """Bottom-up canonical expression of the output node.

        A node is a multiset of terms (sums are commutative and associative); a skip edge adds its
        source's terms unchanged (skips are transparent); any other op adds one term
        ``combine(op, source)``. Dead edges never reach the output's expression.
        """
        terms: list[list[str]] = [[leaf]] + [[] for _ in range(self._n_nodes - 1)]
        value: list[str | None] = [None] * self._n_nodes
        for (s, t), op in self._edges:
            if not terms[s]:
                continue  # a node with no path from the input is zero
            if op.is_skip:
                terms[t].extend(terms[s])
            else:
                if value[s] is None:
                    value[s] = combine(None, sorted(terms[s]))
                terms[t].append(combine(op.name, value[s]))
        return sorted(terms[self.output])

    def canonical_form(self) -> str:
        """A readable canonical expression of the output, e.g. ``nor_conv_3x3(x)+x``; ``0`` when
        no path reaches the output. Its length can grow exponentially with the DAG's size."""

        def combine(op, inner):
            return "+".join(inner) if op is None else f"{op}({inner})"

        return "+".join(self._canonical_terms("x", combine)) or "0"

    def canonical_key(self) -> str:
        """A compact key, equal exactly for architectures that compute the same function (up to
        the weights): the digest of :meth:`canonical_form`'s structure, built bottom-up so its
        cost stays linear in the number of edges."""

        def digest(text: str) -> str:
            return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

        def combine(op, inner):
            return digest("+".join(inner)) if op is None else digest(f"{op}({inner})")

        return digest("+".join(self._canonical_terms(digest("x"), combine)))

    def path_stats(self) -> PathStats:
        """Path statistics of [C22 §4] by dynamic programming, with exact integer counts."""
        hist = depth_histograms(ArchBatch.from_archs([self]), dtype=object)[0]
        return PathStats.from_histogram(hist)


# ====================================================================== path statistics
@dataclass(frozen=True)
class PathStats:
    """Statistics of the input→output paths (paths through zero edges do not exist).

    Attributes
    ----------
    num_paths
        ``P``, the number of input→output paths.
    depth_histogram
        ``depth_histogram[d]`` = number of paths with ``d`` parameterized edges.
    mean_depth
        Effective depth ``d̄ = Σ_p d_p / P`` (0 without paths).
    effective_width
        Effective width ``m̄ = #{p : d_p > 0} / d̄`` (0 when ``d̄ = 0``).
    max_depth
        Largest ``d_p`` (−1 without paths).
    sum_depth_cubed
        ``Σ_p d_p³``, the path sum of the maximal-learning-rate rule [C24 eq. 8].
    """

    num_paths: int
    depth_histogram: tuple[int, ...]
    mean_depth: float
    effective_width: float
    max_depth: int
    sum_depth_cubed: int

    @classmethod
    def from_histogram(cls, hist: Sequence[int]) -> PathStats:
        hist = [int(h) for h in hist]
        last = max((d for d, h in enumerate(hist) if h), default=-1)
        hist = hist[: last + 1]
        num_paths = sum(hist)
        mean = sum(d * h for d, h in enumerate(hist)) / num_paths if num_paths else 0.0
        width = (num_paths - hist[0]) / mean if mean > 0 else 0.0
        cubes = sum(d**3 * h for d, h in enumerate(hist))
        return cls(num_paths, tuple(hist), mean, width, last, cubes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "num_paths": self.num_paths,
            "mean_depth": self.mean_depth,
            "effective_width": self.effective_width,
            "max_depth": self.max_depth,
            "sum_depth_cubed": self.sum_depth_cubed,
            "depth_histogram": list(self.depth_histogram),
        }


@dataclass(frozen=True)
class ArchBatch:
    """Many architectures with the same number of nodes as dense arrays, for vectorized scoring.

    ``roles[b, e]`` is the role code (:data:`nasplug.ops.ROLE_CODES`) of edge ``pairs[e]`` in
    architecture ``b``; ``kernel_sizes`` likewise. ``pairs`` lists every ``(s, t)``, ``s < t``, in
    order of target then source, so node ``t``'s in-edges are contiguous.
    """

    n_nodes: int
    pairs: tuple[tuple[int, int], ...]
    roles: np.ndarray
    kernel_sizes: np.ndarray

    def __len__(self) -> int:
        return self.roles.shape[0]

    @staticmethod
    def all_pairs(n_nodes: int) -> tuple[tuple[int, int], ...]:
        return tuple((s, t) for t in range(1, n_nodes) for s in range(t))

    @classmethod
    def from_archs(cls, archs: Iterable[ArchGraph]) -> ArchBatch:
        archs = list(archs)
        if not archs:
            raise ArchError("no architectures given")
        n = archs[0].n_nodes
        if any(a.n_nodes != n for a in archs):
            raise ArchError("all architectures of a batch need the same number of nodes")
        pairs = cls.all_pairs(n)
        col = {p: i for i, p in enumerate(pairs)}
        roles = np.zeros((len(archs), len(pairs)), dtype=np.int8)
        kernels = np.ones((len(archs), len(pairs)), dtype=np.int16)
        for b, arch in enumerate(archs):
            for edge, op in arch._edges:
                roles[b, col[edge]] = op.code
                kernels[b, col[edge]] = op.kernel_size
        return cls(n, pairs, roles, kernels)


def as_batch(archs: Iterable[ArchGraph | str] | ArchBatch) -> ArchBatch:
    """Accept an :class:`ArchBatch`, or any iterable of architectures (or their encodings)."""
    if isinstance(archs, ArchBatch):
        return archs
    return ArchBatch.from_archs(ArchGraph.parse(a) for a in archs)


def depth_histograms(batch: ArchBatch, dtype: Any = np.float64,
                     param_weights: np.ndarray | None = None) -> np.ndarray:
    """Histograms of path depths, ``(B, n_nodes)``: entry ``[b, d]`` counts the input→output paths
    of architecture ``b`` with ``d`` parameterized edges.

    Dynamic programming over the topological order — node ``t`` inherits the histograms of its
    sources, shifted by one for parameterized edges — so the cost is ``O(E · H)`` per architecture
    however many paths there are. ``dtype=object`` gives exact Python-int counts; float64 is exact
    up to 2**53 paths and is what batched scorers use.

    ``param_weights`` (``(B, E)``, optional) multiplies what each parameterized edge passes on, so
    entry ``[b, d]`` becomes ``Σ_p Π_{param e ∈ p} w_e`` over the paths of depth ``d`` (e.g. a
    path's share of the output variance, :func:`scorers.hparams.weighted_depth_histograms`).
    """
    n, size = batch.n_nodes, len(batch)
    hist = np.zeros((size, n, n), dtype=dtype)
    hist[:, 0, 0] = 1
    skip_like = (batch.roles == ROLE_CODES["skip"]) | (batch.roles == ROLE_CODES["pool"])
    param = batch.roles == ROLE_CODES["param"]
    weight = param if param_weights is None else np.where(param, param_weights, 0)
    for e, (s, t) in enumerate(batch.pairs):
        if skip_like[:, e].any():
            hist[:, t] += hist[:, s] * skip_like[:, e, None].astype(dtype)
        if param[:, e].any():
            hist[:, t, 1:] += hist[:, s, :-1] * weight[:, e, None].astype(dtype)
    return hist[:, n - 1]


def live_edge_mask(batch: ArchBatch) -> np.ndarray:
    """``(B, E)`` bool: edge ``pairs[e]`` is non-zero and lies on an input→output path.

    Two sweeps over the pairs (sorted by target): forward reachability from the input, then
    backward reachability to the output; an edge is live when its source is reached from the
    input and its target reaches the output.
    """
    n, pairs = batch.n_nodes, batch.pairs
    nonzero = batch.roles != ROLE_CODES["zero"]
    forward = np.zeros((len(batch), n), dtype=bool)
    forward[:, 0] = True
    for e, (s, t) in enumerate(pairs):
        forward[:, t] |= forward[:, s] & nonzero[:, e]
    backward = np.zeros((len(batch), n), dtype=bool)
    backward[:, n - 1] = True
    for e in range(len(pairs) - 1, -1, -1):
        s, t = pairs[e]
        backward[:, s] |= backward[:, t] & nonzero[:, e]
    sources = [s for s, _ in pairs]
    targets = [t for _, t in pairs]
    return nonzero & forward[:, sources] & backward[:, targets]


def path_stats_arrays(hist: np.ndarray) -> dict[str, np.ndarray]:
    """Vectorized :class:`PathStats` fields from a ``(B, D)`` float histogram array."""
    depths = np.arange(hist.shape[1], dtype=np.float64)
    num_paths = hist.sum(axis=1)
    total = hist @ depths
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(num_paths > 0, total / num_paths, 0.0)
        width = np.where(mean > 0, (num_paths - hist[:, 0]) / mean, 0.0)
    return {
        "num_paths": num_paths,
        "mean_depth": mean,
        "effective_width": width,
        "sum_depth_cubed": hist @ depths**3,
    }


def _parse_int_tuple(text: str) -> tuple[int, ...]:
    inner = text.strip()
    if inner[-1:] not in ")]":
        raise ArchError(f"malformed op-index tuple {text!r}: missing closing bracket")
    items = [x.strip() for x in inner[1:-1].split(",") if x.strip()]
    values = []
    for pos, item in enumerate(items):
        if not re.fullmatch(r"-?\d+", item):
            raise ArchError(f"malformed op-index tuple {text!r}: item {pos} ({item!r}) is not an integer")
        values.append(int(item))
    return tuple(values)
