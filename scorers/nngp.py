"""NNGP kernels of architecture DAGs and the convergence scorers of [C22].

[C22] W. Chen, W. Huang, X. Gong, B. Hanin, Z. Wang. *Deep Architecture Connectivity Matters for Its
Convergence: A Fine-Grained Analysis.* NeurIPS 2022, arXiv:2205.05662.

The *theory network* of an architecture (THEORY.md §3) is, with ReLU ``φ``::

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
from functools import lru_cache
from typing import Literal

import numpy as np

from nasplug.errors import NasplugError
from nasplug.graph import ArchBatch, ArchGraph, as_batch, depth_histograms
from nasplug.ops import ROLE_CODES
from scorers.base import BatchScorer, register

Mode = Literal["exact", "paper"]
MODES: tuple[str, ...] = ("exact", "paper")

#: Working-memory budget (bytes) of one chunk of the batched recursion.
CHUNK_BYTES = 256 * 2**20

#: Default input Gram of the registered scorers: this many digits samples, this seed.
DEFAULT_SAMPLES = 64
DEFAULT_SEED = 0

# Abstract edge kinds of the recursion (pool is the identity in the theory network).
_ABSENT, _SKIP, _PARAM = 0, 1, 2


class GramError(NasplugError, ValueError):
    """An input Gram matrix that is not a finite, symmetric, positive semi-definite (N, N) array."""


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


# ====================================================================== input Gram matrices
def check_gram(gram: np.ndarray, *, unit_diagonal: bool = False, min_size: int = 1) -> np.ndarray:
    """Validate an input Gram matrix and return it as a symmetric float64 copy.

    Raises :class:`GramError` (a ``NasplugError`` and ``ValueError``) when it is not a square
    2-D array of at least ``min_size`` samples, contains NaN/inf, is not symmetric, or is not
    positive semi-definite (up to round-off); with ``unit_diagonal`` also unless its diagonal is 1.
    """
    try:
        g = np.array(gram, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise GramError(f"the Gram matrix must be a numeric (N, N) array: {err}") from None
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise GramError(f"the Gram matrix must be square (N, N), got shape {g.shape}")
    n = g.shape[0]
    if n < min_size:
        raise GramError(f"the Gram matrix needs at least {min_size} samples, got {n}")
    bad = np.argwhere(~np.isfinite(g))
    if bad.size:
        i, j = bad[0]
        raise GramError(f"the Gram matrix has a non-finite entry {g[i, j]} at ({i}, {j})")
    scale = max(float(np.abs(g).max()), np.finfo(float).tiny)
    asym = float(np.abs(g - g.T).max())
    if asym > 1e-9 * scale:
        raise GramError(f"the Gram matrix is not symmetric (max |G - Gᵀ| = {asym:.3g})")
    g = (g + g.T) / 2.0
    if np.any(np.diagonal(g) < 0):
        raise GramError("the Gram matrix has a negative diagonal entry, so it is not a covariance")
    low = float(np.linalg.eigvalsh(g)[0])
    if low < -1e-8 * scale * n:
        raise GramError(
            f"the Gram matrix is not positive semi-definite (smallest eigenvalue {low:.3g}); "
            "build it from data with gram_from_data(X)"
        )
    if unit_diagonal and not np.allclose(np.diagonal(g), 1.0, rtol=0, atol=1e-6):
        raise GramError(
            "this quantity needs a unit-diagonal Gram (correlations), as [C22] eq. 12 assumes; "
            "normalize the samples to ‖x‖² = d or use synthetic_gram / default_gram"
        )
    return g


def gram_from_data(X: np.ndarray, sigma0_2: float = 1.0) -> np.ndarray:
    """Gram of the random linear stem ``z_0 = W_0 x`` on samples ``X`` (N, d).

    With ``W_0`` iid ``N(0, σ_0²/d)`` the stem's coordinates are Gaussian with covariance
    ``K⁰_ij = σ_0² x_i·x_j / d``; that Gaussianity is what the arc-cosine formula needs (raw inputs
    fed straight into φ would not follow it). Samples with ``‖x‖² = d`` give a unit diagonal.
    """
    x = np.asarray(X, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise GramError(f"data must be a non-empty (N, d) array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise GramError("data contain NaN or inf")
    if not (np.isfinite(sigma0_2) and sigma0_2 > 0):
        raise GramError(f"sigma0_2 must be a positive number, got {sigma0_2}")
    return sigma0_2 * (x @ x.T) / x.shape[1]


def synthetic_gram(n: int, correlation: float = 0.5) -> np.ndarray:
    """Unit-diagonal Gram with every off-diagonal entry equal to ``correlation``.

    It is PSD for ``-1/(n−1) <= c <= 1``. Note: such an equicorrelated Gram stays of the form
    ``αI + β11ᵀ`` through every layer (f₁ acts entrywise), so ``λ_min = K^H_11 − K^H_12`` (for
    ``β >= 0``) whatever ``n`` is — it is the 2-sample case of [C22]'s worked examples and does
    not probe how an architecture mixes *different* correlations. Hence the data-based default.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise GramError(f"n must be a positive integer, got {n!r}")
    c = float(correlation)
    if not (np.isfinite(c) and (n == 1 or -1.0 / (n - 1) <= c <= 1.0)):
        raise GramError(f"correlation {correlation} gives no valid {n}x{n} Gram (need -1/(n-1) <= c <= 1)")
    g = np.full((n, n), c)
    np.fill_diagonal(g, 1.0)
    return g


@lru_cache(maxsize=8)
def _digits_gram(n_samples: int, seed: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    data = load_digits().data.astype(np.float64)
    if not 2 <= n_samples <= len(data):
        raise GramError(f"n_samples must be in 2..{len(data)}, got {n_samples}")
    std = data.std(axis=0)
    cols = std > 0  # three pixels are always blank
    x = (data[:, cols] - data[:, cols].mean(axis=0)) / std[cols]
    x = x[np.random.default_rng(seed).choice(len(x), size=n_samples, replace=False)]
    x *= np.sqrt(x.shape[1]) / np.linalg.norm(x, axis=1, keepdims=True)
    gram = gram_from_data(x)
    np.fill_diagonal(gram, 1.0)  # exact, not 1 ± round-off
    gram.setflags(write=False)
    return gram


def default_gram(n_samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """The input Gram the registered scorers use by default.

    ``n_samples`` images of scikit-learn's bundled digits (drawn with ``seed``), each pixel
    standardized over the whole data set (the 3 always-blank pixels dropped, leaving d = 61), each
    sample scaled to ``‖x‖² = d``, then ``K⁰ = X Xᵀ / d`` (σ_0² = 1). Why: it is real data that is
    always available offline (no download), its correlations are varied — unlike an equicorrelated
    :func:`synthetic_gram`, which collapses to the 2-sample case — and the unit diagonal matches the
    assumption of [C22] eq. 12 and makes scores comparable across Gram sizes. With 64 samples in
    61 dimensions ``K⁰`` is singular, so purely linear cells (only parameter-free paths) get
    ``λ_min = 0``: a linear map cannot fit 64 generic targets, which is the point of the scorer.
    """
    return _digits_gram(int(n_samples), int(seed)).copy()


# ====================================================================== batched recursion
def _edge_kinds(batch: ArchBatch) -> np.ndarray:
    """(B, E) abstract kinds: 0 absent, 1 skip or pool (identity), 2 parameterized."""
    roles = batch.roles
    kinds = np.zeros(roles.shape, dtype=np.int8)
    kinds[(roles == ROLE_CODES["skip"]) | (roles == ROLE_CODES["pool"])] = _SKIP
    kinds[roles == ROLE_CODES["param"]] = _PARAM
    return kinds


def _masked_sum(terms: list[tuple[np.ndarray, np.ndarray | None]]) -> np.ndarray | None:
    """Σ mask_b · X_b over (mask (B,), X (B, N, N) or None = zero) terms; None when all are zero."""
    acc = None
    for mask, x in terms:
        if x is None:
            continue
        m = mask[:, None, None]
        if acc is None:
            acc = np.array(x) if mask.all() else np.where(m, x, 0.0)
        elif mask.all():
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
    """The recursion of THEORY.md §3 for a (b, E) kinds array; returns C_HH, (b, N, N).

    ``cov[(a, c)]`` (a >= c) holds C_ac for all b architectures at once, None where it is zero for
    all of them. C_ac is symmetric as an N×N matrix (it is a sum of symmetric innovation kernels
    weighted by skip-path counts), so only a >= c is stored. Architectures without an edge are
    masked out of each sum, which is how one pass serves every topology in the batch.
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
        if exact:
            for c in range(t):
                cov[(t, c)] = _masked_sum([(m, get(a, c)) for a, m in skips])
            terms = [(m, cov[(t, a)]) for a, m in skips]
        else:
            terms = [(m, cov[(a, a)]) for a, m in skips]
        for s, m in params:
            if s not in activated:
                src = cov[(s, s)]
                prefix = kinds[:, : s * (s + 1) // 2]  # edges into nodes 1..s (pairs sorted by target)
                activated[s] = None if src is None else _relu_map_by_prefix(src, prefix, sigma2)
            terms.append((m, activated[s]))
        cov[(t, t)] = _masked_sum(terms)
    out = cov[(n_nodes - 1, n_nodes - 1)]
    return np.zeros((b, n, n)) if out is None else np.array(out)


def _check_mode(mode: str, sigma2: float) -> None:
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
    _check_mode(mode, sigma2)
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
    _check_mode(mode, sigma2)
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


# ====================================================================== scorers
class NNGPScorer(BatchScorer):
    """A scalar of the output NNGP kernel of each cell (see :data:`QUANTITIES`).

    Parameters
    ----------
    name, quantity
        Registry name and one of :data:`QUANTITIES`.
    mode, sigma2
        Kernel propagation and weight variance (:func:`nngp_kernels`).
    gram
        Input Gram (N, N); default :func:`default_gram` (64 digits samples, seed 0).
    n_samples, seed
        Parameters of the default Gram when ``gram`` is not given.
    eta
        Step size of the ``convergence_factor`` quantity.
    """

    QUANTITIES = {
        "lambda_min": "λ_min(K^H)",
        "normalized": "λ_min(K^H) / mean diagonal of K^H (scale-free)",
        "inverse_condition": "λ_min(K^H) / λ_max(K^H) (scale-free)",
        "convergence_factor": "1 − η λ_min(K^H)/2, Thm 3.1's per-step loss contraction (lower is better)",
        "bound": "[C22] eq. 12 path bound min_{i≠j} (P − Σ_p h^{d_p}(K⁰_ij))",
    }

    def __init__(self, name: str, quantity: str, *, mode: Mode = "exact", sigma2: float = 2.0,
                 gram: np.ndarray | None = None, n_samples: int = DEFAULT_SAMPLES,
                 seed: int = DEFAULT_SEED, eta: float = 0.1):
        if quantity not in self.QUANTITIES:
            raise NasplugError(f"unknown NNGP quantity {quantity!r}; known: {', '.join(self.QUANTITIES)}")
        _check_mode(mode, sigma2)
        self.name, self.quantity, self.mode, self.sigma2 = name, quantity, mode, float(sigma2)
        self.eta = float(eta)
        if quantity == "convergence_factor":
            convergence_factor(0.0, self.eta)  # validate eta now, not at the first score
        self.gram = default_gram(n_samples, seed) if gram is None else check_gram(gram)
        if quantity == "bound":
            check_gram(self.gram, unit_diagonal=True, min_size=2)
        self.higher_is_better = quantity != "convergence_factor"
        self.description = self.QUANTITIES[quantity]

    def score_batch(self, batch: ArchBatch) -> np.ndarray:
        if self.quantity == "bound":
            return path_bound(batch, self.gram)
        stats = kernel_stats(batch, self.gram, self.mode, self.sigma2)
        lam = stats["lambda_min"]
        if self.quantity == "lambda_min":
            return lam
        if self.quantity == "convergence_factor":
            return convergence_factor(lam, self.eta)
        scale = stats["mean_diag"] if self.quantity == "normalized" else stats["lambda_max"]
        # no-path cells have the zero kernel: 0/0 is defined as 0 (see the module docstring)
        return np.divide(lam, scale, out=np.zeros_like(lam), where=scale > 0)


@register("nngp_lambda_min", "scorer",
          "λ_min of the exact NNGP output kernel on 64 digits samples [C22 Thm 3.1]; higher trains faster")
def nngp_lambda_min(**params) -> NNGPScorer:
    return NNGPScorer("nngp_lambda_min", "lambda_min", **{"mode": "exact", **params})


@register("nngp_lambda_min_paper", "scorer",
          "λ_min of the NNGP kernel with [C22]'s simplified propagation (no skip–skip cross terms)")
def nngp_lambda_min_paper(**params) -> NNGPScorer:
    return NNGPScorer("nngp_lambda_min_paper", "lambda_min", **{"mode": "paper", **params})


@register("nngp_lambda_min_normalized", "scorer",
          "λ_min / mean diagonal of the exact NNGP kernel (scale-free)")
def nngp_lambda_min_normalized(**params) -> NNGPScorer:
    return NNGPScorer("nngp_lambda_min_normalized", "normalized", **{"mode": "exact", **params})


@register("nngp_inverse_condition", "scorer",
          "λ_min / λ_max of the exact NNGP kernel (scale-free)")
def nngp_inverse_condition(**params) -> NNGPScorer:
    return NNGPScorer("nngp_inverse_condition", "inverse_condition", **{"mode": "exact", **params})


@register("nngp_convergence_factor", "scorer",
          "1 − η λ_min/2 of the exact NNGP kernel [C22 Thm 3.1], η = 0.1; lower is better")
def nngp_convergence_factor(**params) -> NNGPScorer:
    return NNGPScorer("nngp_convergence_factor", "convergence_factor", **{"mode": "exact", **params})


@register("nngp_bound", "scorer",
          "[C22] eq. 12 path bound P − Σ_p h^{d_p}(c) at the largest input correlation c")
def nngp_bound(**params) -> NNGPScorer:
    return NNGPScorer("nngp_bound", "bound", **params)
