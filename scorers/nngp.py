"""Convergence scorers of [C22]: scalars of each cell's exact (or paper-style) NNGP output kernel.

The kernel recursion and its spectral quantities are :mod:`nasplug.theory.nngp` (docs/theory.md §3);
by [C22, Thm 3.1] the MSE loss under gradient descent contracts by ``(1 − η λ_min(K^H)/2)`` per step,
so a larger ``λ_min`` trains faster.
"""

from __future__ import annotations

import numpy as np

from nasplug.errors import NasplugError
from nasplug.graph import ArchBatch
from nasplug.scorers.base import BatchScorer
from nasplug.scorers.registry import register
from nasplug.theory.gram import DEFAULT_SAMPLES, DEFAULT_SEED, check_gram, default_gram
from nasplug.theory.nngp import Mode, check_mode, convergence_factor, kernel_stats, path_bound


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
        check_mode(mode, sigma2)
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


def _factory(name: str, quantity: str, mode: Mode = "exact"):
    """A registry factory for one quantity, with explicit keyword parameters (so a misspelt
    parameter is a clear error) and the quantity's default propagation ``mode``."""

    def factory(*, mode: Mode = mode, sigma2: float = 2.0, gram: np.ndarray | None = None,
                n_samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED, eta: float = 0.1) -> NNGPScorer:
        return NNGPScorer(name, quantity, mode=mode, sigma2=sigma2, gram=gram, n_samples=n_samples,
                          seed=seed, eta=eta)

    factory.__name__ = factory.__qualname__ = name
    return factory


nngp_lambda_min = register(
    "nngp_lambda_min", "scorer",
    "λ_min of the exact NNGP output kernel on 64 digits samples [C22 Thm 3.1]; higher trains faster",
)(_factory("nngp_lambda_min", "lambda_min"))
nngp_lambda_min_paper = register(
    "nngp_lambda_min_paper", "scorer",
    "λ_min of the NNGP kernel with [C22]'s simplified propagation (no skip–skip cross terms)",
)(_factory("nngp_lambda_min_paper", "lambda_min", "paper"))
nngp_lambda_min_normalized = register(
    "nngp_lambda_min_normalized", "scorer", "λ_min / mean diagonal of the exact NNGP kernel (scale-free)",
)(_factory("nngp_lambda_min_normalized", "normalized"))
nngp_inverse_condition = register(
    "nngp_inverse_condition", "scorer", "λ_min / λ_max of the exact NNGP kernel (scale-free)",
)(_factory("nngp_inverse_condition", "inverse_condition"))
nngp_convergence_factor = register(
    "nngp_convergence_factor", "scorer",
    "1 − η λ_min/2 of the exact NNGP kernel [C22 Thm 3.1], η = 0.1; lower is better",
)(_factory("nngp_convergence_factor", "convergence_factor"))
nngp_bound = register(
    "nngp_bound", "scorer", "[C22] eq. 12 path bound P − Σ_p h^{d_p}(c) at the largest input correlation c",
)(_factory("nngp_bound", "bound"))
