"""NTK scorers: spectral scalars of each cell's neural tangent kernel (docs/ntk.md, docs/theory.md §7).

The kernel is :mod:`nasplug.theory.ntk`'s: by default the NTK ``Θ_f`` of the trained function of the
theory network in the standard parametrization, with a He-scale trained readout, a frozen stem, the
exact propagation and He initialization. Two families:

* ``ntk_*`` — the **conv/pool-aware** kernel: a ``k × k`` convolution's own-weight term is ``k²``
  times a linear layer's, average pooling is a skip of variance factor ``γ = 1/3``. On MLP DAGs
  (linear layers, no pooling) it equals the plain kernel;
* ``ntk_mlp_*`` — the plain MLP abstraction of [C22] (pooling = identity, every conv a linear layer).

Quantities (:mod:`nasplug.theory.spectral`): for gradient descent on the MSE the residual along the
NTK's eigenvector ``i`` shrinks by ``(1 − η λ_i)`` per step (Jacot et al. 2018; Du et al. 2019), so
``λ_min`` bounds the slowest direction [C22, Thm 3.1 for the NNGP], ``λ_min/λ_max = 1/κ`` is the rate
at the largest stable step (TE-NAS, Chen et al. 2021, ranks by ``κ``), ``λ_min / (tr Θ / N)`` the
trace-normalized ``λ_min``; log det and the effective rank (Roy & Vetterli 2007) summarize the whole
spectrum. All higher-is-better. Cells without an input→output path have the zero kernel: 0, and
``−inf`` for log det.

The scorers of one kernel share one computation: the spectral scalars of the last few (batch,
Gram, kernel) combinations are cached, so ``ntk_lambda_min`` and ``ntk_logdet`` on the same space
cost one propagation.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from nasplug.errors import NasplugError
from nasplug.graph import ArchBatch
from nasplug.scorers.base import BatchScorer
from nasplug.scorers.registry import register
from nasplug.theory.gram import DEFAULT_SAMPLES, DEFAULT_SEED, check_gram, default_gram
from nasplug.theory.ntk import NTKConfig, ntk_stats

#: Registered quantities: spectral statistic -> description.
QUANTITIES = {
    "lambda_min": "λ_min(Θ), the slowest direction of gradient descent",
    "inverse_condition": "λ_min(Θ)/λ_max(Θ) = 1/κ, the rate at the largest stable step (TE-NAS κ, inverted)",
    "lambda_min_normalized": "λ_min(Θ) / (tr Θ / N), trace-normalized λ_min (scale-free)",
    "logdet": "log det Θ (−inf when singular)",
    "effective_rank": "exp(entropy of the normalized eigenvalues) of Θ",
}
#: How many (batch, Gram, kernel) results the scorers keep.
CACHE_SIZE = 4

_cache: OrderedDict = OrderedDict()
_lock = threading.Lock()


def cached_stats(batch: ArchBatch, gram: np.ndarray, config: NTKConfig) -> dict[str, np.ndarray]:
    """:func:`~nasplug.theory.ntk.ntk_stats`, remembered for the last :data:`CACHE_SIZE` inputs."""
    key = (config, batch.n_nodes, batch.roles.tobytes(), batch.kernel_sizes.tobytes(), gram.tobytes())
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    stats = ntk_stats(batch, gram, config)
    with _lock:
        _cache[key] = stats
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return stats


class NTKScorer(BatchScorer):
    """A spectral scalar (:data:`QUANTITIES`) of each cell's output NTK.

    Parameters
    ----------
    name, quantity
        Registry name and one of :data:`QUANTITIES`.
    config
        Which NTK (:class:`~nasplug.theory.ntk.NTKConfig`).
    gram
        Input Gram (N, N); default :func:`~nasplug.theory.default_gram` (64 digits samples, seed 0).
    n_samples, seed
        Parameters of the default Gram when ``gram`` is not given.
    """

    def __init__(self, name: str, quantity: str, config: NTKConfig, *, gram: np.ndarray | None = None,
                 n_samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED):
        if quantity not in QUANTITIES:
            raise NasplugError(f"unknown NTK quantity {quantity!r}; known: {', '.join(QUANTITIES)}")
        self.name, self.quantity, self.config = name, quantity, config
        self.gram = default_gram(n_samples, seed) if gram is None else check_gram(gram)
        kernel = "conv/pool-aware NTK" if config.conv_aware else "NTK of the MLP abstraction"
        self.description = f"{QUANTITIES[quantity]}; {kernel}"

    def score_batch(self, batch: ArchBatch) -> np.ndarray:
        return cached_stats(batch, self.gram, self.config)[self.quantity]


def _factory(name: str, quantity: str, conv_aware: bool):
    """A registry factory for one quantity of one kernel family, with explicit keyword parameters
    (a misspelt one is a clear error)."""

    def factory(*, mode: str = "exact", parametrization: str = "standard", pool_gamma: float = 1 / 3,
                init: str = "he", stem: str | None = None, readout: str = "trained", sigma2_out: float = 2.0,
                gram: np.ndarray | None = None, n_samples: int = DEFAULT_SAMPLES,
                seed: int = DEFAULT_SEED) -> NTKScorer:
        config = NTKConfig(mode=mode, parametrization=parametrization, conv_aware=conv_aware,
                           pool_gamma=pool_gamma, init=init, stem=stem, readout=readout,
                           sigma2_out=sigma2_out)
        return NTKScorer(name, quantity, config, gram=gram, n_samples=n_samples, seed=seed)

    factory.__name__ = factory.__qualname__ = name
    return factory


def _register(quantity: str, conv_aware: bool):
    name = f"ntk_{quantity}" if conv_aware else f"ntk_mlp_{quantity}"
    kernel = "conv/pool-aware NTK (k² own term, pool γ = 1/3)" if conv_aware else "NTK of the MLP abstraction"
    return register(name, "scorer", f"{QUANTITIES[quantity]} of the {kernel} on 64 digits samples")(
        _factory(name, quantity, conv_aware))


ntk_lambda_min = _register("lambda_min", True)
ntk_inverse_condition = _register("inverse_condition", True)
ntk_lambda_min_normalized = _register("lambda_min_normalized", True)
ntk_logdet = _register("logdet", True)
ntk_effective_rank = _register("effective_rank", True)
ntk_mlp_lambda_min = _register("lambda_min", False)
ntk_mlp_inverse_condition = _register("inverse_condition", False)
ntk_mlp_lambda_min_normalized = _register("lambda_min_normalized", False)
ntk_mlp_logdet = _register("logdet", False)
ntk_mlp_effective_rank = _register("effective_rank", False)
