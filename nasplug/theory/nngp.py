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
``"paper"``
    [C22]'s simplified propagation ``K_t = Σ_skip K_a + Σ_param f(K_s)``, which drops the skip–skip
    cross terms. Example: node1 = skip(0), node2 = skip(0) + skip(1) gives ``z_2 = 2 z_0``, so
    ``C_22 = 4 K⁰`` exactly but ``2 K⁰`` in the paper's form.

``f₁`` is the ReLU arc-cosine map with σ² = 2 (:func:`relu_map`), which preserves the diagonal.

The recursion is :mod:`nasplug.theory.propagation` (innovation form, shared with the NTK), with
skip and pool as skips of gain 1 and every param edge of variance ``σ²``. It is vectorized over
architectures (:func:`nngp_kernels` takes an :class:`~nasplug.graph.ArchBatch`): the kernel only
depends on the live edges' roles, so equal theory networks are computed once (NB201's 15,625 cells
are 290 of them, plus the cells without a path), and node ``s``'s kernels once per distinct prefix
of edges into nodes ``<= s``.

**Cells without an input→output path** have the zero kernel; their ``λ_min`` is reported as
``0`` (not NaN): the output is identically zero, the loss never moves (contraction factor 1), and
0 keeps rank statistics well-defined. Eigenvalues below the numerical rank tolerance
``N · eps · λ_max`` (e.g. purely linear cells on a rank-deficient Gram) are likewise reported as
exactly 0, so such ties are deterministic instead of ordered by round-off.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np

from nasplug.errors import NasplugError
from nasplug.graph import ArchBatch, ArchGraph, as_batch, depth_histograms
from nasplug.theory.gram import check_gram
from nasplug.theory.propagation import EdgeModels, map_architectures
from nasplug.theory.propagation import check_mode as check_kernel_mode
from nasplug.theory.relu import relu_h
from nasplug.theory.spectral import snap

Mode = Literal["exact", "paper"]


def check_mode(mode: str, sigma2: float) -> None:
    check_kernel_mode(mode)
    if not (np.isfinite(sigma2) and sigma2 > 0):
        raise NasplugError(f"sigma2 must be a positive number, got {sigma2}")


def _map_kernels(batch: ArchBatch, gram: np.ndarray, mode: str, sigma2: float, chunk: int | None,
                 fn) -> np.ndarray:
    """``fn(C_HH)`` per architecture (cells without a path: ``fn`` of the zero kernel)."""
    check_mode(mode, sigma2)
    g = check_gram(gram)
    return map_architectures(batch, EdgeModels.from_roles(batch, sigma2=sigma2), g, lambda cov, _: fn(cov),
                             fn(np.zeros((1, *g.shape)))[0], mode=mode, ntk=False, block=chunk)


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
        Distinct theory networks per block of the recursion (default: from a 256 MiB budget).

    Notes
    -----
    The result holds ``B·N²`` floats (512 MiB for all of NB201 at N = 64); for scores over whole
    spaces use :func:`kernel_stats`, which never materializes it.
    """
    return _map_kernels(as_batch(batch), gram, mode, sigma2, chunk, lambda cov: cov)


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
def kernel_stats(batch: ArchBatch | Iterable[ArchGraph | str], gram: np.ndarray, mode: Mode = "exact",
                 sigma2: float = 2.0, *, chunk: int | None = None) -> dict[str, np.ndarray]:
    """``lambda_min``, ``lambda_max`` and ``mean_diag`` of every output kernel, each ``(B,)``.

    Computed block by block on the distinct theory networks and scattered back, so memory stays
    bounded for whole spaces. No-path cells get 0 for all three.
    """

    def stats(kernels: np.ndarray) -> np.ndarray:
        ev = np.linalg.eigvalsh(kernels)
        mean_diag = np.einsum("bii->b", kernels) / kernels.shape[-1]
        return np.stack([snap(ev[:, 0], ev[:, -1], kernels.shape[-1]), ev[:, -1], mean_diag], axis=1)

    table = _map_kernels(as_batch(batch), gram, mode, sigma2, chunk, stats)
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
