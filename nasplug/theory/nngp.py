"""NNGP kernels of architecture DAGs and the convergence scorers of [C22].

[C22] W. Chen, W. Huang, X. Gong, B. Hanin, Z. Wang. *Deep Architecture Connectivity Matters for Its
Convergence: A Fine-Grained Analysis.* NeurIPS 2022, arXiv:2205.05662.

The *theory network* of an architecture (docs/theory.md §3) is, with ReLU ``φ``::

    z_0 = W_0 x                                   (random linear stem, K⁰_ij = σ_0² x_i·x_j / d)
    z_t = Σ_{skip (a,t)} z_a + Σ_{param (s,t)} W_st φ(z_s),     W_st iid N(0, σ² / n)

Average pooling is treated as the identity (role ``pool`` behaves like ``skip``), convs as linear
layers (role ``param``), zero edges are absent. At infinite width every node is a Gaussian process;
the output's kernel ``K^H = C_HH`` governs gradient-descent convergence: by [C22, Thm 3.1] the MSE
loss contracts by ``(1 − η λ_min(K^H)/2)`` per step, so a larger ``λ_min`` trains faster.

Two propagations are implemented (``mode``):

``"exact"``
    the exact infinite-width kernel. Skip branches that share ancestry are correlated, so the
    cross-covariances ``C_ab`` of every node pair are tracked::

        C_tb = Σ_{skip (a,t)} C_ab                               (b < t)
        C_tt = Σ_{skip a} Σ_{skip a'} C_aa' + Σ_{param (s,t)} (σ²/2) f₁(C_ss)
             = Σ_{skip a'} C_ta' + Σ_{param (s,t)} (σ²/2) f₁(C_ss)

    A param edge's output ``W_st φ(z_s)`` has zero-mean weights independent of everything else, so
    it is uncorrelated with every other node and with every other param edge.

    **Concatenation** (``concat`` edges, NAS-Bench-101's and DARTS's output vertex). A node ``t`` with
    ``k`` concat in-edges from ``a_1..a_k`` stacks disjoint blocks of its ``n`` coordinates, block
    ``i`` holding ``n/k`` coordinates of ``z_{a_i}`` (at the block's own positions):
    ``z_t = Σ_i D_i z_{a_i} + Σ_skip z_b + Σ_param W φ(z_s)`` with ``D_i`` diagonal 0/1 masks that
    partition the coordinates, ``w_i = 1/k`` of them each. A kernel is a mean over coordinates, and
    ``D_i D_j = δ_ij D_i``, so::

        C_tc = Σ_i w_i C_{a_i c} + Σ_skip C_bc                                   (c < t)
        C_tt = Σ_skip C_tb + Σ_i w_i (C_{a_i a_i} + Σ_skip C_{a_i b}) + Σ_param (σ²/2) f₁(C_ss)

    i.e. a concatenation *averages* its blocks' kernels (weights ``1/k``) where a sum adds them;
    blocks never meet each other, so there is no cross term between blocks. In NAS-Bench-101 and
    DARTS only parameterized edges read a concatenated node (the next cell's 1×1 convs) and only the
    input projection is added to one, so where the blocks sit among the coordinates never matters
    there; the masks make the rule well defined for any DAG. The paper mode keeps the concat
    average and drops the cross terms, as it does for skips.
``"paper"``
    [C22]'s simplified propagation ``K_t = Σ_skip K_a + Σ_param f(K_s)``, which drops the skip–skip
    cross terms. Example: node1 = skip(0), node2 = skip(0) + skip(1) gives ``z_2 = 2 z_0``, so
    ``C_22 = 4 K⁰`` exactly but ``2 K⁰`` in the paper's form.

``f₁`` is the ReLU arc-cosine map with σ² = 2 (:func:`relu_map`), which preserves the diagonal.

Everything is vectorized over architectures (:func:`nngp_kernels` takes an
:class:`~nasplug.graph.ArchBatch`). Two exact shortcuts make whole spaces cheap: the kernel only
depends on the *abstract* roles (zero / skip-like / param), so equal abstract cells are computed
once (NB201's 15,625 cells are 729 theory networks); and ``f₁(C_ss)`` only depends on the roles of
the edges into nodes ``<= s``, so it is evaluated once per distinct prefix.

**Cells without an input→output path** have the zero kernel; their ``λ_min`` is reported as
``0`` (not NaN): the output is identically zero, the loss never moves (contraction factor 1), and
0 keeps rank statistics well-defined. Eigenvalues below the numerical rank tolerance
``N · eps · λ_max`` (e.g. purely linear cells on a rank-deficient Gram) are likewise reported as
exactly 0, so such ties are deterministic instead of ordered by round-off.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

import numpy as np

from nasplug.errors import NasplugError
from nasplug.graph import ArchBatch, ArchGraph, as_batch, depth_histograms
from nasplug.ops import ROLE_CODES
from nasplug.theory.gram import check_gram

Mode = Literal["exact", "paper"]
MODES: tuple[str, ...] = ("exact", "paper")

#: Working-memory budget (bytes) of one chunk of the batched recursion.
CHUNK_BYTES = 256 * 2**20

# Abstract edge kinds of the recursion (pool is the identity in the theory network).
_ABSENT, _SKIP, _PARAM, _CONCAT = 0, 1, 2, 3


# ====================================================================== the ReLU map
def relu_h(c: np.ndarray | float) -> np.ndarray:
    """The normalized ReLU kernel map ``h(c) = (2c·arcsin c + 2·sqrt(1−c²) + π c) / (2π)``.

    ``h(c) = 2 E[φ(u) φ(v)]`` for standard Gaussians ``u, v`` with correlation ``c`` — the arc-cosine
    kernel of degree 1 [Cho & Saul 2009] scaled for He initialization, as used by [C22]. It maps
    [−1, 1] onto [0, 1], is increasing (``h'(c) = 1/2 + arcsin(c)/π``) and convex, with
    ``h(1) = 1``, ``h(0) = 1/π``, ``h(−1) = 0``. Inputs are clipped into [−1, 1] first, so round-off
    just outside the interval cannot produce NaN.
    """
    c = np.clip(np.asarray(c, dtype=np.float64), -1.0, 1.0)
    return (2.0 * c * np.arcsin(c) + 2.0 * np.sqrt(1.0 - c * c) + np.pi * c) / (2.0 * np.pi)


def relu_map(kernel: np.ndarray, sigma2: float = 2.0) -> np.ndarray:
    """Kernel of ``W φ(z)`` when ``z`` has kernel ``kernel`` and ``W ~ N(0, σ²/n)``: ``(σ²/2) f₁(K)``.

    ``f₁(K)_ij = sqrt(K_ii K_jj) · h(K_ij / sqrt(K_ii K_jj))`` (:func:`relu_h`). Works on one
    ``(N, N)`` kernel or a stack ``(..., N, N)``. A sample with zero variance (a dead node, or a
    zero input) has ``φ(z) = 0``, so its rows and columns map to 0 — computed without NaN warnings.
    """
    k = np.asarray(kernel, dtype=np.float64)
    d = np.sqrt(np.clip(np.diagonal(k, axis1=-2, axis2=-1), 0.0, None))
    norm = d[..., :, None] * d[..., None, :]
    live = norm > 0
    c = np.divide(k, norm, out=np.zeros_like(k), where=live)
    out = relu_h(c)
    out *= norm
    if sigma2 != 2.0:
        out *= sigma2 / 2.0
    return out


# ====================================================================== batched recursion
def _edge_kinds(batch: ArchBatch) -> np.ndarray:
    """(B, E) abstract kinds: 0 absent, 1 skip or pool (identity), 2 parameterized, 3 concat block."""
    roles = batch.roles
    kinds = np.zeros(roles.shape, dtype=np.int8)
    kinds[(roles == ROLE_CODES["skip"]) | (roles == ROLE_CODES["pool"])] = _SKIP
    kinds[roles == ROLE_CODES["param"]] = _PARAM
    kinds[roles == ROLE_CODES["concat"]] = _CONCAT
    return kinds


def _masked_sum(terms: list[tuple[np.ndarray, np.ndarray | None]]) -> np.ndarray | None:
    """Σ w_b · X_b over (w (B,) bool mask or float weight, X (B, N, N) or None = zero) terms; None
    when all are zero."""
    acc = None
    for w, x in terms:
        if x is None:
            continue
        if w.dtype != bool:
            x = x * w[:, None, None]
            w = w != 0
        m = w[:, None, None]
        if acc is None:
            acc = np.array(x) if w.all() else np.where(m, x, 0.0)
        elif w.all():
            acc += x
        else:
            np.add(acc, x, out=acc, where=m)
    return acc


def _relu_map_by_prefix(cov: np.ndarray, prefix: np.ndarray, sigma2: float) -> np.ndarray:
    """:func:`relu_map` of a (B, N, N) stack, evaluated once per distinct ``prefix`` row.

    ``C_ss`` is a function of the kinds of the edges into nodes ``<= s`` only; rows with equal
    prefixes have equal kernels, so the (costly) arcsin map runs on the distinct ones.
    """
    if len(cov) == 1:
        return relu_map(cov, sigma2)
    _, first, inverse = np.unique(prefix, axis=0, return_index=True, return_inverse=True)
    if len(first) == len(cov):
        return relu_map(cov, sigma2)
    return relu_map(cov[first], sigma2)[inverse.reshape(-1)]


def _propagate(n_nodes: int, pairs: tuple[tuple[int, int], ...], kinds: np.ndarray, gram: np.ndarray,
               exact: bool, sigma2: float) -> np.ndarray:
    """The recursion of docs/theory.md §3 (and the module docstring's concat rule) for a (b, E)
    kinds array; returns C_HH, (b, N, N).

    ``cov[(a, c)]`` (a >= c) holds C_ac for all b architectures at once, None where it is zero for
    all of them. C_ac is symmetric as an N×N matrix (it is a sum of symmetric innovation kernels
    weighted by skip-path counts and block shares), so only a >= c is stored. Architectures without
    an edge are masked out of each sum (a concat block by its weight 1/k, 0 where absent), which is
    how one pass serves every topology in the batch.
    """
    b, n = kinds.shape[0], gram.shape[0]
    col = {p: e for e, p in enumerate(pairs)}
    cov: dict[tuple[int, int], np.ndarray | None] = {(0, 0): np.broadcast_to(gram, (b, n, n))}
    activated: dict[int, np.ndarray | None] = {}

    def get(a: int, c: int) -> np.ndarray | None:
        return cov[(a, c) if a >= c else (c, a)]

    for t in range(1, n_nodes):
        skips = [(a, m) for a in range(t) if (m := kinds[:, col[(a, t)]] == _SKIP).any()]
        params = [(s, m) for s in range(t) if (m := kinds[:, col[(s, t)]] == _PARAM).any()]
        blocks = [(a, m) for a in range(t) if (m := kinds[:, col[(a, t)]] == _CONCAT).any()]
        if blocks:  # each block's share 1/k of node t's coordinates
            k = np.sum([m for _, m in blocks], axis=0)
            blocks = [(a, m / np.maximum(k, 1)) for a, m in blocks]
        if exact:
            for c in range(t):
                cov[(t, c)] = _masked_sum([(m, get(a, c)) for a, m in skips + blocks])
            terms = [(m, cov[(t, a)]) for a, m in skips]
            terms += [(w, _masked_sum([(np.ones(b, dtype=bool), cov[(a, a)])]
                                      + [(m, get(a, c)) for c, m in skips])) for a, w in blocks]
        else:
            terms = [(m, cov[(a, a)]) for a, m in skips + blocks]
        for s, m in params:
            if s not in activated:
                src = cov[(s, s)]
                prefix = kinds[:, : s * (s + 1) // 2]  # edges into nodes 1..s (pairs sorted by target)
                activated[s] = None if src is None else _relu_map_by_prefix(src, prefix, sigma2)
            terms.append((m, activated[s]))
        cov[(t, t)] = _masked_sum(terms)
    out = cov[(n_nodes - 1, n_nodes - 1)]
    return np.zeros((b, n, n)) if out is None else np.array(out)


def check_mode(mode: str, sigma2: float) -> None:
    if mode not in MODES:
        raise NasplugError(f"unknown NNGP mode {mode!r}; use 'exact' or 'paper'")
    if not (np.isfinite(sigma2) and sigma2 > 0):
        raise NasplugError(f"sigma2 must be a positive number, got {sigma2}")


def _unique_cells(batch: ArchBatch) -> tuple[np.ndarray, np.ndarray]:
    """The distinct abstract cells ``(U, E)`` and, per architecture, the index of its cell."""
    kinds = _edge_kinds(batch)
    if len(kinds) == 1:
        return kinds, np.zeros(1, dtype=np.intp)
    uniq, inverse = np.unique(kinds, axis=0, return_inverse=True)
    return uniq, inverse.reshape(-1)


def _kernel_chunks(batch: ArchBatch, cells: np.ndarray, gram: np.ndarray, mode: str, sigma2: float,
                   chunk: int | None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, kernels)``: output kernels of ``cells[start:start + len(kernels)]``.

    Chunks keep the working set (all stored C_ac of a chunk) near :data:`CHUNK_BYTES`.
    """
    n = gram.shape[0]
    stored = batch.n_nodes * (batch.n_nodes + 1) // 2 if mode == "exact" else 2 * batch.n_nodes
    size = chunk or max(1, CHUNK_BYTES // (stored * n * n * 8))
    for start in range(0, len(cells), size):
        part = cells[start : start + size]
        yield start, _propagate(batch.n_nodes, batch.pairs, part, gram, mode == "exact", sigma2)


def nngp_kernels(batch: ArchBatch | Iterable[ArchGraph | str], gram: np.ndarray, mode: Mode = "exact",
                 sigma2: float = 2.0, *, chunk: int | None = None) -> np.ndarray:
    """Output kernels ``C_HH`` of many architectures at once, ``(B, N, N)``.

    Parameters
    ----------
    batch
        An :class:`~nasplug.graph.ArchBatch` (e.g. ``search_spaces.get("nb201").batch()``) or
        architectures with equal node counts.
    gram
        Input Gram ``K⁰`` (N, N) of node 0 (see :func:`gram_from_data`, :func:`default_gram`).
    mode
        ``"exact"`` (cross-covariances tracked) or ``"paper"`` ([C22]'s simplified propagation).
    sigma2
        Weight variance ``σ²`` of every parameterized edge (``W ~ N(0, σ²/n)``); 2 is He init.
    chunk
        Distinct cells per chunk of the recursion (default: from a 256 MiB budget).

    Notes
    -----
    The result holds ``B·N²`` floats (512 MiB for all of NB201 at N = 64); for scores over whole
    spaces use :func:`kernel_stats`, which never materializes it.
    """
    batch = as_batch(batch)
    check_mode(mode, sigma2)
    g = check_gram(gram)
    cells, inverse = _unique_cells(batch)
    out = np.empty((len(batch), g.shape[0], g.shape[0]))
    for start, kernels in _kernel_chunks(batch, cells, g, mode, sigma2, chunk):
        pos = np.flatnonzero((inverse >= start) & (inverse < start + len(kernels)))
        out[pos] = kernels[inverse[pos] - start]
    return out


def nngp_kernel(arch: ArchGraph | str, gram: np.ndarray, mode: Mode = "exact",
                sigma2: float = 2.0) -> np.ndarray:
    """The output node's NNGP kernel ``C_HH`` (N, N) of one architecture's theory network.

    ``gram`` is the input Gram ``K⁰`` of node 0; ``mode`` is ``"exact"`` or ``"paper"`` (module
    docstring, [C22 §3]). This is :func:`nngp_kernels` with a batch of one.

    Examples
    --------
    >>> k0 = synthetic_gram(2, 0.5)
    >>> print(nngp_kernel("1_11", k0, "exact")[0, 0], nngp_kernel("1_11", k0, "paper")[0, 0])
    4.0 2.0
    """
    return nngp_kernels(ArchBatch.from_archs([ArchGraph.parse(arch)]), gram, mode, sigma2)[0]


# ====================================================================== spectral quantities
def lambda_min(kernels: np.ndarray) -> np.ndarray:
    """Smallest eigenvalue of one (N, N) kernel or of each of a (B, N, N) stack.

    Values below the rank tolerance ``N · eps · λ_max`` in magnitude are returned as exactly 0
    (the kernels are PSD by construction; smaller values are round-off).
    """
    k = np.asarray(kernels, dtype=np.float64)
    ev = np.linalg.eigvalsh(k)
    return _snap(ev[..., 0], ev[..., -1], k.shape[-1])


def _snap(low: np.ndarray, high: np.ndarray, n: int) -> np.ndarray:
    tol = n * np.finfo(np.float64).eps * np.maximum(high, 0.0)
    return np.where(np.abs(low) <= tol, 0.0, low)


def kernel_stats(batch: ArchBatch | Iterable[ArchGraph | str], gram: np.ndarray, mode: Mode = "exact",
                 sigma2: float = 2.0, *, chunk: int | None = None) -> dict[str, np.ndarray]:
    """``lambda_min``, ``lambda_max`` and ``mean_diag`` of every output kernel, each ``(B,)``.

    Computed chunk by chunk on the distinct abstract cells and scattered back, so memory stays
    bounded for whole spaces. No-path cells get 0 for all three.
    """
    batch = as_batch(batch)
    check_mode(mode, sigma2)
    g = check_gram(gram)
    cells, inverse = _unique_cells(batch)
    parts: list[np.ndarray] = []
    for _, kernels in _kernel_chunks(batch, cells, g, mode, sigma2, chunk):
        ev = np.linalg.eigvalsh(kernels)
        mean_diag = np.einsum("bii->b", kernels) / g.shape[0]
        parts.append(np.stack([_snap(ev[:, 0], ev[:, -1], g.shape[0]), ev[:, -1], mean_diag], axis=1))
    table = np.concatenate(parts)[inverse]
    return {"lambda_min": table[:, 0], "lambda_max": table[:, 1], "mean_diag": table[:, 2]}


def convergence_factor(lam_min: np.ndarray | float, eta: float) -> np.ndarray:
    """[C22, Thm 3.1]'s per-step contraction ``1 − η λ_min / 2`` of the MSE loss under GD.

    Smaller is faster. The theorem needs a small enough step ``η`` (so that the factor lies in
    [0, 1]); for any ``η > 0`` the factor is a decreasing function of ``λ_min``, so it ranks cells
    exactly as ``λ_min`` does.
    """
    if not (np.isfinite(eta) and eta > 0):
        raise NasplugError(f"the step size eta must be a positive number, got {eta}")
    return 1.0 - eta * np.asarray(lam_min, dtype=np.float64) / 2.0


def path_bound(batch: ArchBatch | Iterable[ArchGraph | str], gram: np.ndarray) -> np.ndarray:
    """[C22] eq. 12: ``min_{i≠j} (P − Σ_p h^{∘d_p}(K⁰_ij))`` for a unit-diagonal ``K⁰``, ``(B,)``.

    ``P`` is the number of input→output paths and ``d_p`` the number of parameterized edges on
    path ``p``, so the path sum is ``Σ_d hist[d] · h^{∘d}(c)`` over the depth histogram
    (:func:`nasplug.graph.depth_histograms`) — no path enumeration. Because ``h`` is increasing,
    every ``h^{∘d}`` is, so the minimum over pairs is attained at the largest off-diagonal
    correlation; only that one is evaluated. No-path cells get 0.

    What it is (checked in tests/test_nngp.py): with the paper's propagation and a unit-diagonal
    ``K⁰`` the output diagonal is ``P`` and, by Cauchy interlacing on 2×2 principal submatrices,
    ``λ_min(K^H) <= min_{i≠j} (P − |K^H_ij|)``. Eq. 12 replaces ``K^H_ij`` by the path sum; the two
    agree when all paths into every node that feeds a parameterized edge have the same depth (as
    in [C22]'s three worked examples, where eq. 12 is then tight for N = 2). Otherwise ``h``'s
    convexity (Jensen) makes the path sum larger than ``K^H_ij``, so eq. 12 is an approximation that
    can fall slightly *below* the 2-sample ``λ_min`` (e.g. ``2_11_002``), not a strict upper bound.
    """
    batch = as_batch(batch)
    g = check_gram(gram, unit_diagonal=True, min_size=2)
    c = float(g[~np.eye(len(g), dtype=bool)].max())
    hist = depth_histograms(batch)
    powers = np.empty(hist.shape[1])
    value = min(max(c, -1.0), 1.0)
    for d in range(hist.shape[1]):
        powers[d] = value
        value = float(relu_h(value))
    return hist.sum(axis=1) - hist @ powers
