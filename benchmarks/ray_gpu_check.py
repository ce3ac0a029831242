"""GPU check of the Ray backend: 4 trials at 0.25 GPU share one device, 1 CPU-only trial stays off it.

Needs a machine with a CUDA device and at least 5 CPUs. Starts a local Ray with that machine's
GPUs and runs, as one Tune experiment on the same node:

* 4 trials with ``{"cpu": 1, "gpu": 0.25}`` — each must get the same GPU from Ray
  (``ray.get_gpu_ids()``), pick ``cuda`` (:func:`nasplug.ray.trial_device`), train a CNN-DAG cell on
  digits there, and run at the same time as the others (their training intervals overlap);
* 1 trial with ``{"cpu": 1, "gpu": 0}`` — it must pick ``cpu``, see ``CUDA_VISIBLE_DEVICES=""``,
  train on the CPU and never initialize CUDA (Ray >= 2.60 no longer hides the node's GPUs from it);

then ``nasplug search --backend ray --gpus-per-trial 0.25`` end to end (8 trials, 2 epochs).
Prints a table and exits 1 if a check fails, 2 without a CUDA device (nothing run).

Usage::

    .venv/bin/python benchmarks/ray_gpu_check.py [--out docs/ray_gpu_check.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ARCH = "2_21_112"  # an NB201-style cell with 4 paths


def probe(config: dict) -> None:
    """Tune trainable: train the cell on the trial's device and report what the trial saw."""
    import ray
    import torch
    from ray import tune

    from nasplug.ray import trial_device
    from nasplug.train import train_arch

    start = time.time()
    device = trial_device("auto")
    result = train_arch(ARCH, "digits", model="cnn", epochs=config["epochs"], device=device, progress=False)
    tune.report({"device": device, "trained_on": result.device, "test_acc": float(result.test_acc),
                 "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                 "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
                 "cuda_initialized": torch.cuda.is_initialized(), "start": start, "end": time.time(),
                 "value": float(result.test_acc)})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", default=None, help="also write the table to this Markdown file")
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: the GPU check has not run", file=sys.stderr)
        return 2
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    from ray import tune

    ray.init(num_cpus=max(6, os.cpu_count() or 6), log_to_driver=False, include_dashboard=False)
    checks: list[tuple[str, bool]] = []
    lines = [f"# Ray backend on a GPU ({torch.cuda.get_device_name(0)}, Ray {ray.__version__})", "",
             "Produced by `benchmarks/ray_gpu_check.py`.", "",
             "| trial | resources | Ray GPU ids | CUDA_VISIBLE_DEVICES | device | trained on "
             "| CUDA initialized | test acc | seconds |", "|" + " --- |" * 9]
    with tempfile.TemporaryDirectory() as tmp:
        trainable = tune.with_resources(probe, lambda config: {"cpu": 1, "gpu": config["gpu"]})
        tuner = tune.Tuner(trainable, param_space={"gpu": tune.grid_search([0.25, 0.25, 0.25, 0.25, 0]),
                                                   "epochs": args.epochs},
                           tune_config=tune.TuneConfig(max_concurrent_trials=5),
                           run_config=tune.RunConfig(storage_path=tmp, name="gpu-check", verbose=0))
        rows = [(r.config["gpu"], r.metrics) for r in tuner.fit()]
        for i, (gpu, m) in enumerate(rows):
            lines.append(f"| {i} | cpu 1, gpu {gpu} | {m['gpu_ids']} | {m['cuda_visible']!r} | "
                         f"{m['device']} | {m['trained_on']} | {m['cuda_initialized']} | "
                         f"{m['test_acc']:.3f} | {m['end'] - m['start']:.1f} |")
        shared = [m for gpu, m in rows if gpu > 0]
        alone = [m for gpu, m in rows if gpu == 0]
        checks.append(("4 fractional trials got one and the same GPU",
                       len(shared) == 4 and all(len(m["gpu_ids"]) == 1 for m in shared)
                       and len({m["gpu_ids"][0] for m in shared}) == 1))
        checks.append(("they trained on cuda",
                       all(m["device"] == "cuda" and m["trained_on"].startswith("cuda") for m in shared)))
        overlap = max(m["start"] for m in shared) < min(m["end"] for m in shared)
        checks.append(("the 4 trainings ran at the same time on the device", overlap))
        checks.append(("the CPU-only trial picked cpu, saw no GPU and never initialized CUDA",
                       len(alone) == 1 and alone[0]["device"] == "cpu" and alone[0]["trained_on"] == "cpu"
                       and alone[0]["cuda_visible"] == "" and not alone[0]["cuda_initialized"]))
        checks.append(("every training learned (test accuracy > 0.8)",
                       all(m["test_acc"] > 0.8 for _, m in rows)))

        from nasplug.ray import RayOptions, run_ray_search
        from nasplug.search import SearchConfig

        out = Path(tmp) / "search"
        config = SearchConfig(space="nb201", objective="train", dataset="digits", model="cnn",
                              epochs=2, n_trials=8, storage=str(out / "study.db"), quiet=True)
        began = time.time()
        summary, finished = run_ray_search(config, RayOptions(gpus_per_trial=0.25), out, echo=lambda s: None)
        lines += ["", "`nasplug search --backend ray --gpus-per-trial 0.25 --model cnn --epochs 2 "
                  f"--n-trials 8`: {summary.n_trials} trials, {summary.n_evaluated} evaluated, "
                  f"{summary.n_failed} failed, "
                  f"best {summary.best[0]['value'] if summary.best else float('nan'):.2f} %, "
                  f"{time.time() - began:.0f} s."]
        checks.append(("nasplug search --backend ray on the GPU: 8 trials, none failed",
                       finished and summary.n_trials == 8 and summary.n_failed == 0))
    ray.shutdown()
    lines += ["", "| check | result |", "| --- | --- |"]
    lines += [f"| {name} | {'pass' if ok else 'FAIL'} |" for name, ok in checks]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
