"""Text and tuple encodings of architectures: NB201 strings, [C22] DAG codes, NASLib tuples.

NAS-Bench-101 and DARTS / NAS-Bench-301 cells have their own modules (:mod:`nasplug.graph.nb101`,
:mod:`nasplug.graph.darts`); NASLib's NB101 tuple is dispatched from :func:`parse_naslib` by length.

Each ``parse_*`` returns ``(n_nodes, edges)`` with ``edges = {(source, target): Op}`` and raises
:class:`~nasplug.errors.ArchError` naming the position of the problem; each ``format_*`` is its
inverse. :class:`~nasplug.ArchGraph` wraps them (``ArchGraph.parse``, ``to_nb201``, ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

from nasplug.errors import ArchError
from nasplug.graph import nb101
from nasplug.ops import DAG_CODE_OPS, NASLIB_OPS, ZERO, Op, get_op, known_ops

Edges = dict[tuple[int, int], Op]

#: NASLib's order of the six NB201 edges, as (source, target) with 0-based nodes.
NASLIB_EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))

_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)~(\d+)")


def parse_nb201(text: str) -> tuple[int, Edges]:
    """An NB201 string: group ``j`` (``|op~source|...|``, groups joined by ``+``) lists the inputs
    of node ``j``, one token per source node ``0..j-1`` (``none~s`` for no edge) — a group that
    omits a source is an error, never silently an absent edge. ``k`` groups make a ``k+1``-node
    cell (NAS-Bench-201's cells have 3 groups; other sizes are general DAG cells in the same
    notation, which is how :meth:`~nasplug.ArchGraph.to_nb201` writes them)."""
    text = text.strip()
    edges: Edges = {}
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
            m = _TOKEN.fullmatch(token)
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
        given = {s for (s, t) in edges if t == target}
        missing = [s for s in range(target) if s not in given]
        if missing:
            raise ArchError(
                f"incomplete NB201 string: group {group!r} at position {offset} (node {target}) has "
                f"no token for source node{'s' if len(missing) > 1 else ''} "
                f"{', '.join(map(str, missing))}: list every source 0..{target - 1}, with "
                f"none~{missing[0]} for no edge"
            )
        offset += len(group) + 1
    return len(groups) + 1, edges


def format_nb201(n_nodes: int, edges: Mapping[tuple[int, int], Op]) -> str:
    """The NB201 string, listing every source of every node (``none`` for zero edges)."""
    return "+".join(
        "|" + "|".join(f"{edges.get((s, t), ZERO).name}~{s}" for s in range(t)) + "|"
        for t in range(1, n_nodes)
    )


def parse_dag_code(code: str) -> tuple[int, Edges]:
    """A [C22] DAG code: ``_``-separated groups, group ``j`` has one digit per source ``0..j-1``
    (0 zero, 1 skip, 2 linear). ``2_02_002`` is a 3-layer chain."""
    code = code.strip()
    edges: Edges = {}
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
    return code.count("_") + 2, edges


def format_dag_code(n_nodes: int, edges: Mapping[tuple[int, int], Op]) -> str:
    """The [C22] DAG code; only for zero/skip/linear ops (``ArchGraph.abstract`` maps others)."""
    digits = {op: str(i) for i, op in enumerate(DAG_CODE_OPS)}
    for op in edges.values():
        if op not in digits:
            raise ArchError(
                f"op {op.name!r} has no DAG-code digit (0 zero, 1 skip, 2 linear); "
                "use arch.abstract() for the MLP abstraction"
            )
    return "_".join(
        "".join(digits[edges.get((s, t), ZERO)] for s in range(t)) for t in range(1, n_nodes)
    )


def parse_naslib(ops: Sequence[int]) -> tuple[int, Edges]:
    """NASLib's NB201 op-index tuple (0 skip, 1 none, 2 conv3x3, 3 conv1x1, 4 avgpool), positions =
    edges (1,2),(1,3),(1,4),(2,3),(2,4),(3,4) of NASLib's 1-based nodes (:data:`NASLIB_EDGES`); or
    NASLib's NB101 tuple of ``n² + n`` integers, ``n`` = 3..7
    (:func:`nasplug.graph.nb101.parse_naslib_nb101`)."""
    ops = list(ops)
    if len(ops) in (12, 20, 30, 42, 56):
        for pos, value in enumerate(ops):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ArchError(f"NASLib NB101 tuple: item {pos} ({value!r}) is not an integer")
        return nb101.parse_nb101(*nb101.parse_naslib_nb101(ops))
    if len(ops) != len(NASLIB_EDGES):
        raise ArchError(f"a NASLib NB201 tuple has 6 op indices (an NB101 one n²+n, 56 for 7 vertices), got "
                        f"{len(ops)}: {tuple(ops)}")
    edges: Edges = {}
    for pos, (edge, index) in enumerate(zip(NASLIB_EDGES, ops)):
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(NASLIB_OPS):
            raise ArchError(
                f"NASLib op index {index!r} at position {pos} is out of range 0..4 "
                "(0 skip, 1 none, 2 conv3x3, 3 conv1x1, 4 avgpool)"
            )
        edges[edge] = NASLIB_OPS[index]
    return 4, edges


def format_naslib(n_nodes: int, edges: Mapping[tuple[int, int], Op], name: str = "") -> tuple[int, ...]:
    """NASLib's op-index tuple; only for 4-node cells with NB201 ops."""
    if n_nodes != 4 or any(e not in NASLIB_EDGES for e in edges):
        raise ArchError("only 4-node NB201 cells have a NASLib tuple")
    try:
        return tuple(NASLIB_OPS.index(edges.get(e, ZERO)) for e in NASLIB_EDGES)
    except ValueError:
        raise ArchError(f"{name or 'the cell'} uses an op outside NB201's vocabulary") from None


def parse_int_tuple(text: str) -> tuple[int, ...]:
    """``"(4, 3, 3, 3, 2, 3)"`` or ``"[...]"`` → a tuple of ints, with a clear error otherwise."""
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


# ---------------------------------------------------------------------- many strings at once
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"


def nb201_pattern(n_nodes: int, op: str = _NAME) -> str:
    """Regular expression of one NB201-form string of ``n_nodes`` nodes (no groups unless ``op`` has
    them): group ``t`` lists ``op~0 .. op~t−1``."""
    return "\\+".join("\\|" + "\\|".join(f"{op}~{s}" for s in range(t)) + "\\|" for t in range(1, n_nodes))


def nb201_op_indices(strings: Sequence[str]) -> tuple[int, np.ndarray, tuple[Op, ...]]:
    """``(n_nodes, indices, ops)`` of many NB201-form strings with one node count: ``indices[b, e]``
    is the position in ``ops`` of string ``b``'s op on edge ``all_pairs(n_nodes)[e]``.

    No per-string Python work: one regular-expression match over the joined text checks that every
    string has the structure *and* that every op name is a registered one, then each name is
    identified with array operations on the text's bytes (its length and the bytes at a few
    positions that tell the registered names apart). Raises :class:`ArchError` naming the first bad
    row (its problem as :func:`parse_nb201` reports it).
    """
    if not strings:
        raise ArchError("no architectures given")
    first = strings[0]
    n_nodes = first.count("+") + 2 if isinstance(first, str) else 0
    try:
        text = "\n".join(strings)
    except TypeError:
        text = None
    vocab = tuple(sorted(known_ops()))
    if text is None or n_nodes < 2 or not _strings_pattern(n_nodes, vocab).fullmatch(text):
        _first_bad_row(strings, n_nodes)
    positions, vocab_keys = _name_keys(vocab)
    data = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    tilde = np.flatnonzero(data == ord("~"))
    # every name follows a '|' that is not followed by '+', a newline or the end
    after_bar = data[1:]
    start = np.flatnonzero((data[:-1] == ord("|")) & (after_bar != ord("+")) & (after_bar != ord("\n"))) + 1
    length = tilde - start
    keys = length.astype(np.int64)
    for p in positions:  # a byte past a name's end reads its '~', as _name_keys assumes
        keys = keys * 256 + data[start + np.minimum(p, length)]
    order = np.argsort(vocab_keys)
    index = order[np.searchsorted(vocab_keys[order], keys)]
    ops = known_ops()
    return n_nodes, index.reshape(len(strings), -1), tuple(ops[name] for name in vocab)


@lru_cache(maxsize=16)
def _strings_pattern(n_nodes: int, vocab: tuple[str, ...]) -> re.Pattern:
    """Joined NB201 strings of ``n_nodes`` nodes whose op names are all in ``vocab``."""
    line = nb201_pattern(n_nodes, _trie_pattern(vocab))
    return re.compile(f"(?:{line}\n)*{line}")


def _trie_pattern(words: Sequence[str]) -> str:
    """A regular expression matching exactly ``words``, factored as a prefix tree so that a match
    tests one branch per character instead of every word in turn."""
    if words == [""] or words == ("",):
        return ""
    groups: dict[str, list[str]] = {}
    for word in words:
        groups.setdefault(word[:1], []).append(word[1:])
    branches = []
    for head, tails in sorted(groups.items()):
        if head == "":
            continue
        rest = _trie_pattern(tails)
        optional = "" in tails and any(tails)
        branches.append(re.escape(head) + (f"(?:{rest})?" if optional else rest))
    body = "|".join(branches)
    return f"(?:{body})" if len(branches) > 1 else body


@lru_cache(maxsize=16)
def _name_keys(vocab: tuple[str, ...]) -> tuple[tuple[int, ...], np.ndarray]:
    """Byte positions that, with the length, tell the names of ``vocab`` apart, and each name's key
    ``length · 256^k + bytes at those positions`` (``~`` past the end)."""

    def key(name: str, positions: tuple[int, ...]) -> int:
        out = len(name)
        for p in positions:
            out = out * 256 + ord((name + "~")[min(p, len(name))])
        return out

    positions: tuple[int, ...] = ()
    longest = max(map(len, vocab))
    while len({key(n, positions) for n in vocab}) < len(vocab):
        positions += (max(range(longest), key=lambda p: len({key(n, positions + (p,)) for n in vocab})),)
    return positions, np.array([key(n, positions) for n in vocab], dtype=np.int64)


def _first_bad_row(strings: Sequence, n_nodes: int, start: int = 0) -> None:
    """Raise the :class:`ArchError` of the first row (from ``start``) that is not an ``n_nodes``-node
    NB201 string of known ops."""
    for row in range(start, len(strings)):
        s = strings[row]
        if not isinstance(s, str):
            raise ArchError(f"row {row}: {type(s).__name__} is not an NB201 string")
        try:
            got, _ = parse_nb201(s)
        except ArchError as err:
            raise ArchError(f"row {row}: {err}") from None
        if got != n_nodes:
            raise ArchError(f"row {row}: {got} nodes; row 0 has {n_nodes} (one node count per batch)")
    raise ArchError("malformed NB201 strings")  # unreachable: some row fails above
