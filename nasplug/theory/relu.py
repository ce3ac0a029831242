"""The ReLU dual maps of the infinite-width kernels (docs/theory.md §3, §7).

For a centred Gaussian pair ``(u_i, u_j)`` with covariance ``K`` and ReLU ``φ``, with
``c_ij = K_ij / sqrt(K_ii K_jj)``:

    f₁(K)_ij = 2 E[φ(u_i) φ(u_j)]   = sqrt(K_ii K_jj) · h(c_ij)
    ḟ₁(K)_ij = 2 E[φ'(u_i) φ'(u_j)] = 1/2 + arcsin(c_ij)/π        (= h'(c_ij))
    h(c)     = (2c·arcsin c + 2·sqrt(1−c²) + π c) / (2π) = (c·(arcsin c + π/2) + sqrt(1−c²)) / π

(the arc-cosine kernels of degree 1 and 0, Cho & Saul 2009, scaled for He initialization). ``f₁``
propagates the NNGP through ``W φ(·)`` (times ``σ²/2``); ``ḟ₁`` propagates the NTK's back-propagated
part (Jacot et al. 2018; Arora et al. 2019, eq. 4).

Numerics, shared by every map here: ``c`` is clipped into [−1, 1], a sample with zero variance (a
dead node: ``φ(z) = 0`` and, as in autograd, ``φ'(0) = 0``) maps to 0 without NaN warnings, and the
diagonal correlation of a live sample is set to exactly 1. The last point matters for ``ḟ₁``:
``arcsin`` has a square-root singularity at 1, so a round-off ``c_ii = 1 − 1e-16`` would move
``ḟ₁``'s diagonal by ~1e-8.
"""

from __future__ import annotations

import numpy as np


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


def _correlations(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(c, norm, live)`` of a ``(..., N, N)`` stack: correlations (0 for dead samples, exactly 1 on
    a live diagonal), ``norm_ij = sqrt(K_ii K_jj)`` and the mask ``norm > 0``."""
    k = np.asarray(kernel, dtype=np.float64)
    d = np.sqrt(np.clip(np.diagonal(k, axis1=-2, axis2=-1), 0.0, None))
    norm = d[..., :, None] * d[..., None, :]
    live = norm > 0
    c = np.divide(k, norm, out=np.zeros_like(k), where=live)
    np.clip(c, -1.0, 1.0, out=c)
    diag = np.arange(k.shape[-1])
    c[..., diag, diag] = live[..., diag, diag]
    return c, norm, live


def relu_map(kernel: np.ndarray, sigma2: float = 2.0) -> np.ndarray:
    """Kernel of ``W φ(z)`` when ``z`` has kernel ``kernel`` and ``W ~ N(0, σ²/n)``: ``(σ²/2) f₁(K)``.

    Works on one ``(N, N)`` kernel or a stack ``(..., N, N)``; dead samples map to 0 (module doc).
    """
    c, norm, _ = _correlations(kernel)
    out = relu_h(c)
    out *= norm
    if sigma2 != 2.0:
        out *= sigma2 / 2.0
    return out


def relu_maps(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(f₁(K), ḟ₁(K))`` of one ``(N, N)`` kernel or a stack, sharing one ``arcsin``.

    ``ḟ₁`` is 0 on the rows and columns of dead samples (``φ'(0) = 0``).
    """
    c, norm, live = _correlations(kernel)
    angle = np.arcsin(c)
    angle += np.pi / 2
    angle *= live
    f1 = c * angle
    f1 += np.sqrt(1.0 - c * c)
    f1 *= norm / np.pi
    return f1, angle / np.pi


def readout_ntk(nngp: np.ndarray, ntk: np.ndarray, own: float, backprop: float) -> np.ndarray:
    """The NTK of ``f = v · φ(z)`` from the kernels of ``z``: ``own·f₁(C) + backprop·ḟ₁(C) ⊙ Θ``.

    ``own`` weighs the readout's own-weight term and ``backprop`` (``σ_out²/2``) the part
    back-propagated into ``z``. Fused to one ``arcsin`` and one square root per entry, using
    ``sqrt(C_ii C_jj)·c = C_ij`` (``(..., N, N)`` stacks; dead samples give 0)::

        Θ_f,ij = [(arcsin c_ij + π/2)·(own·C_ij + backprop·Θ_ij) + own·sqrt(C_ii C_jj − C_ij²)] / π
    """
    c, norm, live = _correlations(nngp)
    angle = np.arcsin(c)
    angle += np.pi / 2
    angle *= live
    out = np.multiply(ntk, backprop)
    if own:
        out += own * np.asarray(nngp, dtype=np.float64)
    out *= angle
    if own:
        rest = norm * norm
        rest -= np.square(nngp)
        np.clip(rest, 0.0, None, out=rest)
        diag = np.arange(rest.shape[-1])
        rest[..., diag, diag] = 0.0  # exactly: a round-off residue would add own·sqrt(eps)·C_ii
        out += own * np.sqrt(rest, out=rest)
    out /= np.pi
    return out
