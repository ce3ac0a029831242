"""Run job folders on this machine: in this process, in a process pool, or with torchrun.

:class:`LocalLauncher` runs ``parallel`` jobs at once, each on ``workers`` data-parallel processes:

* ``workers == 1, parallel == 1`` — in this process, one job after the other;
* ``workers == 1, parallel > 1`` — a pool of ``parallel`` spawned processes (each imports torch once
  and trains many small jobs, as the re-ranking experiment needs);
* ``workers > 1`` — one ``torchrun --standalone --nproc-per-node W --max-restarts R`` per job, the
  real PyTorch launcher: it starts the workers with the env:// variables, restarts the whole group
  from the last checkpoint when a worker dies, and stops it on SIGTERM.

On GPUs each concurrent job gets its own devices (``CUDA_VISIBLE_DEVICES``), and a worker uses
``cuda:LOCAL_RANK`` among them. CPU threads are shared out: ``cores // (workers · parallel)`` each.

**No orphans.** Interrupting the launcher (Ctrl-C, or SIGTERM turned into an exception by the CLI)
terminates the pool and sends SIGTERM to every torchrun agent, which stops its workers. If the
launcher itself is killed outright, Linux's parent-death signal
(:func:`~nasplug.processes.die_with_parent`, set in every pool worker, torchrun agent and torch
worker) takes every descendant down with it
(``python -m nasplug.ddp.torchrun`` is torchrun with that signal set).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from nasplug.ddp.jobs import LOG, Echo, read_result, read_spec, record_error, run_folder
from nasplug.errors import NasplugError
from nasplug.processes import MAX_PROCESSES_PER_CORE, available_cores, die_with_parent

#: Seconds a torchrun agent gets to stop its workers after SIGTERM before it is killed.
STOP_GRACE = 60.0


def summary(folder: Path) -> str:
    """One line about a job folder's result."""
    result = read_result(folder)
    if result is None:
        return "no result"
    if result.status == "ok":
        return (f"ok  test_acc {result.test_acc:.4f}  {result.epochs_run} epochs  {result.seconds:.1f}s  "
                f"{result.info.get('world_size', 1)}x{result.device}")
    return f"{result.status}: {result.reason}"


def _pool_init(threads: int, gpus: mp.Queue | None) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher handles Ctrl-C and stops the pool
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus.get()
    import torch

    torch.set_num_threads(threads)


def _pool_run(folder: Path) -> tuple[Path, str | None]:
    try:
        run_folder(folder, log=None)
    except Exception as err:  # recorded; the next run retries the job
        return folder, f"{type(err).__name__}: {err}"
    return folder, None


@dataclass
class LocalLauncher:
    """Jobs on this machine (module docstring). ``device``: where the jobs go (``cpu``, ``cuda``,
    or ``auto``: CUDA when present) — it decides the GPU placement, each job's spec its worker
    devices; ``threads``: torch threads per process (default: the cores shared out);
    ``max_restarts``: torchrun restarts of a failed worker group."""

    workers: int = 1
    parallel: int = 1
    max_restarts: int = 1
    device: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.workers < 1 or self.parallel < 1 or self.max_restarts < 0:
            raise NasplugError("workers and parallel must be at least 1, max_restarts at least 0")
        self.slots = self._gpu_slots()  # a placement that cannot work fails before any job starts

    def run(self, folders: Sequence[Path], echo: Echo) -> None:
        parallel = min(self.parallel, len(folders))
        threads = self.threads or max(1, available_cores() // (self.workers * parallel))
        slots = self.slots[:parallel]
        if self.workers == 1 and parallel == 1:
            self._in_process(folders, echo)
        elif self.workers == 1:
            self._pool(folders, parallel, threads, slots, echo)
        else:
            self._torchrun(folders, threads, slots, echo)

    # ------------------------------------------------------------------ placement
    def _gpu_slots(self) -> list[str | None]:
        """``CUDA_VISIBLE_DEVICES`` of each concurrent job (None on CPUs)."""
        import torch

        parallel = self.parallel
        if self.device == "cpu" or (self.device == "auto" and not torch.cuda.is_available()):
            limit, processes = MAX_PROCESSES_PER_CORE * available_cores(), self.workers * parallel
            if processes > limit:
                raise NasplugError(f"{parallel} job(s) x {self.workers} worker(s) = {processes} processes on "
                                   f"this machine's CPUs; at most {limit} ({MAX_PROCESSES_PER_CORE} per core "
                                   "this process may use)")
            return [None] * parallel
        if not torch.cuda.is_available():
            raise NasplugError(f"device {self.device!r} requested but CUDA is not available")
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        need = self.workers * parallel
        if len(ids) < need:
            raise NasplugError(f"{parallel} job(s) x {self.workers} worker(s) need {need} GPUs; "
                               f"{len(ids)} visible")
        return [",".join(ids[s * self.workers:(s + 1) * self.workers]) for s in range(parallel)]

    # ------------------------------------------------------------------ strategies
    def _in_process(self, folders: Sequence[Path], echo: Echo) -> None:
        for folder in folders:
            echo(f"[{folder.name}] {read_spec(folder).arch}: training")
            try:
                run_folder(folder, log=lambda line, f=folder: echo(f"[{f.name}] {line}"))
            except Exception as err:
                record_error(folder, f"{type(err).__name__}: {err}")
            echo(f"[{folder.name}] {summary(folder)}")

    def _pool(self, folders: Sequence[Path], parallel: int, threads: int, slots: list[str | None],
              echo: Echo) -> None:
        ctx = mp.get_context("spawn")
        gpus = None
        if slots[0] is not None:
            gpus = ctx.Queue()
            for slot in slots:
                gpus.put(slot)
        echo(f"training {len(folders)} jobs, {parallel} at a time")
        pool = ProcessPoolExecutor(parallel, mp_context=ctx, initializer=_pool_init, initargs=(threads, gpus))
        futures = {pool.submit(_pool_run, folder): folder for folder in folders}
        try:
            for future in as_completed(futures):
                folder = futures[future]
                try:
                    error = future.result()[1]
                except BrokenProcessPool as err:  # a worker died (killed, out of memory): retried next run
                    error = f"the pool's worker process died: {err}"
                if error is not None:
                    record_error(folder, error)
                echo(f"[{folder.name}] {read_spec(folder).arch}: {summary(folder)}")
        except BaseException:
            for proc in list(getattr(pool, "_processes", {}).values()):  # no public way before 3.14
                proc.terminate()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _torchrun(self, folders: Sequence[Path], threads: int, slots: list[str | None], echo: Echo) -> None:
        queue, running = list(folders), {}
        try:
            while queue or running:
                for slot in range(len(slots)):
                    if slot not in running and queue:
                        running[slot] = _TorchrunJob(queue.pop(0), self.workers, self.max_restarts,
                                                     threads, slots[slot], echo)
                for slot, job in list(running.items()):
                    if job.poll():
                        del running[slot]
                time.sleep(0.2)
        finally:
            for job in running.values():
                job.stop()


class _TorchrunJob:
    """One torchrun agent and the thread copying its output to ``log.txt`` and ``echo``."""

    def __init__(self, folder: Path, workers: int, max_restarts: int, threads: int, gpus: str | None,
                 echo: Echo):
        self.folder, self.echo = folder, echo
        # The agent's shared TCPStore keeps the workers' keys across restarts, so a restarted group
        # can read the dead worker's address and fail or hang (pytorch/pytorch#135712; seen here
        # with torch 2.13): each restarted group gets a fresh store hosted by its rank 0 instead.
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1")
        if gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpus
        cmd = [sys.executable, "-m", "nasplug.ddp.torchrun", "--standalone", f"--nproc-per-node={workers}",
               f"--max-restarts={max_restarts}", "-m", "nasplug.ddp.worker", str(folder)]
        echo(f"[{folder.name}] {read_spec(folder).arch}: torchrun, {workers} workers")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env, bufsize=1)
        self.tail: deque[str] = deque(maxlen=3)
        self.stopping = False  # once stopped, the agent's shutdown traceback goes to the log only
        self.pump = threading.Thread(target=self._copy, daemon=True)
        self.pump.start()

    def _copy(self) -> None:
        with (self.folder / LOG).open("a") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                if line.strip() and not self.stopping:
                    self.tail.append(line.strip())
                    self.echo(f"[{self.folder.name}] {line.rstrip()}")

    def poll(self) -> bool:
        """True once the agent has exited (its result or error recorded)."""
        code = self.proc.poll()
        if code is None:
            return False
        self.pump.join()
        result = read_result(self.folder)
        if code != 0 or result is None or result.status == "error":
            detail = " | ".join(self.tail)
            record_error(self.folder, f"torchrun exited with status {code}: {detail} "
                                      f"(see {self.folder / LOG})")
        self.echo(f"[{self.folder.name}] {summary(self.folder)}")
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.stopping = True
            self.proc.terminate()  # the agent forwards SIGTERM to its workers and waits for them
            try:
                self.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.pump.join(5)
