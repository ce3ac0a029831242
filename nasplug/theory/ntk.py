"""The neural tangent kernel (NTK) of an architecture's theory network, and its conv/pool-aware variant.

Derivation and verification: docs/ntk.md, docs/theory.md §7. Sources: Jacot, Gabriel & Hongler 2018
(the NTK); Arora et al. 2019 (the ReLU recursion, eq. 4 there); Lee et al. 2019 and Sohl-Dickstein
et al. 2020 (the standard parametrization's limit); Yang 2020 (Tensor Programs II: gradient
independence for any architecture without weight reuse); [C22] §3 for the NNGP part.

The theory network (:mod:`nasplug.theory.propagation`) gets a readout ``f = v · φ(z_H)``. Its NTK
``Θ(x, x') = Σ_θ ∂f(x)/∂θ · ∂f(x')/∂θ`` at infinite width follows the recursion of the propagation
module with, for a param edge ``(s, t)``,

* an **own-weight term** ``ω · f₁(C_ss)``: ``∂y/∂W = φ(z_s)``. In the NTK parametrization
  (``W = σ/√fan_in · W̃``, differentiate in ``W̃``) ``ω = σ²/2``. In the **standard** parametrization
  (differentiate in ``W``: what one SGD learning rate for all layers trains; the kernel is
  normalized by ``n/2``) ``ω = fan_in / n``, independent of ``σ²``: 1 for a linear layer, ``k²`` for
  a ``k × k`` convolution;
* a **back-propagated term** ``(σ²/2) ḟ₁(C_ss) ⊙ Θ_ss``, the same in both parametrizations;

and, through the readout (``σ_out²`` its variance numerator),
``Θ_f = ω_out f₁(C_HH) + (σ_out²/2) ḟ₁(C_HH) ⊙ Θ_HH`` with ``ω_out = 1`` (standard) or ``σ_out²/2``
(NTK parametrization). The stem's own term is ``ω_0 K⁰``: 1 (``stem="trained"``, the NTK
parametrization's default) or 0 (``"frozen"``; in the standard parametrization its weight
``2d/(n σ_0²)`` vanishes at infinite width, so frozen is the default there).

Defaults (:class:`NTKConfig`) and why: the **standard** parametrization with a **trained He-scale
readout** (``σ_out² = 2``) — ``Θ_f`` is what ``J Jᵀ`` of a network trained with one learning rate
converges to (checked in tests/test_ntk.py), the convergence argument of GD on the MSE is about the
trained function's kernel, and ``Θ_f ⪰ f₁(C_HH)`` is positive definite for every cell with a path
(parameter-free cells get the random-features kernel, not 0). The **exact** propagation, **He**
initialization (``σ² = 2``) on every param edge.

**Conv/pool-aware kernel** (``conv_aware=True``, the default). The MLP abstraction sees neither a
convolution's kernel size nor average pooling. Modelling assumptions, each stated in docs/ntk.md
with what a finite CNN shows:

1. a ``k × k`` convolution is a linear layer whose own-weight term is ``k²`` times larger in the
   standard parametrization (``ω = k²``): it sums ``k²`` shifted copies of ``f₁``, exact for
   spatially stationary features away from image borders;
2. average pooling is a skip with gain ``√γ`` (variance factor ``γ``; ``γ = 1/9`` for white
   features, 1 for constant ones; ``pool_gamma``, default 1/3, chosen from the fidelity of the
   abstraction to the exact spatial CNTK, not from accuracies: docs/ntk.md);
3. the stem is frozen (standard parametrization);
4. the network is one BN-free cell: no stacking, no batch normalization, no spatial covariance.

With ``conv_aware=False`` pooling is the identity and every param edge a linear layer (the plain
MLP abstraction of [C22]); on MLP DAGs (linear layers, no pooling) the two kernels are equal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from nasplug.errors import NasplugError
from nasplug.graph import ArchBatch, ArchGraph, as_batch, live_in_degree_matrix
from nasplug.theory.gram import check_gram
from nasplug.theory.propagation import EdgeModels, check_mode, map_architectures
from nasplug.theory.relu import readout_ntk
from nasplug.theory.spectral import SPECTRAL_STATS, spectral_table

PARAMETRIZATIONS: tuple[str, ...] = ("standard", "ntk")
READOUTS: tuple[str, ...] = ("trained", "frozen", "none")
INITS: tuple[str, ...] = ("he", "arch_aware")
STEMS: tuple[str, ...] = ("trained", "frozen")
#: What :func:`ntk_kernels` can return: the configured NTK, the output node's own NTK Θ_HH, its NNGP C_HH.
KERNELS: tuple[str, ...] = ("ntk", "node_ntk", "nngp")


@dataclass(frozen=True)
class NTKConfig:
    """Which NTK of the theory network (module docstring). Invalid values raise
    :class:`~nasplug.errors.NasplugError`.

    Parameters
    ----------
    mode
        ``"exact"`` (skip–skip cross terms kept) or ``"paper"`` ([C22]-style propagation).
    parametrization
        ``"standard"`` (one learning rate for all layers) or ``"ntk"``.
    conv_aware
        Own-term weight ``k²`` for ``k × k`` convolutions (standard parametrization) and pooling as a
        skip of gain ``√pool_gamma``; ``False``: the plain MLP abstraction.
    pool_gamma
        Variance factor ``γ ∈ [0, 1]`` of average pooling (0 drops pooling edges, 1 makes them skips).
    init
        ``"he"`` (``σ² = 2`` on every param edge) or ``"arch_aware"`` (``σ² = 2 / d_in(t)``, [C24] eq. 4).
    stem
        ``"trained"`` or ``"frozen"``; None: frozen in the standard parametrization, trained in NTK's.
    readout
        ``"trained"`` (``Θ_f``, the default), ``"frozen"`` (only the part back-propagated through
        the readout) or ``"none"`` (``Θ_HH``, the output node's own NTK).
    sigma2_out
        Readout variance numerator ``σ_out²`` (``v ~ N(0, σ_out²/n)``); 2 is He scale.
    """

    mode: str = "exact"
    parametrization: str = "standard"
    conv_aware: bool = True
    pool_gamma: float = 1 / 3
    init: str = "he"
    stem: str | None = None
    readout: str = "trained"
    sigma2_out: float = 2.0

    def __post_init__(self):
        check_mode(self.mode)
        for value, allowed, what in ((self.parametrization, PARAMETRIZATIONS, "parametrization"),
                                     (self.readout, READOUTS, "readout"), (self.init, INITS, "init")):
            if value not in allowed:
                raise NasplugError(f"unknown NTK {what} {value!r}; use one of {', '.join(allowed)}")
        if self.stem is not None and self.stem not in STEMS:
            raise NasplugError(f"unknown NTK stem {self.stem!r}; use 'trained', 'frozen' or None")
        if not (np.isfinite(self.pool_gamma) and 0 <= self.pool_gamma <= 1):
            raise NasplugError(f"pool_gamma must be in [0, 1], got {self.pool_gamma}")
        if not (np.isfinite(self.sigma2_out) and self.sigma2_out > 0):
            raise NasplugError(f"sigma2_out must be a positive number, got {self.sigma2_out}")

    @property
    def stem_omega(self) -> float:
        """The stem's own-term weight on ``K⁰``: 1 if trained, 0 if frozen."""
        stem = self.stem or ("frozen" if self.parametrization == "standard" else "trained")
        return 1.0 if stem == "trained" else 0.0

    def edge_models(self, batch: ArchBatch) -> EdgeModels:
        """What each edge of ``batch`` is in this kernel's theory network."""
        if self.init == "he":
            sigma2: float | np.ndarray = 2.0
        else:
            degree = live_in_degree_matrix(batch)[:, [t for _, t in batch.pairs]]
            sigma2 = 2.0 / np.maximum(degree, 1)
        if self.parametrization == "ntk":
            omega = np.asarray(sigma2, dtype=np.float64) / 2
        elif self.conv_aware:
            omega = batch.kernel_sizes.astype(np.float64) ** 2
        else:
            omega = 1.0
        pool_gain = float(np.sqrt(self.pool_gamma)) if self.conv_aware else 1.0
        return EdgeModels.from_roles(batch, pool_gain=pool_gain, sigma2=sigma2, omega=omega)

    def readout_weights(self) -> tuple[float, float]:
        """``(ω_out, σ_out²/2)``: the readout's own-term weight and the back-propagation factor."""
        back = self.sigma2_out / 2
        if self.readout != "trained":
            return 0.0, back
        return (1.0 if self.parametrization == "standard" else back), back


def _output_map(config: NTKConfig, kernel: str):
    """``fn(C_HH, Θ_HH)`` giving the requested output kernel (every public function starts here)."""
    if not isinstance(config, NTKConfig):
        raise NasplugError(f"config must be an NTKConfig, got {type(config).__name__}")
    if kernel not in KERNELS:
        raise NasplugError(f"unknown kernel {kernel!r}; use one of {', '.join(KERNELS)}")
    if kernel == "nngp":
        return lambda cov, ntk: cov
    if kernel == "node_ntk" or config.readout == "none":
        return lambda cov, ntk: ntk
    own, back = config.readout_weights()
    return lambda cov, ntk: readout_ntk(cov, ntk, own, back)


def _map(batch: ArchBatch, gram: np.ndarray, config: NTKConfig, fn, threads: int | None) -> np.ndarray:
    """``fn(C_HH, Θ_HH)`` per architecture (cells without a path: ``fn`` of zero kernels)."""
    zero = np.zeros((1, *gram.shape))
    return map_architectures(batch, config.edge_models(batch), gram, fn, fn(zero, zero)[0], mode=config.mode,
                             stem_omega=config.stem_omega, threads=threads)


def ntk_kernels(batch: ArchBatch | Iterable[ArchGraph | str], gram: np.ndarray,
                config: NTKConfig = NTKConfig(), *, kernel: str = "ntk",
                threads: int | None = None) -> np.ndarray:
    """Output kernels of many architectures, ``(B, N, N)``.

    Parameters
    ----------
    batch
        An :class:`~nasplug.graph.ArchBatch` or architectures with equal node counts.
    gram
        Input Gram ``K⁰`` (N, N) of node 0 (:func:`~nasplug.theory.default_gram`).
    config
        Which NTK (:class:`NTKConfig`).
    kernel
        ``"ntk"`` (as configured), ``"node_ntk"`` (``Θ_HH``) or ``"nngp"`` (``C_HH`` of the
        configured theory network).
    threads
        Worker threads (default :data:`~nasplug.theory.propagation.DEFAULT_THREADS`).

    The result holds ``B·N²`` floats; for scalars over whole spaces use :func:`ntk_stats`.
    Cells without an input→output path get the zero kernel.
    """
    batch = as_batch(batch)
    g = check_gram(gram)
    return _map(batch, g, config, _output_map(config, kernel), threads)


def ntk_kernel(arch: ArchGraph | str, gram: np.ndarray,
               config: NTKConfig = NTKConfig()) -> dict[str, np.ndarray]:
    """``{"ntk", "node_ntk", "nngp"}`` (each ``(N, N)``) of one architecture (:func:`ntk_kernels`).

    Examples
    --------
    >>> from nasplug.theory import synthetic_gram
    >>> k = ntk_kernel("1_11", synthetic_gram(2, 0.5), NTKConfig(parametrization="ntk", readout="none"))
    >>> print(k["nngp"][0, 0], k["node_ntk"][0, 0])   # z_2 = 2 z_0: 4 K⁰, and the stem's 4 K⁰
    4.0 4.0
    """
    batch = ArchBatch.from_archs([ArchGraph.parse(arch)])
    g = check_gram(gram)
    output = _output_map(config, "ntk")
    kernels = _map(batch, g, config, lambda cov, ntk: np.stack([output(cov, ntk), ntk, cov], axis=1), 1)
    return dict(zip(KERNELS, kernels[0]))


def ntk_stats(batch: ArchBatch | Iterable[ArchGraph | str], gram: np.ndarray,
              config: NTKConfig = NTKConfig(), *, threads: int | None = None) -> dict[str, np.ndarray]:
    """Spectral scalars of every output NTK (:data:`~nasplug.theory.spectral.SPECTRAL_STATS`), each ``(B,)``.

    Computed on the distinct theory networks only, block by block in ``threads`` threads, and
    scattered back; memory stays bounded for whole spaces. Cells without a path have the zero kernel
    (0 everywhere, ``logdet = −inf``).
    """
    batch = as_batch(batch)
    g = check_gram(gram)
    output = _output_map(config, "ntk")
    table = _map(batch, g, config, lambda cov, ntk: spectral_table(output(cov, ntk)), threads)
    return {name: table[:, i] for i, name in enumerate(SPECTRAL_STATS)}
