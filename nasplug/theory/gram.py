"""Input Gram matrices ``K⁰`` (N, N) of node 0 for the NNGP/NTK kernels: validation, from data,
synthetic, and the bundled-digits default the registered scorers use (docs/theory.md §3).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from nasplug.errors import NasplugError

#: Default input Gram of the registered scorers: this many digits samples, this seed.
DEFAULT_SAMPLES = 64
DEFAULT_SEED = 0


class GramError(NasplugError, ValueError):
    """An input Gram matrix that is not a finite, symmetric, positive semi-definite (N, N) array."""


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
