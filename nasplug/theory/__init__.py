"""Layer 2: the theory the scorers and the trainer implement (numpy; no torch).

* :mod:`nasplug.theory.gram` — input Gram matrices ``K⁰`` (validation, from data, the digits default);
* :mod:`nasplug.theory.nngp` — the NNGP kernel through a DAG, exact and [C22]'s simplification,
  λ_min and the convergence bound [C22 §3, Thm 3.1, eq. 12];
* :mod:`nasplug.theory.hparams` — architecture-aware initialization and maximal learning rate
  [C24 eq. 4, 8–9].

The derivations are in docs/theory.md.
"""

from nasplug.theory.gram import (
    DEFAULT_SAMPLES,
    DEFAULT_SEED,
    GramError,
    check_gram,
    default_gram,
    gram_from_data,
    synthetic_gram,
)
from nasplug.theory.hparams import (
    init_gains,
    lr_multiplier,
    lr_multipliers,
    principled_lr,
    readout_gain,
)
from nasplug.theory.nngp import (
    MODES,
    convergence_factor,
    kernel_stats,
    lambda_min,
    nngp_kernel,
    nngp_kernels,
    path_bound,
    relu_h,
    relu_map,
)

__all__ = [
    "DEFAULT_SAMPLES", "DEFAULT_SEED", "GramError", "check_gram", "default_gram", "gram_from_data",
    "synthetic_gram", "init_gains", "lr_multiplier", "lr_multipliers", "principled_lr", "readout_gain",
    "MODES", "convergence_factor", "kernel_stats", "lambda_min", "nngp_kernel", "nngp_kernels",
    "path_bound", "relu_h", "relu_map",
]
