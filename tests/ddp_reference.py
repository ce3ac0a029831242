"""The single-process truth that data-parallel runs are checked against (tests/test_ddp.py and
tests/test_ray_train.py): a plain torch loop with batch b on DistributedSampler's data order."""

from __future__ import annotations

import torch

from nasplug.ddp import make_spec
from nasplug.ddp.spec import TrainSpec
from nasplug.train import build_model

NB201_CELL = "(4, 3, 3, 3, 2, 3)"  # every edge ReLU-conv-BN: BatchNorm everywhere

def equivalence_spec(**run) -> TrainSpec:
    """k = 3 steps of the NB201 network (BN after every conv), global batch 64, constant LR 0.01.

    Few steps because early training of this deep BN net is chaotic: the same single-process loop in
    float32 and in float64 drifts apart ~8x per step (4e-7 after 1 step, 4e-5 after 4, 0.1 after
    8 at this LR; faster at larger LRs), so after many steps no float32 implementation could match
    another to a useful tolerance. After 3 steps round-off is ~1e-6 while another data order moves
    the parameters by ~0.1."""
    return make_spec(NB201_CELL, "digits", width=8, epochs=1, batch_size=64, lr=0.01, max_steps=3,
                     schedule="constant", device="cpu", **run)


def single_process_reference(spec: TrainSpec, data, order_seed: int) -> dict[str, torch.Tensor]:
    """A plain torch loop: one process, batch ``spec.batch_size``, the permutation
    ``randperm(n, seed + epoch)`` of epoch 1 (DistributedSampler's documented draw)."""
    model = build_model(spec.arch, spec.model, data, width=spec.width, init=spec.init, seed=spec.seed)
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum, nesterov=True,
                          weight_decay=spec.weight_decay)
    perm = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(order_seed + 1))
    b = spec.batch_size
    for j in range(spec.max_steps):
        idx = perm[j * b:(j + 1) * b]
        loss = torch.nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.state_dict()


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())


def assert_equivalent(state: dict[str, torch.Tensor], spec: TrainSpec, data) -> None:
    """``state`` equals the single-process run within float tolerance, and the tolerance is
    meaningful: the same loop on another data order lands far away."""
    truth = single_process_reference(spec, data, spec.seed)
    other = single_process_reference(spec, data, spec.seed + 100)
    assert max_difference(state, truth) < 1e-4
    assert max_difference(other, truth) > 1e-2
    assert int(state["stem.1.num_batches_tracked"]) == spec.max_steps


