"""Training throughput of nasplug's data-parallel loop against a plain single-process torch loop.

Prints a table and writes it to docs/train_throughput.md. Every figure is images/s of training
steps (forward, backward, SGD step) in the steady state, measured in one run:

* **CPU** — the NAS-Bench-201 network (C=16, the benchmark's cell ``(4, 3, 3, 3, 2, 3)``) and the
  MLP-DAG of the same cell (no BatchNorm) on digits: a plain torch loop (the baseline),
  ``nasplug.ddp.fit`` in one process, and ``fit`` on 2 gloo workers under torchrun (per-worker
  batch b/2, one thread each). Throughput is taken between the
  ends of epoch 1 and epoch E−1 (start-up, compilation of nothing, and the one evaluation after the
  last epoch excluded); the plain loop is timed over the same number of steps.
* **GPU** (only when CUDA is present) — the same network on CIFAR-10-shaped tensors held on the GPU
  for ``--gpu-steps`` steps at batch 256: the plain loop in fp32, and ``fit`` in fp32, with bf16
  autocast, with channels_last, and with both; then a Ray packing check: 4 single-worker jobs at
  0.25 GPU each sharing one GPU against one job holding the whole GPU (aggregate images/s).

Run: ``.venv/bin/python benchmarks/train_throughput.py [--epochs 4] [--gpu-steps 300] [--no-write]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from nasplug.data import ArrayDataset, load_digits
from nasplug.ddp import FileSink, LocalLauncher, WorkerContext, fit, make_spec, run_jobs
from nasplug.train import build_model

DOC = Path(__file__).resolve().parents[1] / "docs" / "train_throughput.md"
CELL = "(4, 3, 3, 3, 2, 3)"


def plain_loop(data: ArrayDataset, batch: int, steps: int, device: torch.device, *, model: str = "nb201",
               width: int = 16, amp: bool = False, seed: int = 0) -> float:
    """Images/s of the textbook loop: random batches, forward, cross-entropy, backward, SGD step."""
    model = build_model(CELL, model, data, width=width, init="arch_aware", seed=seed).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x_all, y_all = data.x_train.to(device), data.y_train.to(device)
    gen = torch.Generator().manual_seed(seed)

    def step() -> None:
        idx = torch.randint(0, len(y_all), (batch,), generator=gen).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(data.normalize(x_all[idx]))
        loss = torch.nn.functional.cross_entropy(logits.float(), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(min(10, steps)):  # warm-up (allocator, cuDNN autotuning)
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def steady_rate(history: list[dict], images_per_epoch: int) -> float:
    """Images/s between the ends of epoch 1 and of the second-to-last epoch."""
    first, last = history[0], history[-2]
    return images_per_epoch * (last["epoch"] - first["epoch"]) / (last["seconds"] - first["seconds"])


def cpu_rows(epochs: int, model: str, width: int) -> list[tuple[str, float, str]]:
    torch.set_num_threads(1)
    data = load_digits()
    n, batch = len(data.y_train), 64
    spec = make_spec(CELL, "digits", model=model, width=width, epochs=epochs, batch_size=batch,
                     device="cpu", evaluate_every=10**6)
    steps = (epochs - 2) * ((n + batch - 1) // batch)
    rows = [("plain torch loop, 1 process, 1 thread",
             plain_loop(data, batch, steps, torch.device("cpu"), model=model, width=width), "baseline")]
    with tempfile.TemporaryDirectory() as tmp:
        ctx = WorkerContext()
        result = fit(spec, ctx, FileSink(tmp, ctx), data=data)
        rows.append(("nasplug.ddp.fit, 1 process, 1 thread", steady_rate(result.history, n),
                     "checkpoint every epoch"))
        [ddp] = run_jobs([spec], Path(tmp) / "runs", LocalLauncher(workers=2, threads=1), echo=lambda s: None)
        rows.append(("nasplug.ddp.fit, 2 gloo workers (torchrun), 1 thread each", steady_rate(ddp.history, n),
                     "per-worker batch 32" + (", BN synchronized" if model != "mlp" else "")))
    return rows


def gpu_rows(steps: int) -> list[tuple[str, float, str]]:
    device = torch.device("cuda")
    gen = torch.Generator().manual_seed(0)
    n = 10_000
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (n,), generator=gen)
    data = ArrayDataset("cifar10-shaped", images, labels, images[:256], labels[:256], 10,
                        (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    batch = 256
    rows = [("plain torch loop, fp32", plain_loop(data, batch, steps, device), "baseline")]
    epochs = max(3, 2 + (steps * batch) // n)
    spec = make_spec(CELL, "cifar10", width=16, epochs=epochs, batch_size=batch, augment=False, device="cuda",
                     evaluate_every=10**6)
    for label, amp, channels_last in (("fp32", False, False), ("bf16 autocast", True, False),
                                      ("channels_last", False, True), ("bf16 + channels_last", True, True)):
        with tempfile.TemporaryDirectory() as tmp:
            ctx = WorkerContext(device=device)
            run = spec.with_run(amp=amp, channels_last=channels_last)
            result = fit(run, ctx, FileSink(tmp, ctx), data=data)
            rows.append((f"nasplug.ddp.fit, {label}", steady_rate(result.history, n),
                         f"{epochs} epochs of {n} images"))
    return rows + ray_packing_rows()


def ray_packing_rows() -> list[tuple[str, float, str]]:
    """4 single-worker jobs at 0.25 GPU each on one GPU vs one job with the whole GPU (digits)."""
    import ray

    from nasplug.ray.train import RayTrainLauncher

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_gpus=1, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    rows = []
    try:
        n = len(load_digits().y_train)
        specs = [make_spec(CELL, "digits", width=16, epochs=12, batch_size=256, seed=s, evaluate_every=10**6)
                 for s in range(4)]
        with tempfile.TemporaryDirectory() as tmp:
            for label, gpus, jobs, folder in (("Ray Train, 1 job x 1.0 GPU", 1.0, specs[:1], "whole"),
                                              ("Ray Train, 4 jobs x 0.25 GPU, concurrently", 0.25, specs,
                                               "packed")):
                launcher = RayTrainLauncher(workers=1, use_gpu=True, gpus_per_worker=gpus, parallel=len(jobs))
                start = time.perf_counter()
                results = run_jobs(jobs, Path(tmp) / folder, launcher, echo=lambda s: None)
                wall = time.perf_counter() - start
                steady = sum(steady_rate(r.history, n) for r in results)
                rows.append((label, steady, f"sum of steady per-job rates; {wall:.0f} s wall incl. start-up"))
    finally:
        ray.shutdown()
    return rows


def table(rows: list[tuple[str, float, str]]) -> list[str]:
    base = rows[0][1]
    out = ["| loop | images/s | × baseline | note |", "| --- | ---: | ---: | --- |"]
    out += [f"| {name} | {rate:,.0f} | {rate / base:.2f} | {note} |" for name, rate, note in rows]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="CPU epochs per loop (>= 3)")
    parser.add_argument("--gpu-steps", type=int, default=300)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    epochs = max(3, args.epochs)
    nb201, mlp = cpu_rows(epochs, "nb201", 16), cpu_rows(epochs, "mlp", 256)
    lines = ["# Training throughput", "",
             "Generated by `benchmarks/train_throughput.py` (rerun it to update). Images/s of training "
             "steps in the steady state; *× baseline* is against the plain single-process torch loop "
             "measured in the same run. Network: NAS-Bench-201's macro network (C = 16) with the cell "
             f"`{CELL}` (BatchNorm after every conv).", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores visible, Python "
             f"{platform.python_version()}, torch {torch.__version__}; load average at the start "
             f"{os.getloadavg()[0]:.1f} (the cores are shared with other jobs).", "",
             "## CPU (digits, 8×8 images, global batch 64)", "",
             "NAS-Bench-201 network (C = 16; about 80 BatchNorm layers, each synchronized across workers "
             "by one all-reduce per pass):", "", *table(nb201), "",
             "MLP-DAG of the same cell (width 256, no BatchNorm: DDP's gradient all-reduce only):", "",
             *table(mlp), ""]
    if torch.cuda.is_available():
        lines += [f"## GPU ({torch.cuda.get_device_name()}, CIFAR-10-shaped tensors on the device, "
                  "batch 256)", "", *table(gpu_rows(args.gpu_steps)), ""]
    else:
        lines += ["## GPU", "", "Not run: no CUDA device was available when this file was generated. On a "
                  "machine with one, the script adds the plain loop vs `fit` in fp32, bf16 autocast, "
                  "channels_last and both (NB201 network, batch 256, CIFAR-10-shaped tensors held on the "
                  "GPU), and a Ray packing check (4 single-worker jobs at 0.25 GPU each vs one job on the "
                  "whole GPU).", ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        DOC.write_text(text)
        print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
