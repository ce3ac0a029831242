"""The process group of a data-parallel run: this worker's rank, its device, and the collectives.

Every launcher describes a worker with the standard variables of ``torch.distributed``'s env://
initialization — ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``:
``torchrun`` sets them and leaves the group to the script; Ray Train sets them *and* initializes
the group before the training function runs. :func:`join` handles both (and a plain single process,
where none is set), and :func:`leave` tears down only a group it created.

The device comes from the launcher, never from "is CUDA visible": under torchrun a worker uses
``cuda:LOCAL_RANK``; under Ray Train the launcher passes the device Ray assigned (a 0-GPU Ray
worker on a GPU node can still *see* every GPU, so visibility says nothing about assignment).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from nasplug.errors import NasplugError


@dataclass(frozen=True)
class WorkerContext:
    """Who this process is in a data-parallel run (``world_size == 1``: a plain single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # initialized by join(): leave() destroys it

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def worker_device(device: str | torch.device, local_rank: int = 0) -> torch.device:
    """The device of the worker with ``local_rank`` on its node.

    ``"cpu"``; ``"cuda"`` → ``cuda:LOCAL_RANK``; ``"auto"`` → ``cuda:LOCAL_RANK`` when this node has
    CUDA devices, else the CPU; an explicit ``"cuda:N"`` or ``torch.device`` is used as given
    (launchers that assign devices themselves, like Ray Train, pass theirs).
    :class:`~nasplug.errors.NasplugError` when CUDA is asked for and absent or the node has fewer
    GPUs than local workers.
    """
    if isinstance(device, torch.device):
        return device
    text = str(device)
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return torch.device("cpu")
    if not text.startswith("cuda"):
        raise NasplugError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise NasplugError(f"device {device!r} requested but CUDA is not available")
    dev = torch.device(text) if ":" in text else torch.device("cuda", local_rank)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise NasplugError(f"worker {local_rank} needs {dev} but this node has "
                           f"{torch.cuda.device_count()} CUDA device(s)")
    return dev


def join(device: str | torch.device = "auto") -> WorkerContext:
    """Join the run's process group and pick this worker's device.

    * A group already initialized (Ray Train) is used as it is.
    * ``WORLD_SIZE > 1`` in the environment (torchrun) initializes one with env:// — NCCL on CUDA
      devices, gloo on CPUs — and :func:`leave` destroys it.
    * Otherwise this is a single process (``world_size == 1``), no group.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    dev = worker_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if dist.is_available() and dist.is_initialized():
        return WorkerContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, owns_group=False)
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size <= 1:
        return WorkerContext(0, 1, local_rank, dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method="env://",
                            device_id=dev if dev.type == "cuda" else None)
    return WorkerContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, owns_group=True)


def leave(ctx: WorkerContext) -> None:
    """Destroy the group :func:`join` created. The barrier first: with gloo, destroying the group
    right after the last collective aborted a worker (SIGABRT) in a measured run."""
    if ctx.owns_group and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, ctx: WorkerContext) -> torch.Tensor:
    """Sum ``tensor`` over the workers in place (a no-op in a single process); returns it."""
    if ctx.distributed:
        dist.all_reduce(tensor)
    return tensor


def epoch_indices(n: int, epoch: int, seed: int, ctx: WorkerContext) -> torch.Tensor:
    """This worker's sample indices for one epoch, from ``torch``'s :class:`DistributedSampler`.

    The sampler draws one permutation of ``range(n)`` per epoch (seeded by ``seed + epoch``, the
    same on every worker), pads it by repetition to a multiple of the world size and deals it out
    round-robin: worker ``r`` gets positions ``r, r + W, r + 2W, …``. With a per-worker batch of
    ``b / W``, step ``j`` of the W workers together covers positions ``j·b … (j+1)·b − 1`` of the
    permutation — exactly the batch a single process with batch ``b`` takes at step ``j`` (the
    equivalence tests/test_ddp.py checks). Every worker gets the same number of samples, so all
    take the same number of steps (unequal step counts would deadlock DDP).
    """
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(n), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=seed, drop_last=False)
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.long)
