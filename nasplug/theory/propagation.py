"""The kernel recursion through a DAG, batched over architectures (docs/theory.md §3, §7).

Every kernel of nasplug (the NNGP of [C22] and the NTK) is one recursion over the *theory network*

    z_0 = W_0 x                                                     (stem)
    z_t = Σ_{skip-like (a,t)} g_at z_a + Σ_{param (s,t)} W_st φ(z_s),       W_st ~ N(0, σ_st²/n)

in which an edge is absent, skip-like with a gain ``g`` (skip: 1; the NTK's conv/pool-aware kernel
models average pooling as ``g = √γ``), parameterized with a forward variance ``σ²`` and an own-term
weight ``ω`` (the NTK's weight on its own gradient, :mod:`nasplug.theory.ntk`), or a **concat
block**: node ``t`` with ``k`` concat in-edges stacks ``1/k`` of its coordinates from each source
(NAS-Bench-101's and DARTS's output vertex; :mod:`nasplug.ops`). :class:`EdgeModels` holds that per
edge.

**Innovation form.** Let ``u_0 = z_0`` and ``u_c = Σ_{param (s,c)} W_sc φ(z_s)``. Then
``z_t = Σ_{c<=t} M_tc u_c``, where ``M_tc`` is the sum over skip-only paths ``c → t`` of the product
of their gains (``M_tt = 1``). A param edge's output carries fresh zero-mean weights, so the
innovations are mutually uncorrelated at infinite width — in the forward kernel and in the
NTK alike (gradient independence; no weight is reused). Hence, with ``f₁``, ``ḟ₁`` of
:mod:`nasplug.theory.relu`::

    Ku_0 = K⁰,  Tu_0 = ω_0 K⁰                                       (ω_0 = 0: frozen stem)
    Ku_c = Σ_{param (s,c)} (σ²/2) f₁(C_ss)
    Tu_c = Σ_{param (s,c)} [ω f₁(C_ss) + (σ²/2) ḟ₁(C_ss) ⊙ Θ_ss]
    C_tt = Σ_{c<=t} W_tc Ku_c,     Θ_tt = Σ_{c<=t} W_tc Tu_c

with ``W = M ⊙ M`` (``"exact"``: skip branches with shared ancestry are correlated) or
``W_tc = Σ_paths Π g²`` (``"paper"``: [C22]'s propagation, which drops the skip–skip cross terms).
The two differ exactly when two nodes are joined by two or more skip-only paths. This equals the
pairwise recursion over every ``C_ab`` (docs/theory.md §3) but stores only one kernel per node.

**Concatenation** (:mod:`nasplug.theory.nngp`'s rule): a block is a 0/1 mask ``D_i`` over the
coordinates with mean ``w_i = 1/k``, and kernels are coordinate means, so a block passes ``w_i`` of
its source into every cross-covariance (``M_tc`` gets the gain ``w_i``), while blocks never meet each
other (``D_i D_j = 0``): node ``t``'s own kernel exceeds ``Σ_c M_tc² Ku_c`` by
``X_tc Ku_c`` with ``X_tc = Σ_i w_i M_{a_i c}² − (Σ_i w_i M_{a_i c})²`` (the blocks' variance of
``M``). That excess is uncorrelated with everything else, so it is one more innovation of node
``t``: ``Ku_t += Σ_c X_tc Ku_c``, ``Tu_t += Σ_c X_tc Tu_c``. The paper mode weighs a block's
kernel by ``w_i`` (its "squared gain") and has no excess.

**Batched.** Kernels depend only on the edge models of *live* edges (those on an input→output
path), so :func:`distinct_networks` prunes dead edges and computes each distinct theory network
once (NB201's 15,625 cells are 290 plain or 9,444 conv/pool-aware networks). Node ``t``'s kernels
depend only on the edges into nodes ``<= t`` (pairs are sorted by target), so they are computed once
per distinct prefix; every later node's kernels are sparse linear combinations of the stored ones
(a CSR matrix times a dense basis). Blocks of networks run in threads (numpy releases the GIL).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from nasplug.errors import NasplugError
from nasplug.graph import ArchBatch, live_edge_mask
from nasplug.graph.paths import concat_fan_in
from nasplug.ops import ROLE_CODES
from nasplug.theory.relu import relu_maps

MODES: tuple[str, ...] = ("exact", "paper")

#: Edge kinds of the theory network.
ABSENT, SKIP, PARAM, CONCAT = 0, 1, 2, 3

#: Working-memory budget (bytes) of one block of networks (its stored per-node kernels).
CHUNK_BYTES = 256 * 2**20
#: Output kernels materialized at a time within a block.
OUTPUT_ROWS = 256
#: Default worker threads of the batched recursion.
DEFAULT_THREADS = max(1, min(4, os.cpu_count() or 1))


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise NasplugError(f"unknown kernel mode {mode!r}; use 'exact' or 'paper'")


@dataclass(frozen=True)
class EdgeModels:
    """What every edge of a batch is in the theory network, as ``(B, E)`` arrays over ``batch.pairs``.

    ``kind`` is :data:`ABSENT`, :data:`SKIP` (skip-like, ``z_t += gain · z_a``), :data:`PARAM`
    (``z_t += W φ(z_s)``, ``W ~ N(0, 2·half_sigma2 / n)``, own-term weight ``omega``) or :data:`CONCAT`
    (a block of ``gain = 1/k`` of node t's coordinates). Fields that do not apply to an edge's kind
    are 0.
    """

    kind: np.ndarray
    gain: np.ndarray
    half_sigma2: np.ndarray
    omega: np.ndarray

    @classmethod
    def from_roles(cls, batch: ArchBatch, *, pool_gain: float = 1.0, sigma2: float | np.ndarray = 2.0,
                   omega: float | np.ndarray = 0.0) -> EdgeModels:
        """Skip = gain 1, pool = gain ``pool_gain`` (0: absent), param = ``(σ², ω)`` (scalars or
        ``(B, E)`` arrays), concat = a block of ``1/k`` (``k`` = the target's concat in-edges), zero =
        absent."""
        roles = batch.roles
        param = roles == ROLE_CODES["param"]
        skip = roles == ROLE_CODES["skip"]
        pool = (roles == ROLE_CODES["pool"]) & (pool_gain != 0)
        concat = roles == ROLE_CODES["concat"]
        kind = np.where(param, PARAM, np.where(skip | pool, SKIP, np.where(concat, CONCAT, ABSENT)))
        kind = kind.astype(np.int8)
        share = 1.0 / np.maximum(concat_fan_in(batch), 1)[:, [t for _, t in batch.pairs]]
        gain = np.where(skip, 1.0, np.where(pool, float(pool_gain), np.where(concat, share, 0.0)))
        half = np.where(param, np.broadcast_to(np.asarray(sigma2, dtype=np.float64), roles.shape) / 2, 0.0)
        own = np.where(param, np.broadcast_to(np.asarray(omega, dtype=np.float64), roles.shape), 0.0)
        return cls(kind, gain, half, own)


@dataclass(frozen=True)
class Networks:
    """The distinct theory networks of a batch.

    ``ids[u, e]`` is the class of edge ``pairs[e]`` in network ``u`` (``(U, E)``; class 0 = absent,
    dead edges removed); ``classes`` holds per class the columns ``kind, gain, half_sigma2, omega``
    (``(K, 4)``); ``inverse[b]`` is architecture ``b``'s network, ``-1`` without an input→output
    path (its kernels are zero).
    """

    n_nodes: int
    pairs: tuple[tuple[int, int], ...]
    ids: np.ndarray
    classes: np.ndarray
    inverse: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def distinct_networks(batch: ArchBatch, models: EdgeModels) -> Networks:
    """Prune dead edges, merge equal edge models into classes, and deduplicate whole networks."""
    present = models.kind != ABSENT
    live = live_edge_mask(replace(batch, roles=present.astype(np.int8)))
    rows = np.stack([models.kind, models.gain, models.half_sigma2, models.omega], axis=-1) * live[..., None]
    classes, cid = np.unique(np.vstack([np.zeros((1, 4)), rows.reshape(-1, 4)]), axis=0, return_inverse=True)
    ids = cid.reshape(-1)[1:].reshape(live.shape).astype(np.int32)  # class 0 = (0, 0, 0, 0) = absent
    if len(ids) == 1:
        uniq, inverse = ids, np.zeros(1, dtype=np.intp)
    else:
        uniq, inverse = np.unique(ids, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
    has_path = uniq.any(axis=1)  # a network without live edges has no input→output path
    position = np.cumsum(has_path) - 1
    inverse = np.where(has_path[inverse], position[inverse], -1)
    return Networks(batch.n_nodes, batch.pairs, uniq[has_path], classes, inverse)


def skip_path_weights(nets: Networks, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """``(W, X)``, each ``(U, n, n)``: the weights ``W_tc`` of earlier innovations in node t's kernel —
    ``M_tc²`` (exact) or ``Σ_paths Π g²`` (paper), ``M_tc`` = sum over skip-like paths ``c → t`` of the
    product of gains — and the concat excess ``X_tc`` of node t's own innovation (module docstring;
    0 without concat blocks and in the paper mode)."""
    kind, gain = nets.classes[:, 0], nets.classes[:, 1]
    if mode == "exact":
        path_gain = np.where(np.isin(kind, (SKIP, CONCAT)), gain, 0.0)
    else:  # squared gains; a concat block's kernel enters with its share w (blocks are averaged)
        path_gain = np.where(kind == CONCAT, gain, np.where(kind == SKIP, gain**2, 0.0))
    n = nets.n_nodes
    m = np.zeros((len(nets), n, n))
    m[:, np.arange(n), np.arange(n)] = 1.0
    excess = np.zeros_like(m)
    for t in range(1, n):
        edges = [e for e, (_, target) in enumerate(nets.pairs) if target == t]
        mean, mean_square = np.zeros((len(nets), n)), np.zeros((len(nets), n))
        for e in edges:  # rows a < t of m are final (topological order)
            a, ids = nets.pairs[e][0], nets.ids[:, e]
            g = path_gain[ids]
            if g.any():
                m[:, t, :] += g[:, None] * m[:, a, :]
            w = np.where(kind[ids] == CONCAT, gain[ids], 0.0)[:, None]
            if mode == "exact" and w.any():
                mean += w * m[:, a, :]
                mean_square += w * m[:, a, :] ** 2
        excess[:, t, :t] = (mean_square - mean * mean)[:, :t]
    return (m * m if mode == "exact" else m), excess


class _Basis:
    """The stored per-node kernels of one block, flattened into the rows of one dense matrix."""

    def __init__(self):
        self.parts, self.offsets, self.size = [], {}, 0

    def add(self, level: int, **arrays: np.ndarray) -> None:
        for name, arr in arrays.items():
            self.offsets[name, level] = self.size
            self.parts.append(arr.reshape(len(arr), -1))
            self.size += len(arr)

    def matrix(self) -> np.ndarray:
        return np.concatenate(self.parts)


def _coefficients(t: int, reps: np.ndarray, ids: np.ndarray, weights: np.ndarray, excess: np.ndarray,
                  ancestors: dict, nets: Networks, basis: _Basis, ntk: bool) -> dict:
    """Sparse coefficients (over ``basis``) of node ``t``'s kernels for the networks ``reps``:
    ``Ku``/``Tu`` (its innovation, concat excess included) and ``C``/``T`` (``C_tt``, ``Θ_tt``), see
    the module docstring."""
    from scipy import sparse

    kind, half, omega = nets.classes[:, 0], nets.classes[:, 2], nets.classes[:, 3]
    col = {p: e for e, p in enumerate(nets.pairs)}
    names = ("Ku", "C", "Tu", "T") if ntk else ("Ku", "C")
    entries = {name: ([], [], []) for name in names}
    rows = np.arange(len(reps))

    def put(targets, r, c, v):
        for name in targets:
            if name in entries:
                entries[name][0].append(r)
                entries[name][1].append(c)
                entries[name][2].append(v)

    for c in range(t):  # earlier innovations: through skip-like paths c → t, and a concat's excess
        anc = ancestors[c][reps]
        ku, tu = basis.offsets["Ku", c] + anc, basis.offsets.get(("Tu", c), 0) + anc
        for coef, own in ((weights[reps, t, c], False), (excess[reps, t, c], True)):
            nz = coef != 0
            put(("Ku", "C") if own else ("C",), rows[nz], ku[nz], coef[nz])
            put(("Tu", "T") if own else ("T",), rows[nz], tu[nz], coef[nz])
    for s in range(t):  # node t's own innovation: its param in-edges
        k = ids[reps, col[(s, t)]]
        p = kind[k] == PARAM
        if not p.any():
            continue
        anc = ancestors[s][reps][p]
        a, b = basis.offsets["A", s] + anc, basis.offsets.get(("B", s), 0) + anc
        put(("Ku", "C"), rows[p], a, half[k][p])
        put(("Tu", "T"), rows[p], a, omega[k][p])
        put(("Tu", "T"), rows[p], b, half[k][p])
    out = {}
    for name, (r, c, v) in entries.items():
        r, c, v = (np.concatenate(x) if x else np.zeros(0) for x in (r, c, v))
        out[name] = sparse.csr_matrix((v, (r.astype(np.intp), c.astype(np.intp))),
                                      shape=(len(reps), basis.size))
    return out


def _run_block(nets: Networks, lo: int, hi: int, gram: np.ndarray, weights: np.ndarray, excess: np.ndarray,
               stem_omega: float, ntk: bool, fn: Callable) -> np.ndarray:
    """Node-by-node kernels of networks ``lo:hi``; ``fn`` applied to the output kernels."""
    n, out_node = gram.shape[0], nets.n_nodes - 1
    ids = nets.ids[lo:hi]
    weights, excess = weights[lo:hi], excess[lo:hi]
    basis = _Basis()
    ancestors = {0: np.zeros(len(ids), dtype=np.intp)}
    f1, fdot = relu_maps(gram)
    level0 = {"Ku": gram[None], "A": f1[None]}
    if ntk:
        level0.update(Tu=stem_omega * gram[None], B=(fdot * stem_omega * gram)[None])
    basis.add(0, **level0)
    for t in range(1, out_node):
        prefix = ids[:, : t * (t + 1) // 2]  # the edges into nodes 1..t
        _, reps, inverse = np.unique(prefix, axis=0, return_index=True, return_inverse=True)
        ancestors[t] = inverse.reshape(-1)
        coef = _coefficients(t, reps, ids, weights, excess, ancestors, nets, basis, ntk)
        stack = basis.matrix()
        cov = np.asarray(coef["C"] @ stack).reshape(-1, n, n)
        f1, fdot = relu_maps(cov)
        level = {"Ku": np.asarray(coef["Ku"] @ stack), "A": f1}
        if ntk:
            level.update(Tu=np.asarray(coef["Tu"] @ stack),
                         B=fdot * np.asarray(coef["T"] @ stack).reshape(-1, n, n))
        basis.add(t, **level)
    coef = _coefficients(out_node, np.arange(len(ids)), ids, weights, excess, ancestors, nets, basis, ntk)
    stack = basis.matrix()
    results = []
    for start in range(0, len(ids), OUTPUT_ROWS):
        part = slice(start, start + OUTPUT_ROWS)
        cov = np.asarray(coef["C"][part] @ stack).reshape(-1, n, n)
        ntk_out = np.asarray(coef["T"][part] @ stack).reshape(-1, n, n) if ntk else None
        results.append(fn(cov, ntk_out))
    return np.concatenate(results)


def map_output_kernels(nets: Networks, gram: np.ndarray, fn: Callable[[np.ndarray, np.ndarray | None],
                       np.ndarray], *, mode: str = "exact", stem_omega: float = 0.0, ntk: bool = True,
                       threads: int | None = None, block: int | None = None) -> np.ndarray:
    """``fn(C_HH, Θ_HH)`` for every network of ``nets``, concatenated in network order.

    ``fn`` receives the output node's NNGP ``C_HH`` and NTK ``Θ_HH`` (``(R, N, N)`` each; ``Θ_HH`` is
    None with ``ntk=False``) of up to :data:`OUTPUT_ROWS` networks and returns ``(R, ...)``. Networks
    are processed in blocks of ``block`` (default: from :data:`CHUNK_BYTES`) on ``threads`` threads.
    ``gram`` must be a checked input Gram (:func:`~nasplug.theory.gram.check_gram`).
    """
    check_mode(mode)
    n_nets, n = len(nets), gram.shape[0]
    if n_nets == 0:
        raise ValueError("no networks to propagate (every architecture lacks an input→output path)")
    weights, excess = skip_path_weights(nets, mode)
    threads = DEFAULT_THREADS if threads is None else max(1, int(threads))
    if block is None:
        per_row = max(nets.n_nodes - 2, 1) * (4 if ntk else 2) * n * n * 8
        block = max(64, min(CHUNK_BYTES // per_row, -(-n_nets // threads)))
    starts = range(0, n_nets, max(1, int(block)))

    def run(lo: int) -> np.ndarray:
        return _run_block(nets, lo, min(lo + block, n_nets), gram, weights, excess, stem_omega, ntk, fn)

    if threads == 1 or len(starts) == 1:
        return np.concatenate([run(lo) for lo in starts])
    with ThreadPoolExecutor(min(threads, len(starts))) as pool:
        return np.concatenate(list(pool.map(run, starts)))


def map_architectures(batch: ArchBatch, models: EdgeModels, gram: np.ndarray, fn: Callable, fill: np.ndarray,
                      **options) -> np.ndarray:
    """``fn`` (see :func:`map_output_kernels`, whose keyword ``options`` it takes) for every architecture
    of ``batch``: computed once per distinct network and scattered back; ``fill`` (the result for a
    zero kernel) for cells without an input→output path."""
    nets = distinct_networks(batch, models)
    out = np.repeat(np.asarray(fill, dtype=np.float64)[None], len(batch), axis=0)
    if len(nets):
        values = map_output_kernels(nets, gram, fn, **options)
        has = nets.inverse >= 0
        out[has] = values[nets.inverse[has]]
    return out
