"""Measures of a built torch network used by the baseline proxies: multiply-accumulates,
NASWOT and synflow.

References: NASWOT — J. Mellor, J. Turner, A. Storkey, E. Crowley, *Neural Architecture Search
without Training*, ICML 2021. Synflow — H. Tanaka, D. Kunin, D. Yamins, S. Ganguli, *Pruning neural
networks without any data by iteratively conserving synaptic flow*, NeurIPS 2020; as a NAS proxy,
M. Abdelfattah et al., *Zero-Cost Proxies for Lightweight NAS*, ICLR 2021.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def count_flops(model, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of every linear and conv layer for one input (the convention of
    NAS-Bench-201's FLOPs; BN, pooling and additions are not counted). Works on a model built on
    the ``meta`` device (only shapes are needed)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Linear):
            total += module.in_features * module.out_features * (output.numel() // module.out_features)
        else:  # conv: output elements × (in_channels / groups) × k_h × k_w
            k = int(np.prod(module.kernel_size))
            total += output.numel() * module.in_channels // module.groups * k

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Linear | nn.Conv2d | nn.Conv1d)]
    try:
        was_training = model.training
        model.eval()
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    return total


def naswot_score(model, inputs) -> float:
    """NASWOT [Mellor et al. 2021]: ``log |K_H|`` with ``K_H[i, j] = N_A − Hamming(c_i, c_j)``, where
    ``c_i`` is the binary pattern (unit active or not) of all ``N_A`` ReLUs on input ``i``.

    Inputs whose activation patterns differ more give a better-conditioned kernel and a larger
    score. Patterns are read at every :class:`torch.nn.ReLU` (the pre-activation is > 0). BatchNorm
    runs in training mode (batch statistics), as in the authors' code. Returns ``-inf`` when
    ``K_H`` is singular (e.g. two inputs with identical patterns).
    """
    n = inputs.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64)

    def hook(module, args, output):
        codes = (args[0].detach().reshape(n, -1) > 0).double()
        kernel.add_(codes @ codes.T + (1.0 - codes) @ (1.0 - codes).T)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        model.train()
        with torch.no_grad():
            model(inputs)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = np.linalg.slogdet(kernel.numpy())
    return float(logdet) if sign > 0 else float("-inf")


def synflow_score(model, input_shape: tuple[int, ...]) -> float:
    """Synflow [Tanaka et al. 2020]: ``Σ_θ θ · ∂R/∂θ`` with ``R = 1ᵀ f(1)`` on the network whose
    parameters are replaced by their absolute values, in double precision.

    With non-negative weights and an all-ones input every ReLU is the identity, so ``R`` is the sum
    over all input→output paths of the product of absolute weights; BatchNorm must be absent (build
    the network with ``bn=False``, as the zero-cost-proxy code does) or it would recentre the
    activations. The model is changed in place (double precision, absolute weights): pass a copy.
    """
    model = model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.eval()
    model.zero_grad(set_to_none=True)
    out = model(torch.ones((1, *input_shape), dtype=torch.float64))
    out.sum().backward()
    total = sum(float((p.detach() * p.grad).sum()) for p in model.parameters() if p.grad is not None)
    return total
