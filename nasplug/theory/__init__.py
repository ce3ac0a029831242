"""Layer 2: the theory the scorers and the trainer implement (numpy; no torch).

* :mod:`nasplug.theory.gram` — input Gram matrices ``K⁰`` (validation, from data, the digits default);
* :mod:`nasplug.theory.relu` — the ReLU dual maps ``f₁``, ``ḟ₁`` and the readout's NTK map;
* :mod:`nasplug.theory.propagation` — the batched kernel recursion through a DAG (innovation form,
  exact and [C22]'s simplification, distinct networks, prefix reuse), shared by NNGP and NTK;
* :mod:`nasplug.theory.nngp` — the NNGP kernel through a DAG, λ_min and the convergence bound
  [C22 §3, Thm 3.1, eq. 12];
* :mod:`nasplug.theory.ntk` — the NTK of the theory network and its conv/pool-aware variant (§7);
* :mod:`nasplug.theory.spectral` — λ_min, log det, effective rank and other spectral scalars;
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
    convergence_factor,
    kernel_stats,
    nngp_kernel,
    nngp_kernels,
    path_bound,
)
from nasplug.theory.ntk import NTKConfig, ntk_kernel, ntk_kernels, ntk_stats
from nasplug.theory.propagation import MODES
from nasplug.theory.relu import readout_ntk, relu_h, relu_map, relu_maps
from nasplug.theory.spectral import SPECTRAL_STATS, lambda_min, spectral_stats

__all__ = [
    "DEFAULT_SAMPLES", "DEFAULT_SEED", "GramError", "check_gram", "default_gram", "gram_from_data",
    "synthetic_gram", "init_gains", "lr_multiplier", "lr_multipliers", "principled_lr", "readout_gain",
    "MODES", "convergence_factor", "kernel_stats", "lambda_min", "nngp_kernel", "nngp_kernels",
    "path_bound", "relu_h", "relu_map", "relu_maps", "readout_ntk", "NTKConfig", "ntk_kernel", "ntk_kernels",
    "ntk_stats", "SPECTRAL_STATS", "spectral_stats",
]
