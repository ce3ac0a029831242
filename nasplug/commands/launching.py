"""The "where it runs" options shared by ``nasplug retrain`` and ``nasplug rerank``, and turning
them into a launcher and the jobs' run settings (imported by those commands only)."""

from __future__ import annotations

import argparse
from typing import Any

from nasplug.checks import float_arg, int_arg


def add_arguments(parser: argparse.ArgumentParser, default_out: str) -> None:
    """The launcher, placement and GPU options, and ``--out``."""
    run = parser.add_argument_group("where it runs")
    run.add_argument("--launcher", default="local", choices=["local", "ray"],
                     help="local: this machine (torchrun for --workers > 1); ray: Ray Train "
                     "(default local)")
    run.add_argument("--workers", type=int_arg(1), default=1,
                     help="data-parallel processes per training (default 1)")
    run.add_argument("--parallel", type=int_arg(1), default=None,
                     help="trainings at once (default: as many as fit)")
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                     help="auto: CUDA when present (default auto)")
    run.add_argument("--max-restarts", type=int_arg(0), default=1,
                     help="restarts of a worker group after a worker dies, from the last checkpoint "
                     "(default 1)")
    run.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                     help="bf16 autocast on CUDA (default: where supported)")
    run.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                     help="channels_last memory format for conv nets on CUDA (default: on)")
    run.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    run.add_argument("--address", default=None,
                     help="Ray cluster address (default: RAY_ADDRESS or a local one)")
    run.add_argument("--cpus-per-worker", type=float_arg(0.0, low_open=True), default=1.0,
                     help="Ray CPUs per worker (default 1)")
    run.add_argument("--gpus-per-worker", type=float_arg(0.0), default=1.0,
                     help="Ray GPUs per worker on CUDA; fractions pack several trainings on one GPU "
                     "(default 1)")
    run.add_argument("--ray-storage", default=None,
                     help="Ray Train checkpoint storage (default OUT/ray; a shared "
                     "or s3:// path on multi-node clusters)")
    parser.add_argument("--out", default=default_out, help="output folder (default %(default)s)")


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The jobs' run settings (``TrainSpec`` run fields) of the command line."""
    return {"device": args.device, "amp": args.amp, "channels_last": args.channels_last,
            "compile": args.compile}


def launcher(args: argparse.Namespace):
    """The launcher of the command line (a bad combination is a one-line error)."""
    from nasplug.retrain.runner import make_launcher

    return make_launcher(args.launcher, workers=args.workers, parallel=args.parallel, device=args.device,
                         max_restarts=args.max_restarts, cpus_per_worker=args.cpus_per_worker,
                         gpus_per_worker=args.gpus_per_worker, address=args.address,
                         storage=args.ray_storage)
