"""The data-parallel training loop: one :class:`~nasplug.ddp.spec.TrainSpec` on every worker.

:func:`fit` runs the same code under every launcher — a single process, torchrun, Ray Train — and
talks to the launcher only through a :class:`Sink` (where checkpoints come from and go, where
per-epoch metrics go). Per worker and epoch:

* its shard of a seeded per-epoch permutation (:func:`~nasplug.ddp.group.epoch_indices`, torch's
  DistributedSampler), in batches of ``batch_size / W``, from the training set held on the device;
* PyTorch DDP averages the gradients; BatchNorm is synchronized (:mod:`nasplug.ddp.sync_bn`);
* SGD with the spec's schedule (``nasplug.train.lr_schedule``: warm-up, then cosine to 0);
* the loss of every step is summed over the workers before the finiteness check, so a NaN on any
  worker stops *all* of them at the same step (none is left waiting in a collective) and the run
  ends as :class:`~nasplug.train.TrainingDiverged` with the reason;
* metrics summed over workers; the test set evaluated in shards;
* rank 0 hands the launcher a checkpoint (model, optimizer, epoch, history), and a restarted run
  resumes from it. Shuffling and augmentation are re-seeded from ``(seed, epoch, rank)`` at every
  epoch, so a resumed CPU run is bit-identical to an uninterrupted one.

On CUDA: bf16 autocast, channels_last for conv nets and optional :func:`torch.compile` (spec
fields); on CPUs none of them is applied.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from nasplug.data import ArrayDataset, augment_batch, load_dataset
from nasplug.ddp.group import WorkerContext, all_reduce_sum, epoch_indices
from nasplug.ddp.spec import TrainSpec
from nasplug.ddp.sync_bn import sync_batchnorm
from nasplug.errors import NasplugError
from nasplug.models import count_parameters
from nasplug.train import (
    TrainingDiverged,
    TrainResult,
    build_model,
    evaluate,
    forward_loss,
    lr_schedule,
    optimizer_step,
)

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"
State = dict[str, Any]


class Sink(Protocol):
    """Where a run's checkpoints and metrics go (one implementation per launcher)."""

    def load(self) -> State | None:
        """The latest checkpoint state, or None for a fresh start (called on every worker)."""

    def epoch_end(self, metrics: dict[str, float], state: Callable[[], State]) -> None:
        """After every epoch, on every worker; ``state()`` builds the checkpoint (rank 0 only)."""

    def finish(self, result: TrainResult, state: Callable[[], State] | None) -> None:
        """Once at the end, on every worker; ``state()`` builds the final checkpoint (rank 0 only;
        None after a divergence)."""


def read_checkpoint(path: str | os.PathLike) -> State:
    """A checkpoint written by :func:`write_checkpoint` (tensors and plain data only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def write_checkpoint(state: State, folder: str | os.PathLike) -> Path:
    """Write ``folder/checkpoint.pt`` atomically (a worker killed mid-write leaves the old one)."""
    path = Path(folder) / CHECKPOINT
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def write_result(result: TrainResult, folder: str | os.PathLike) -> Path:
    """Write ``folder/result.json`` atomically."""
    path = Path(folder) / RESULT
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(result.as_dict(), indent=1, default=str))
    os.replace(tmp, path)
    return path


class FileSink:
    """Checkpoints and the result as files in a run folder (torchrun and single processes).

    Every worker reads the checkpoint (the folder is on a file system they share); rank 0 writes it.
    """

    def __init__(self, folder: str | os.PathLike, ctx: WorkerContext):
        self.folder, self.ctx = Path(folder), ctx

    def load(self) -> State | None:
        path = self.folder / CHECKPOINT
        return read_checkpoint(path) if path.is_file() else None

    def epoch_end(self, metrics: dict[str, float], state: Callable[[], State]) -> None:
        if self.ctx.is_main:
            write_checkpoint(state(), self.folder)

    def finish(self, result: TrainResult, state: Callable[[], State] | None) -> None:
        if self.ctx.is_main:  # the last epoch_end already wrote the final checkpoint
            write_result(result, self.folder)


def _evaluate(model: nn.Module, data: ArrayDataset, ctx: WorkerContext, amp: bool) -> tuple[float, float]:
    """Test loss and accuracy, each worker evaluating one contiguous shard of the test set."""
    n = len(data.y_test)
    chunk = math.ceil(n / ctx.world_size)
    lo, hi = min(n, ctx.rank * chunk), min(n, (ctx.rank + 1) * chunk)
    part = replace(data, x_test=data.x_test[lo:hi], y_test=data.y_test[lo:hi])
    loss, acc = evaluate(model, part, "test", device=ctx.device, amp=amp)
    sums = torch.tensor([loss * (hi - lo), acc * (hi - lo), hi - lo], dtype=torch.float64, device=ctx.device)
    all_reduce_sum(sums, ctx)
    total = max(1.0, float(sums[2]))
    return float(sums[0]) / total, float(sums[1]) / total


def gpu_options(spec: TrainSpec, device: torch.device) -> dict[str, bool]:
    """The effective ``amp`` (bf16), ``channels_last`` and ``compile`` settings: CUDA only."""
    cuda = device.type == "cuda"
    bf16 = cuda and torch.cuda.is_bf16_supported()
    return {
        "amp": bf16 if spec.amp is None else bool(spec.amp) and bf16,
        "channels_last": cuda and spec.model != "mlp" and spec.channels_last is not False,
        "compile": cuda and spec.compile,
    }


def fit(spec: TrainSpec, ctx: WorkerContext, sink: Sink, *, data: ArrayDataset | None = None,
        log: Callable[[str], None] | None = None) -> TrainResult:
    """Train ``spec`` as worker ``ctx`` of a data-parallel run; every worker returns the same result.

    ``data`` is loaded from the spec when not given. ``log(line)`` receives one line per epoch on
    rank 0. Returns a :class:`~nasplug.train.TrainResult` (``history``: one metrics dict per epoch,
    ``info``: the job's description, world size, batches, device, GPU options, resume epoch) or a
    :class:`~nasplug.train.TrainingDiverged`.
    """
    start = time.perf_counter()
    dev = ctx.device
    data = data if data is not None else load_dataset(spec.dataset, spec.data_root)
    local_batch = spec.per_worker_batch(ctx.world_size)
    opts = gpu_options(spec, dev)
    torch.manual_seed(spec.seed)  # init="torch" draws from the global generator
    model = build_model(spec.arch, spec.model, data, width=spec.width, init=spec.init, seed=spec.seed)
    params = count_parameters(model)
    if ctx.distributed:
        model = sync_batchnorm(model, dev)
    memory_format = torch.channels_last if opts["channels_last"] else torch.preserve_format
    model = model.to(dev, memory_format=memory_format)
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum,
                          nesterov=spec.nesterov and spec.momentum > 0, weight_decay=spec.weight_decay)
    state = sink.load()
    first_epoch, step, history, seconds_before = 1, 0, [], 0.0
    if state is not None:
        if state.get("job") != spec.job_id():
            raise NasplugError(f"the checkpoint belongs to job {state.get('job')}, not {spec.job_id()}")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        first_epoch, step = int(state["epoch"]) + 1, int(state["step"])
        history, seconds_before = list(state["history"]), float(state["seconds"])
    net: nn.Module = model
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if opts["compile"]:
        net = torch.compile(net)

    n_train = len(data.y_train)
    steps_per_epoch = math.ceil(math.ceil(n_train / ctx.world_size) / local_batch)
    total_steps = spec.epochs * steps_per_epoch
    if spec.max_steps is not None:
        total_steps = min(total_steps, spec.max_steps)
    warmup_steps = int(round(spec.warmup_epochs * steps_per_epoch))
    x_dev, y_dev = data.x_train.to(dev), data.y_train.to(dev)  # the whole training set on the device
    info = {"arch": spec.arch, "model": spec.model, "dataset": data.name, "init": spec.init,
            "params": params, "recipe": spec.recipe, "lr_rule": spec.lr_rule, "job": spec.job_id(),
            "world_size": ctx.world_size, "batch_size": spec.batch_size, "per_worker_batch": local_batch,
            **opts, "resumed_from_epoch": first_epoch - 1}
    result = TrainResult(lr=spec.lr, device=str(dev), history=history, info=info)

    def elapsed() -> float:
        return seconds_before + time.perf_counter() - start

    def checkpoint(epoch: int) -> Callable[[], State]:
        return lambda: {"job": spec.job_id(), "epoch": epoch, "step": step, "history": history,
                        "seconds": elapsed(), "model": model.state_dict(), "optimizer": opt.state_dict()}

    net.train()
    for epoch in range(first_epoch, spec.epochs + 1):
        if step >= total_steps:
            break
        indices = epoch_indices(n_train, epoch, spec.seed, ctx).to(dev)
        gen = torch.Generator().manual_seed((spec.seed * 1_000_003 + epoch) * 1_009 + ctx.rank)
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        correct = torch.zeros((), dtype=torch.long, device=dev)
        seen = 0
        for i in range(0, len(indices), local_batch):
            if step >= total_steps:
                break
            lr = spec.lr * lr_schedule(step, total_steps, warmup_steps, spec.schedule)
            for group in opt.param_groups:
                group["lr"] = lr
            idx = indices[i:i + local_batch]
            x, y = data.normalize(x_dev[idx]), y_dev[idx]
            if spec.augment and x.dim() == 4:
                x = augment_batch(x, gen)
            if opts["channels_last"] and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            logits, loss = forward_loss(net, x, y, amp=opts["amp"])
            total_loss = loss.detach()
            if ctx.distributed:
                total_loss = all_reduce_sum(total_loss.reshape(1).clone(), ctx)
            if not bool(torch.isfinite(total_loss).all()):
                return _stop(result, sink, elapsed(), f"loss became {float(total_loss.sum())} at epoch "
                             f"{epoch}, step {step + 1} (lr {lr:.4g})")
            optimizer_step(opt, loss)
            step += 1
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
        sums = all_reduce_sum(torch.stack([loss_sum, correct.double(), loss_sum.new_tensor(seen)]), ctx)
        total = max(1.0, float(sums[2]))
        metrics: dict[str, Any] = {"epoch": epoch, "train_loss": float(sums[0]) / total,
                                   "train_acc": float(sums[1]) / total, "lr": opt.param_groups[0]["lr"],
                                   "steps": step}
        last = epoch == spec.epochs or step >= total_steps
        if last or epoch % spec.evaluate_every == 0:
            metrics["test_loss"], metrics["test_acc"] = _evaluate(model, data, ctx, opts["amp"])
            if not math.isfinite(metrics["test_loss"]):
                return _stop(result, sink, elapsed(), f"test loss {metrics['test_loss']} after epoch {epoch}")
        metrics["seconds"] = elapsed()
        history.append(metrics)
        if log is not None and ctx.is_main:
            test = f" test_acc {metrics['test_acc']:.4f}" if "test_acc" in metrics else ""
            log(f"epoch {epoch}/{spec.epochs} train_loss {metrics['train_loss']:.4f}{test} "
                f"lr {metrics['lr']:.4g} {metrics['seconds']:.1f}s")
        sink.epoch_end(metrics, checkpoint(epoch))
    _summarize(result, elapsed())
    sink.finish(result, checkpoint(result.epochs_run))
    return result


def _summarize(result: TrainResult, seconds: float) -> None:
    """Fill the result's summary fields from its history (also after resuming a finished run)."""
    if result.history:
        last = result.history[-1]
        result.epochs_run, result.train_loss = int(last["epoch"]), float(last["train_loss"])
        tested = [m for m in result.history if "test_acc" in m]
        if tested:
            result.test_loss, result.test_acc = float(tested[-1]["test_loss"]), float(tested[-1]["test_acc"])
    result.seconds = seconds


def _stop(result: TrainResult, sink: Sink, seconds: float, reason: str) -> TrainingDiverged:
    _summarize(result, seconds)
    out = TrainingDiverged(**{k: v for k, v in result.__dict__.items() if k != "status"})
    out.reason = reason
    sink.finish(out, None)
    return out
