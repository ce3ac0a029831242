"""Spectral scalars of kernel matrices: what the convergence scorers read off an NNGP or NTK.

For gradient descent on the MSE with an ``(N, N)`` kernel ``K`` (NNGP [C22, Thm 3.1] or NTK, Jacot et
al. 2018; Du et al. 2019), the residual along eigenvector ``i`` shrinks by ``(1 − η λ_i)`` per step:
``λ_min`` bounds the slowest direction, ``λ_max`` the largest stable step (``η < 2/λ_max``), so
``λ_min/λ_max = 1/κ`` is the convergence rate at the largest stable step (TE-NAS, Chen et al. 2021,
ranks by the condition number ``κ``). The other scalars summarize the whole spectrum: the log-
determinant (the log-volume of the kernel, NASWOT-style) and the effective rank
``exp(−Σ p_i log p_i)`` with ``p_i = λ_i / Σ λ`` (Roy & Vetterli 2007).

Eigenvalues below the numerical rank tolerance ``N · eps · λ_max`` in magnitude are set to exactly 0
(the kernels are PSD by construction; smaller values are round-off), so ties between singular
kernels are deterministic. A zero kernel (a cell without an input→output path) gets 0 for every
scalar except the log-determinant, which is ``−inf`` like that of any singular kernel.
"""

from __future__ import annotations

import numpy as np

#: Columns of :func:`spectral_table`, in order.
SPECTRAL_STATS: tuple[str, ...] = (
    "lambda_min", "lambda_max", "trace", "logdet", "effective_rank", "inverse_condition",
    "lambda_min_normalized",
)


def snap(low: np.ndarray, high: np.ndarray, n: int) -> np.ndarray:
    """``low`` with entries below the rank tolerance ``n · eps · max(high, 0)`` in magnitude set to 0."""
    tol = n * np.finfo(np.float64).eps * np.maximum(high, 0.0)
    return np.where(np.abs(low) <= tol, 0.0, low)


def lambda_min(kernels: np.ndarray) -> np.ndarray:
    """Smallest eigenvalue of one (N, N) kernel or of each of a (B, N, N) stack, snapped to 0 below
    the rank tolerance (module docstring)."""
    k = np.asarray(kernels, dtype=np.float64)
    ev = np.linalg.eigvalsh(k)
    return snap(ev[..., 0], ev[..., -1], k.shape[-1])


def spectral_table(kernels: np.ndarray) -> np.ndarray:
    """``(B, len(SPECTRAL_STATS))``: every scalar of :data:`SPECTRAL_STATS` for a ``(B, N, N)`` stack.

    ``lambda_min_normalized`` is ``λ_min`` over the mean eigenvalue ``tr K / N`` (scale-free, like
    ``inverse_condition``); both are 0 for a zero kernel.
    """
    k = np.asarray(kernels, dtype=np.float64)
    n = k.shape[-1]
    ev = np.linalg.eigvalsh(k)
    ev = snap(ev, ev[:, -1:], n)
    low, high = ev[:, 0], ev[:, -1]
    trace = np.einsum("bii->b", k)
    positive = np.clip(ev, 0.0, None)
    total = positive.sum(axis=1)
    regular = low > 0
    logdet = np.full(len(k), -np.inf)
    logdet[regular] = np.log(ev[regular]).sum(axis=1)
    p = np.divide(positive, total[:, None], out=np.zeros_like(positive), where=total[:, None] > 0)
    entropy = -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1)
    erank = np.where(total > 0, np.exp(entropy), 0.0)
    inverse_condition = np.divide(low, high, out=np.zeros_like(low), where=high > 0)
    normalized = np.divide(low * n, trace, out=np.zeros_like(low), where=trace > 0)
    return np.stack([low, high, trace, logdet, erank, inverse_condition, normalized], axis=1)


def spectral_stats(kernels: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`spectral_table` as a dict of ``(B,)`` arrays keyed by :data:`SPECTRAL_STATS`."""
    table = spectral_table(kernels)
    return {name: table[:, i] for i, name in enumerate(SPECTRAL_STATS)}
