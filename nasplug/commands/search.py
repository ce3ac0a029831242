"""``nasplug search``: an Optuna study over a search space, with unpromising cells pruned before training.

``--backend ray`` runs the trials on a Ray cluster (Ray Tune) instead of local processes; the study,
the filter, the report and ``rerun to resume`` stay the same (nasplug.ray.runner, docs/ray.md).

The objective is pluggable: training with each cell's principled init and LR [C24] on digits (default)
or CIFAR (``--dataset cifar10 --data-root DIR``), a NAS-Bench-201 table lookup (``--benchmark FILE``)
for fast reproducible experiments, or any ``--objective MODULE:FUNCTION``. The study lives in a storage
(a SQLite file under ``--out`` by default, any Optuna URL or ``journal:PATH`` with ``--storage``), so
rerunning the same command continues it, several processes can share it (``--jobs N``, or several
commands with different ``--seed``), and ``optuna-dashboard`` can watch it.
"""

from __future__ import annotations

import sys

from nasplug.search.config import PRUNERS, SAMPLERS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "search",
        help="Optuna architecture search that prunes unpromising cells before training",
        description="Run (or resume) an Optuna study over a search space. Cells failing --filter are "
        "re-drawn by the sampler and never trained; cells equal to an evaluated one (same canonical "
        "form) reuse its value. Writes summary.md/json and plots to --out.",
    )
    p.add_argument("--space", default="nb201", help="search space (default nb201; dag, dag:N)")
    p.add_argument("--sampler", default="tpe", choices=SAMPLERS, help="Optuna sampler (default tpe)")
    p.add_argument("--filter", default="dag_box", help="pre-training filter: dag_box (default), "
                   "dag_box_authors, none, or any registered filter (see `nasplug scorers`)")
    p.add_argument("--scorer", default=None,
                   help="training-free scorer recorded per trial as nasplug:proxy (optional)")
    p.add_argument("--n-trials", type=int, default=30,
                   help="trials the study should have in total (a rerun only adds the missing ones)")
    p.add_argument("--timeout", type=float, default=None, help="stop this run after this many seconds")
    obj = p.add_argument_group("objective (default: train on digits)")
    obj.add_argument("--benchmark", metavar="FILE",
                     help="look accuracies up in a NAS-Bench-201 file instead of training")
    obj.add_argument("--objective", metavar="MODULE:FUNCTION",
                     help="your own evaluate(arch) -> float instead of training")
    obj.add_argument("--direction", default="maximize", choices=["maximize", "minimize"],
                     help="for --objective (accuracies are maximized)")
    obj.add_argument("--dataset", default=None,
                     help="training: digits (default), cifar10, cifar100, imagenet16-120; "
                     "--benchmark: cifar10 (default), cifar100, ImageNet16-120")
    obj.add_argument("--data-root", default=None, help="folder of the CIFAR/ImageNet16 files")
    obj.add_argument("--model", default=None, choices=["mlp", "cnn", "nb201"],
                     help="network around the cell (default mlp on digits, nb201 on images)")
    obj.add_argument("--epochs", type=int, default=3, help="training epochs per cell (default 3)")
    obj.add_argument("--base-lr", type=float, default=None,
                     help="base LR scaled per cell by the [C24] rule (trainer default 0.1)")
    obj.add_argument("--device", default="auto", help="training device: auto, cpu, cuda")
    obj.add_argument("--pruner", default="none", choices=PRUNERS,
                     help="Optuna pruner on per-epoch test accuracy while training (default none)")
    st = p.add_argument_group("storage and parallelism")
    st.add_argument("--out", default="results/search", help="output folder (default %(default)s)")
    st.add_argument("--storage", default=None,
                    help="Optuna storage: a SQLite file (default OUT/study.db), an SQLAlchemy URL, "
                    "or journal:PATH")
    st.add_argument("--study-name", default=None, help="default: derived from the settings")
    st.add_argument("--jobs", type=int, default=1, help="worker processes sharing the storage")
    st.add_argument("--heartbeat", type=int, default=None,
                    help="Optuna heartbeat seconds (RDB storages; for workers on other machines)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    p.add_argument("--max-tries", type=int, default=20, help="proposals per trial before fallback")
    p.add_argument("--scored-startup", type=int, default=0, metavar="N",
                   help="while fewer than N trials have finished, propose the best-scored distinct "
                   "cells that pass the filter (needs --scorer; see docs/parallel_efficiency.md)")
    p.add_argument("--no-dedupe", action="store_true", help="train duplicates of evaluated cells again")
    p.add_argument("--top", type=int, default=5, help="best architectures to print")
    p.add_argument("--quiet", action="store_true", help="no per-trial log lines")
    add_ray_arguments(p)
    p.set_defaults(func=run)


#: The Ray options and their defaults (``None``: not given, which the Optuna backend requires).
RAY_DEFAULTS = {"address": None, "cpus_per_trial": 1.0, "gpus_per_trial": 0.0, "max_concurrent": None,
                "scheduler": "none", "ray_storage": None, "max_failures": 2}


def add_ray_arguments(p) -> None:
    p.add_argument("--backend", default="optuna", choices=["optuna", "ray"],
                   help="run trials in local processes (optuna, default) or on a Ray cluster (ray; "
                   "pip install 'nasplug[ray]')")
    ray = p.add_argument_group("Ray backend (--backend ray; see docs/ray.md)")
    ray.add_argument("--address", default=None,
                     help="Ray cluster to join (auto, HOST:6379, ray://HOST:10001); default: start Ray here")
    ray.add_argument("--cpus-per-trial", type=float, default=None, help="CPUs per trial (default 1)")
    ray.add_argument("--gpus-per-trial", type=float, default=None,
                     help="GPUs per trial, fractions share a device (default 0)")
    ray.add_argument("--max-concurrent", type=int, default=None,
                     help="trials at once (default: as many as the cluster's CPUs/GPUs fit)")
    ray.add_argument("--scheduler", default=None, choices=["none", "asha"],
                     help="asha: stop poor trials early on their per-epoch values (default none)")
    ray.add_argument("--ray-storage", default=None, metavar="DIR|URI",
                     help="Ray experiment storage: a folder (shared on multi-node clusters) or "
                     "s3://…, gs://… (default OUT/ray)")
    ray.add_argument("--max-failures", type=int, default=None,
                     help="restarts of a trial whose worker died, from its checkpoint (default 2)")


def ray_options_from_args(args):
    """The :class:`~nasplug.ray.RayOptions` of the command line (imports Ray: a missing extra is
    one line naming it)."""
    from nasplug.errors import require

    require("ray", "ray", "--backend ray")
    from nasplug.ray import RayOptions

    given = {k: getattr(args, k) for k in RAY_DEFAULTS}
    values = {k: RAY_DEFAULTS[k] if v is None else v for k, v in given.items()}
    values["storage_path"] = values.pop("ray_storage")
    return RayOptions(**values)


# ---------------------------------------------------------------------- running
def config_from_args(args):
    """The :class:`~nasplug.search.SearchConfig` of the command line (a user error is one line)."""
    from pathlib import Path

    from nasplug.errors import NasplugError
    from nasplug.search import SearchConfig

    if args.benchmark and args.objective:
        raise NasplugError("give either --benchmark or --objective, not both")
    objective = "table" if args.benchmark else "custom" if args.objective else "train"
    return SearchConfig(
        space=args.space, objective=objective, benchmark=args.benchmark, callable=args.objective,
        direction=args.direction, dataset=args.dataset, data_root=args.data_root, model=args.model,
        epochs=args.epochs, base_lr=args.base_lr, device=args.device, filter=args.filter,
        scorer=args.scorer, sampler=args.sampler, pruner=args.pruner, n_trials=args.n_trials,
        timeout=args.timeout, seed=args.seed, max_tries=args.max_tries, dedupe=not args.no_dedupe,
        scored_startup=args.scored_startup,
        storage=args.storage or str(Path(args.out) / "study.db"), study_name=args.study_name,
        heartbeat=args.heartbeat, jobs=args.jobs, quiet=args.quiet,
    )


def run(args) -> int:
    if args.backend == "ray":
        return run_ray(args)
    from nasplug.errors import NasplugError
    from nasplug.optuna.runner import run_search

    given = [k for k in RAY_DEFAULTS if getattr(args, k) is not None]
    if given:
        raise NasplugError(f"--{given[0].replace('_', '-')} is a Ray option: add --backend ray")
    config = config_from_args(args)
    summary = run_search(config, args.out, top=max(args.top, 10))
    print_summary(args, config, summary)
    return 0


def run_ray(args) -> int:
    """``--backend ray``: the same search with Ray Tune running the trials (nasplug.ray.runner)."""
    options = ray_options_from_args(args)
    config = config_from_args(args)
    from nasplug.ray import run_ray_search

    summary, finished = run_ray_search(config, options, args.out, top=max(args.top, 10))
    print_summary(args, config, summary)
    if not finished:
        print("nasplug search: interrupted; the Ray experiment was saved: rerun the same command to resume",
              file=sys.stderr)
        return 130
    return 0


def print_summary(args, config, summary) -> None:
    from pathlib import Path

    from nasplug.optuna.storage import storage_url

    print(f"\n{summary.n_trials} trials: {summary.n_evaluated} evaluated, {summary.n_duplicates} "
          f"duplicates reused, {summary.n_pruned} pruned, {summary.n_failed} failed"
          + (f" {summary.fail_reasons}" if summary.fail_reasons else "")
          + f"; {summary.n_rejected_proposals} proposals rejected by the filter before becoming trials")
    if summary.best:
        print(f"\ntop {min(args.top, len(summary.best))} ({summary.direction}):")
        for i, b in enumerate(summary.best[: args.top]):
            print(f"{i + 1:>3}. {b['value']:10.4f}  trial {b['trial']:>4}  {b['arch']}")
    print(f"\nwrote {Path(args.out) / 'summary.md'}, summary.json, history.png, outcomes.png")
    url = storage_url(config.storage)
    print(f"dashboard: optuna-dashboard {url[len('journal:'):] if url.startswith('journal:') else url}")
