"""Synchronized BatchNorm: statistics over the *global* batch of a data-parallel run.

With per-worker batches of ``b / W``, plain BatchNorm normalizes each worker's slice by its own
mean and variance, so a W-worker run is no longer the one-process run with batch ``b``.
Synchronized BN all-reduces the statistics first. On CUDA that is :class:`torch.nn.SyncBatchNorm`;
it has no CPU kernels (``batch_norm_stats`` is CUDA-only and its forward rejects CPU tensors), so
CPU (gloo) groups use :class:`CPUSyncBatchNorm`, which computes the same function with one
differentiable all-reduce of the per-channel sums of ``x`` and ``x²`` in float64 (torch's
functional collectives: the backward of a sum all-reduce sums the gradients of every worker's loss
with respect to the shared statistics, as SyncBatchNorm's backward does). One collective per
layer and pass matters on CPUs, where every collective is a synchronization of all workers.

Both keep BatchNorm's parameter and buffer names, so checkpoints move freely between plain,
CPU-synchronized and CUDA-synchronized models.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training-mode statistics are those of the global batch (any input rank ≥ 2).

    In training mode in an initialized group of more than one process: mean ``μ = Σx / N`` and
    biased variance ``σ² = Σx² / N − μ²`` (sums in float64) over all workers' samples (and spatial
    positions, ``N`` in total), output ``(x − μ) / sqrt(σ² + eps) · weight + bias``, running
    statistics updated with ``μ`` and the unbiased ``σ² · N / (N − 1)`` — exactly
    :class:`torch.nn.BatchNorm2d` on the concatenated batch. Otherwise (eval mode, one process) it
    is plain BatchNorm.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed import _functional_collectives as funcol

        def all_reduce(t: torch.Tensor) -> torch.Tensor:
            return funcol.all_reduce(t, "sum", dist.group.WORLD)

        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        wide = x.double()  # E[x²] − E[x]² in float64: one collective instead of two, no cancellation
        count = wide.new_tensor([x.numel() // x.shape[1]])
        totals = all_reduce(torch.cat([wide.sum(dims), (wide * wide).sum(dims), count]))
        c, n = x.shape[1], totals[-1]
        mean64 = totals[:c] / n
        var = (totals[c:2 * c] / n - mean64 * mean64).clamp_min(0).to(x.dtype)
        mean = mean64.to(x.dtype)
        centered = x - mean.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                            else self.momentum)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * (float(n) / (float(n) - 1)), momentum)
        y = centered * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with every BatchNorm synchronized across the process group (a model without BN is
    returned unchanged): :class:`torch.nn.SyncBatchNorm` on CUDA, :class:`CPUSyncBatchNorm` on CPU."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert_cpu(model)


def _convert_cpu(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, CPUSyncBatchNorm):
        out = CPUSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats)
        out.load_state_dict(module.state_dict())
        out.train(module.training)
        return out
    for name, child in module.named_children():
        converted = _convert_cpu(child)
        if converted is not child:
            setattr(module, name, converted)
    return module
