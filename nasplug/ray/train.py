"""Data-parallel jobs on Ray Train: every job folder is one ``TorchTrainer`` run.

Ray Train starts ``workers`` actors with ``cpus_per_worker`` CPUs (and ``gpus_per_worker`` GPUs —
fractions pack several single-worker jobs on one GPU), sets the torch.distributed variables,
initializes the process group (NCCL across GPUs, gloo otherwise) and runs
:func:`train_loop_per_worker`: the same :func:`nasplug.ddp.fit` as under torchrun, on the device Ray
assigned, with checkpoints through Ray (:class:`RaySink`). When a worker dies, Ray restarts the
whole group (``FailureConfig(max_failures)``) and the loop resumes from the latest checkpoint; a
new run with the same job name and storage also resumes from it. Several jobs run at once, each
waiting for its resources (``parallel``, default: as many as the cluster's CPUs or GPUs hold).

The driver writes each job's ``result.json`` and copies its final ``checkpoint.pt`` into the job
folder, so results look the same whichever launcher produced them. Checkpoints live under
``storage`` (default: a ``ray`` folder beside the job folders; on a multi-node cluster give shared
or cloud storage, e.g. ``s3://bucket/prefix``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import ray
import ray.train
import torch
from ray.train.torch import TorchConfig, TorchTrainer

from nasplug.ddp.group import WorkerContext, join
from nasplug.ddp.jobs import Echo, read_spec, record_error, result_from_dict
from nasplug.ddp.launch import summary
from nasplug.ddp.loop import CHECKPOINT, RESULT, State, fit, read_checkpoint, write_checkpoint, write_result
from nasplug.ddp.spec import TrainSpec
from nasplug.errors import NasplugError
from nasplug.ray.runner import connect
from nasplug.train import TrainResult

#: How often (s) the Train controller polls workers; a report waits for the previous one to be
#: consumed, so Ray's 2 s default would stretch every short epoch to 2 s.
POLL_INTERVAL_S = "0.2"


class RaySink:
    """Checkpoints through Ray Train: rank 0 reports each epoch with a checkpoint, the others
    report the same metrics without one. The last report's checkpoint holds the final weights and
    ``result.json`` (Ray's ``Result`` keeps the metrics of the latest *checkpoint*)."""

    def __init__(self, ctx: WorkerContext):
        self.ctx = ctx

    def load(self) -> State | None:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            path = Path(folder) / CHECKPOINT
            return read_checkpoint(path) if path.is_file() else None

    def epoch_end(self, metrics: dict[str, float], state: Callable[[], State]) -> None:
        if not self.ctx.is_main:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            write_checkpoint(state(), folder)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))

    def finish(self, result: TrainResult, state: Callable[[], State] | None) -> None:
        metrics = {"status": result.status, "test_acc": result.test_acc}
        if not self.ctx.is_main:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            write_result(result, folder)
            if state is not None:
                write_checkpoint(state(), folder)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def train_loop_per_worker(config: dict) -> None:
    """What every Ray Train worker runs: join the group Ray set up, train, report."""
    spec = TrainSpec.from_dict(config["spec"])
    device = ray.train.torch.get_device() if config["use_gpu"] else torch.device("cpu")
    ctx = join(device)
    fit(spec, ctx, RaySink(ctx))


@dataclass
class RayTrainLauncher:
    """Jobs as Ray Train runs on the cluster at ``address`` (None: the running or a new local one).
    ``use_gpu=None`` uses GPUs when the cluster has any."""

    workers: int = 1
    use_gpu: bool | None = False
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 1.0
    max_failures: int = 1
    parallel: int | None = None
    storage: str | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if self.workers < 1 or self.max_failures < 0 or self.cpus_per_worker <= 0 or self.gpus_per_worker < 0:
            raise NasplugError("workers must be at least 1, max_failures at least 0, CPUs per worker "
                               "positive and GPUs per worker not negative")
        if self.use_gpu and self.gpus_per_worker == 0:
            raise NasplugError("training on GPUs needs GPUs per worker (--gpus-per-worker > 0)")

    def run(self, folders: Sequence[Path], echo: Echo) -> None:
        os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", POLL_INTERVAL_S)
        started = connect(self.address, quiet=True)  # an unreachable address is one line
        try:
            if self.use_gpu is None:
                self.use_gpu = ray.cluster_resources().get("GPU", 0) > 0 and self.gpus_per_worker > 0
            parallel = min(len(folders), self.parallel or self.capacity())
            echo(f"Ray Train: {len(folders)} jobs, {self.workers} worker(s) each, {parallel} at a time")
            with ThreadPoolExecutor(parallel) as pool:
                futures = {pool.submit(self.fit_one, folder): folder for folder in folders}
                for future in as_completed(futures):
                    folder = futures[future]
                    error = future.exception()
                    if error is not None:
                        record_error(folder, f"{type(error).__name__}: {str(error).splitlines()[0]}")
                    echo(f"[{folder.name}] {read_spec(folder).arch}: {summary(folder)}")
        finally:
            if started:
                ray.shutdown()

    def capacity(self) -> int:
        """Jobs the cluster holds at once (at least 1)."""
        resources = ray.cluster_resources()
        if self.use_gpu:
            fits = resources.get("GPU", 0) / (self.workers * self.gpus_per_worker)
        else:
            fits = resources.get("CPU", 0) / (self.workers * self.cpus_per_worker)
        return max(1, int(fits))

    def trainer(self, folder: Path) -> TorchTrainer:
        spec = read_spec(folder)
        per_worker = {"CPU": self.cpus_per_worker}
        if self.use_gpu:
            per_worker["GPU"] = self.gpus_per_worker
        storage = self.storage or str(folder.resolve().parent.with_name("ray"))
        return TorchTrainer(
            train_loop_per_worker,
            train_loop_config={"spec": spec.as_dict(), "use_gpu": self.use_gpu},
            # NCCL needs one GPU per worker; a single worker has no collectives to speed up
            torch_config=TorchConfig(backend="nccl" if self.use_gpu and self.workers > 1 else "gloo"),
            scaling_config=ray.train.ScalingConfig(num_workers=self.workers, use_gpu=self.use_gpu,
                                                   resources_per_worker=per_worker),
            run_config=ray.train.RunConfig(
                name=folder.name, storage_path=storage,
                failure_config=ray.train.FailureConfig(max_failures=self.max_failures),
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)),
        )

    def fit_one(self, folder: Path) -> TrainResult:
        """Run one job folder to its result (raises what ``TorchTrainer.fit`` raises)."""
        outcome = self.trainer(folder).fit()
        with outcome.checkpoint.as_directory() as final:
            result = result_from_dict(json.loads((Path(final) / RESULT).read_text()))
            if (Path(final) / CHECKPOINT).is_file():
                shutil.copyfile(Path(final) / CHECKPOINT, folder / CHECKPOINT)
        write_result(result, folder)
        return result
