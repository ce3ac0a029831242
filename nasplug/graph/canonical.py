"""The canonical form of the function a DAG computes: a readable expression, its length and a key.

A node's value is a multiset of *terms* (sums are commutative and associative; multiplicities
count, since ``x + x ≠ x``): the input is the term ``x``; a skip edge adds its source's terms
unchanged (skips are transparent); any other op adds one term ``op(value of the source)``; the
concat blocks of a node form one term ``concat(...)`` of their sources' values, sorted (stacking
blocks in another order is the same function up to a permutation of the next layer's weights; a
block without a path from the input is written ``0``), and a single block is the identity. Edges
into nodes that cannot reach the output never enter the output's value.

One dynamic programme over the edges (:func:`fold`) computes the output's value in any
:class:`Algebra` — how a term and a sum are written. Each node holds its *distinct* terms with
their multiplicities (exact Python ints), so a skip merge costs the number of distinct terms, never
the number of paths: at most one distinct term per edge and node, so the whole fold is polynomial
(``O(E·(N + E) log)`` for ``E`` edges and ``N`` nodes) while the expression it describes can be
exponentially long (a complete DAG of skips is ``x+x+…+x`` with ``2^(N−2)`` terms).

* :data:`TEXT` writes the expression (``linear(x)+x``) — exponential, so
  :meth:`~nasplug.ArchGraph.canonical_form` first gets its length from :data:`LENGTH` and refuses
  beyond :data:`CANONICAL_FORM_LIMIT` characters;
* :data:`LENGTH` counts its characters exactly without writing it;
* :data:`DIGEST` hashes its structure (BLAKE2b, 128 bits), a term as its digest and a sum as the
  digest of its sorted ``(term digest, multiplicity)`` pairs: :meth:`~nasplug.ArchGraph.canonical_key`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Generic, TypeVar

from nasplug.ops import Op

#: The longest :meth:`~nasplug.ArchGraph.canonical_form` written, in characters; longer ones
#: (complete DAGs from about 15 nodes on) raise an :class:`~nasplug.errors.ArchError` giving the length.
CANONICAL_FORM_LIMIT = 100_000

T = TypeVar("T")


class Algebra(Generic[T]):
    """How a canonical expression is written: the input ``leaf``, the ``zero`` value (a node no
    path from the input reaches), a sum of sorted ``(term, multiplicity)`` pairs, an op applied to
    a value, and the concat of sorted values."""

    leaf: T
    zero: T

    def sum(self, items: Sequence[tuple[T, int]]) -> T:
        raise NotImplementedError

    def apply(self, op: str, value: T) -> T:
        raise NotImplementedError

    def concat(self, values: Sequence[T]) -> T:
        raise NotImplementedError


class _Text(Algebra[str]):
    leaf, zero = "x", "0"

    def sum(self, items):
        return "+".join(term for term, count in items for _ in range(count))

    def apply(self, op, value):
        return f"{op}({value})"

    def concat(self, values):
        return f"concat({','.join(values)})"


class _Length(Algebra[int]):
    """The number of characters :data:`TEXT` would write (terms of equal length may share an entry:
    only the total matters)."""

    leaf, zero = 1, 1

    def sum(self, items):
        return sum(length * count for length, count in items) + sum(count for _, count in items) - 1

    def apply(self, op, value):
        return len(op) + 2 + value

    def concat(self, values):
        return len("concat()") + sum(values) + len(values) - 1


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class _Digest(Algebra[str]):
    leaf, zero = _digest("x"), _digest("0")

    def sum(self, items):
        return _digest("+".join(f"{term}*{count}" for term, count in items))

    def apply(self, op, value):
        return _digest(f"{op}({value})")

    def concat(self, values):
        return _digest(f"concat({','.join(values)})")


TEXT, LENGTH, DIGEST = _Text(), _Length(), _Digest()


def fold(n_nodes: int, edges: Sequence[tuple[tuple[int, int], Op]], algebra: Algebra[T]) -> T:
    """The output's value of the DAG with these edges (non-zero, sorted by ``(source, target)`` as
    :attr:`~nasplug.ArchGraph.edge_items`), written in ``algebra``; ``algebra.zero`` when no path
    reaches the output. Polynomial in the number of edges whatever the expression's length."""
    output = n_nodes - 1
    reaches = {output}
    for (s, t), _ in reversed(edges):  # every out-edge of s is seen before s
        if t in reaches:
            reaches.add(s)
    terms: list[Counter] = [Counter({algebra.leaf: 1})] + [Counter() for _ in range(output)]
    values: dict[int, T] = {}
    blocks: dict[int, list[int]] = {}

    def value_of(node: int) -> T:
        if node not in values:
            values[node] = algebra.sum(sorted(terms[node].items())) if terms[node] else algebra.zero
        return values[node]

    def finish(node: int) -> None:  # all in-edges of `node` precede its out-edges (sorted by source)
        sources = blocks.pop(node, None)
        if sources is None or all(not terms[a] for a in sources):
            return
        if len(sources) == 1:
            terms[node].update(terms[sources[0]])
            return
        terms[node][algebra.concat(sorted(value_of(a) for a in sources))] += 1

    for (s, t), op in edges:
        if t not in reaches:
            continue  # cannot affect the output
        finish(s)
        if op.role == "concat":
            blocks.setdefault(t, []).append(s)
        elif not terms[s]:
            continue  # a node with no path from the input is zero
        elif op.is_skip:
            terms[t].update(terms[s])
        else:
            terms[t][algebra.apply(op.name, value_of(s))] += 1
    finish(output)
    return value_of(output)
