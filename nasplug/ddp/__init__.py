"""Data-parallel (re)training of architectures with PyTorch DDP, under any launcher.

* :mod:`~nasplug.ddp.spec` — :class:`TrainSpec` (one job, JSON-able), recipes (NAS-Bench-201's),
  the global-batch learning-rate rule;
* :mod:`~nasplug.ddp.group` — the process group from the standard environment (torchrun, Ray
  Train), the worker's device, the DistributedSampler shard of an epoch;
* :mod:`~nasplug.ddp.sync_bn` — synchronized BatchNorm (torch's on CUDA, a gloo one on CPUs);
* :mod:`~nasplug.ddp.loop` — :func:`fit`, the training loop every worker runs, with checkpoints
  and resume through a launcher's :class:`~nasplug.ddp.loop.Sink`;
* :mod:`~nasplug.ddp.jobs` — jobs as folders (spec, checkpoint, result), :func:`run_jobs`;
* :mod:`~nasplug.ddp.launch` — :class:`LocalLauncher` (this process, a pool, torchrun);
  Ray Train's launcher is ``nasplug.ray.train``.

See docs/retrain.md.
"""

from nasplug.ddp.group import WorkerContext, join, leave
from nasplug.ddp.jobs import Launcher, read_result, run_jobs
from nasplug.ddp.launch import LocalLauncher
from nasplug.ddp.loop import FileSink, Sink, fit, read_checkpoint
from nasplug.ddp.spec import RECIPES, Recipe, TrainSpec, default_model, make_spec

__all__ = [
    "WorkerContext", "join", "leave", "Launcher", "read_result", "run_jobs", "LocalLauncher",
    "FileSink", "Sink", "fit", "read_checkpoint", "RECIPES", "Recipe", "TrainSpec", "default_model",
    "make_spec",
]
