"""The single-process truth that data-parallel runs are checked against (tests/test_ddp.py and
tests/test_ray_train.py): a plain torch loop with batch b on DistributedSampler's data order."""

from __future__ import annotations

import torch

from nasplug.ddp import make_spec
from nasplug.ddp.spec import TrainSpec
from nasplug.train import build_model

NB201_CELL = "(4, 3, 3, 3, 2, 3)"  # every edge ReLU-conv-BN: BatchNorm everywhere

def equivalence_spec(**run) -> TrainSpec:
    """k = 3 steps of the NB201 network (BN after every conv), global batch 64, constant LR 0.003.

    Few steps and a small LR because early training of this deep BN net is chaotic: the same
    single-process loop in float32 and in float64 drifts apart by a factor growing with the LR
    (on digits' 1,079 training images: 7e-7 after 1 step at any LR; at LR 0.01 1e-4 after 2 steps
    and 5e-3 after 3; at LR 0.003 still 8e-7 after 3 steps), so no float32 implementation could
    match another to a useful tolerance after many steps. :func:`assert_equivalent` measures that
    round-off floor instead of assuming it."""
    return make_spec(NB201_CELL, "digits", width=8, epochs=1, batch_size=64, lr=0.003, max_steps=3,
                     schedule="constant", device="cpu", **run)


def single_process_reference(spec: TrainSpec, data, order_seed: int,
                             dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """A plain torch loop: one process, batch ``spec.batch_size``, the permutation
    ``randperm(n, seed + epoch)`` of epoch 1 (DistributedSampler's documented draw), in ``dtype``."""
    model = build_model(spec.arch, spec.model, data, width=spec.width, init=spec.init, seed=spec.seed)
    model = model.to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum, nesterov=True,
                          weight_decay=spec.weight_decay)
    perm = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(order_seed + 1))
    b = spec.batch_size
    for j in range(spec.max_steps):
        idx = perm[j * b:(j + 1) * b]
        loss = torch.nn.functional.cross_entropy(model(data.x_train[idx].to(dtype)), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.state_dict()


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())


def assert_equivalent(state: dict[str, torch.Tensor], spec: TrainSpec, data) -> None:
    """``state`` equals the single-process run within float tolerance, and the tolerance is
    meaningful. The tolerance is the loop's own round-off floor (float32 against float64, the same
    data order) times 10, at least 1e-5; another data order must land 100 times farther away."""
    truth = single_process_reference(spec, data, spec.seed)
    exact = single_process_reference(spec, data, spec.seed, torch.float64)
    other = single_process_reference(spec, data, spec.seed + 100)
    tolerance = max(1e-5, 10 * max_difference(truth, exact))
    assert max_difference(state, truth) < tolerance
    assert max_difference(other, truth) > 100 * tolerance
    assert int(state["stem.1.num_batches_tracked"]) == spec.max_steps
