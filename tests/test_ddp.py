"""Data-parallel training (nasplug.ddp) on CPUs with gloo.

The independent truth: W workers with per-worker batch b/W after k steps hold the parameters (and
BatchNorm statistics) of *one* process with batch b on the same data order — computed here by a
plain torch loop that restates DistributedSampler's order (``randperm`` seeded by seed + epoch).
Resuming from a checkpoint is checked against an uninterrupted run, the shard arithmetic against
the single-process batches, and divergence against a learning rate no network survives.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time

import pytest
import torch
from ddp_reference import NB201_CELL, assert_equivalent, equivalence_spec, max_difference
from procs import command_line, descendants

from nasplug.data import load_digits
from nasplug.ddp import FileSink, LocalLauncher, WorkerContext, fit, make_spec, read_checkpoint, run_jobs
from nasplug.ddp.group import epoch_indices
from nasplug.ddp.jobs import prepare, read_result
from nasplug.ddp.loop import gpu_options
from nasplug.ddp.spec import RECIPES, TrainSpec
from nasplug.errors import ArchError, NasplugError
from nasplug.theory.hparams import principled_lr

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def quiet(line: str) -> None:
    pass


# ---------------------------------------------------------------------- data order
def test_shards_of_each_step_are_the_single_process_batch():
    n, b, world = 40, 8, 2
    for epoch in (1, 2, 3):
        single = epoch_indices(n, epoch, seed=5, ctx=WorkerContext())
        assert sorted(single.tolist()) == list(range(n))
        assert torch.equal(single, torch.randperm(n, generator=torch.Generator().manual_seed(5 + epoch)))
        shards = [epoch_indices(n, epoch, 5, WorkerContext(rank=r, world_size=world)) for r in range(world)]
        assert all(len(s) == n // world for s in shards)
        for j in range(n // b):
            together = torch.cat([s[j * b // world:(j + 1) * b // world] for s in shards])
            assert sorted(together.tolist()) == sorted(single[j * b:(j + 1) * b].tolist())
    assert not torch.equal(epoch_indices(n, 1, 5, WorkerContext()), epoch_indices(n, 2, 5, WorkerContext()))


# ---------------------------------------------------------------------- the equivalence
def test_single_process_loop_is_the_reference(digits, tmp_path):
    spec = equivalence_spec()
    fit(spec, WorkerContext(), FileSink(tmp_path, WorkerContext()), data=digits)
    assert_equivalent(read_checkpoint(tmp_path / "checkpoint.pt")["model"], spec, digits)


def test_two_gloo_workers_under_torchrun_equal_one_process_with_the_global_batch(digits, tmp_path):
    spec = equivalence_spec()
    [result] = run_jobs([spec], tmp_path, LocalLauncher(workers=2), echo=quiet)
    assert result.ok, result.reason
    assert result.info["world_size"] == 2 and result.info["per_worker_batch"] == 32
    state = read_checkpoint(tmp_path / spec.job_id() / "checkpoint.pt")["model"]
    assert_equivalent(state, spec, digits)


# ---------------------------------------------------------------------- resume, divergence
class CrashAfter(FileSink):
    """A sink whose process 'dies' right after checkpointing a given epoch."""

    def __init__(self, folder, ctx, epoch):
        super().__init__(folder, ctx)
        self.crash_epoch = epoch

    def epoch_end(self, metrics, state):
        super().epoch_end(metrics, state)
        if metrics["epoch"] == self.crash_epoch:
            raise RuntimeError("worker lost")


def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(digits, tmp_path):
    spec = make_spec("2_21_112", "digits", model="cnn", width=8, epochs=3, augment=True, device="cpu")
    ctx = WorkerContext()
    for name in ("whole", "resumed"):
        (tmp_path / name).mkdir()
    fit(spec, ctx, FileSink(tmp_path / "whole", ctx), data=digits)
    with pytest.raises(RuntimeError, match="worker lost"):
        fit(spec, ctx, CrashAfter(tmp_path / "resumed", ctx, 1), data=digits)
    assert read_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["epoch"] == 1
    resumed = fit(spec, ctx, FileSink(tmp_path / "resumed", ctx), data=digits)
    assert resumed.ok and resumed.info["resumed_from_epoch"] == 1
    assert [m["epoch"] for m in resumed.history] == [1, 2, 3]
    whole = read_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    again = read_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert max_difference(whole["model"], again["model"]) == 0.0  # bit-identical on CPU
    assert [m["train_loss"] for m in whole["history"]] == [m["train_loss"] for m in again["history"]]


@pytest.mark.slow
def test_a_killed_torchrun_worker_restarts_the_group_from_the_last_checkpoint(tmp_path):
    spec = make_spec("2_21_112", "digits", model="cnn", width=8, epochs=6, device="cpu")
    folder = prepare(spec, tmp_path / "killed")
    killed: list[int] = []

    def kill_a_worker_after_epoch_1() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not killed:
            workers = [pid for pid in descendants(os.getpid()) if b"nasplug.ddp.worker" in command_line(pid)
                       and b"nasplug.ddp.torchrun" not in command_line(pid)]
            if len(workers) == 2 and (folder / "checkpoint.pt").is_file():
                os.kill(workers[-1], signal.SIGKILL)
                killed.append(workers[-1])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker_after_epoch_1, daemon=True)
    killer.start()
    [result] = run_jobs([spec], tmp_path / "killed", LocalLauncher(workers=2, max_restarts=1), echo=quiet)
    killer.join()
    assert killed, "no worker was found to kill"
    assert result.ok and result.info["resumed_from_epoch"] >= 1
    assert [m["epoch"] for m in result.history] == [1, 2, 3, 4, 5, 6]
    [whole] = run_jobs([spec], tmp_path / "whole", LocalLauncher(workers=2), echo=quiet)
    assert whole.ok and whole.info["resumed_from_epoch"] == 0
    final = read_checkpoint(folder / "checkpoint.pt")["model"]
    reference = read_checkpoint(tmp_path / "whole" / spec.job_id() / "checkpoint.pt")["model"]
    assert max_difference(final, reference) == 0.0


def test_a_checkpoint_of_another_job_is_refused(digits, tmp_path):
    ctx = WorkerContext()
    a = make_spec("2_21_112", "digits", model="cnn", width=8, epochs=1, device="cpu")
    b = make_spec("2_21_112", "digits", model="cnn", width=8, epochs=2, device="cpu")
    fit(a, ctx, FileSink(tmp_path, ctx), data=digits)
    with pytest.raises(NasplugError, match="belongs to job"):
        fit(b, ctx, FileSink(tmp_path, ctx), data=digits)


def diverging_spec() -> TrainSpec:
    return make_spec("2_22_222", "digits", model="cnn", width=8, epochs=3, lr=1e6, device="cpu")


def test_divergence_is_a_final_result(tmp_path):
    spec = diverging_spec()
    [result] = run_jobs([spec], tmp_path, LocalLauncher(), echo=quiet)
    assert result.status == "diverged" and "loss became nan at epoch 1" in result.reason
    lines = []
    run_jobs([spec], tmp_path, LocalLauncher(), echo=lines.append)  # not trained again
    assert lines == [f"1 of 1 jobs finished earlier (kept in {tmp_path})"]


@pytest.mark.slow
def test_divergence_stops_both_workers_and_is_recorded(tmp_path):
    spec = diverging_spec()
    [result] = run_jobs([spec], tmp_path, LocalLauncher(workers=2), echo=quiet)
    assert result.status == "diverged" and not result.ok
    assert "nan" in result.reason or "inf" in result.reason
    assert read_result(tmp_path / spec.job_id()).status == "diverged"  # torchrun exited cleanly


def test_a_crashed_job_is_recorded_and_retried(tmp_path, monkeypatch):
    spec = make_spec("2_21_112", "digits", model="cnn", width=8, epochs=1, device="cpu")
    folder = prepare(spec, tmp_path)
    monkeypatch.setattr("nasplug.ddp.launch.run_folder", lambda *a, **k: 1 / 0)
    [result] = run_jobs([spec], tmp_path, LocalLauncher(), echo=quiet)
    assert result.status == "error" and "ZeroDivisionError" in result.reason
    monkeypatch.undo()
    [result] = run_jobs([spec], tmp_path, LocalLauncher(), echo=quiet)
    assert result.ok and json.loads((folder / "result.json").read_text())["status"] == "ok"


def test_pytorch_default_init_is_seeded_by_the_spec(digits, tmp_path):
    # init="torch" draws from the global generator: the same job must not depend on its state
    spec = make_spec("2_21_112", "digits", model="cnn", width=8, epochs=1, init="torch", device="cpu")
    ctx, losses = WorkerContext(), []
    for run in range(2):
        torch.randn(7 * run + 1)
        (tmp_path / str(run)).mkdir()
        result = fit(spec, ctx, FileSink(tmp_path / str(run), ctx), data=digits)
        losses.append(result.history[-1]["train_loss"])
    assert losses[0] == losses[1]


# ---------------------------------------------------------------------- GPU options on CPU
def test_gpu_options_change_nothing_on_cpu(digits, tmp_path):
    plain = make_spec("2_21_112", "digits", model="cnn", width=8, epochs=1, device="cpu")
    gpu = plain.with_run(amp=True, channels_last=True, compile=True)
    assert gpu.job_id() == plain.job_id()
    assert gpu_options(gpu, torch.device("cpu")) == {"amp": False, "channels_last": False, "compile": False}
    ctx = WorkerContext()
    runs = []
    for name, spec in (("plain", plain), ("gpu", gpu)):
        (tmp_path / name).mkdir()
        runs.append(fit(spec, ctx, FileSink(tmp_path / name, ctx), data=digits))
    assert runs[0].history[-1]["train_loss"] == runs[1].history[-1]["train_loss"]


# ---------------------------------------------------------------------- specs
def test_nb201_cells_default_to_the_nas_bench_201_recipe():
    spec = make_spec(NB201_CELL, "cifar10")
    nb = RECIPES["nb201"]
    assert (spec.model, spec.recipe, spec.epochs, spec.batch_size) == ("nb201", "nb201", 200, 256)
    assert (spec.momentum, spec.nesterov, spec.weight_decay, spec.schedule) == (0.9, True, 5e-4, "cosine")
    assert spec.augment and spec.lr == pytest.approx(principled_lr(NB201_CELL, nb.lr, "nb201"))
    dag = make_spec("2_21_112", "digits")
    assert (dag.model, dag.recipe, dag.epochs, dag.batch_size) == ("mlp", "default", 10, 64)
    assert not dag.augment


def test_the_learning_rate_follows_the_global_batch_only():
    base = make_spec(NB201_CELL, "cifar10")
    double = make_spec(NB201_CELL, "cifar10", batch_size=512)
    assert double.lr == pytest.approx(2 * base.lr) and "512/256" in double.lr_rule
    assert make_spec(NB201_CELL, "cifar10", lr=0.05, batch_size=512).lr == 0.05  # given: as is
    # the number of workers is not part of the job: the same spec runs on any of them
    assert base.per_worker_batch(1) == 256 and base.per_worker_batch(4) == 64
    with pytest.raises(NasplugError, match="divisible"):
        base.per_worker_batch(3)


def test_job_ids_name_what_is_computed():
    spec = make_spec("2_21_112", "digits", epochs=2)
    assert spec.job_id() == make_spec("2_21_112", "digits", epochs=2).job_id()
    assert spec.job_id() != make_spec("2_21_112", "digits", epochs=3).job_id()
    assert spec.job_id() != make_spec("2_21_112", "digits", epochs=2, seed=1).job_id()
    assert spec.job_id() == spec.with_run(device="cuda", compile=True).job_id()
    assert TrainSpec.from_dict(json.loads(json.dumps(spec.as_dict()))) == spec


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch size"), ({"width": 0}, "width"),
    ({"lr": -1.0}, "lr must be"), ({"lr": math.nan}, "lr must be"), ({"base_lr": 0.0}, "base"),
    ({"weight_decay": -1e-4}, "weight_decay"), ({"momentum": 1.0}, "momentum"),
    ({"model": "resnet"}, "model must be one of"), ({"init": "xavier"}, "init must be one of"),
    ({"warmup_epochs": 20.0}, "warmup_epochs"), ({"seed": -1}, "seed"),
    ({"recipe": "imagenet"}, "unknown recipe"), ({"lr": 0.1, "base_lr": 0.1}, "either"),
])
def test_bad_settings_are_one_line_errors(kwargs, match):
    with pytest.raises(NasplugError, match=match):
        make_spec("2_21_112", "digits", **kwargs)


def test_a_cell_without_a_path_has_no_principled_rate():
    with pytest.raises(ArchError):
        make_spec("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "digits")

