"""``nasplug search``: an Optuna study over a search space, with unpromising cells pruned before training.

``--backend ray`` runs the trials on a Ray cluster (Ray Tune) instead of local processes; the study,
the filter, the report and ``rerun to resume`` stay the same (nasplug.ray.runner, docs/ray.md).

The objective is pluggable: training with each cell's principled init and LR [C24] on digits (default)
or CIFAR (``--dataset cifar10 --data-root DIR``), a NAS-Bench-201 table lookup (``--benchmark FILE``)
for fast reproducible experiments, or any ``--objective MODULE:FUNCTION``. The study lives in a storage
(a SQLite file under ``--out`` by default, any Optuna URL or ``journal:PATH`` with ``--storage``), so
rerunning the same command continues it, several processes can share it (``--jobs N``, or several
commands with different ``--seed``), and ``optuna-dashboard`` can watch it. ``--objectives
accuracy,params`` (or ``flops``, ``latency``) searches for the Pareto front of accuracy against cost
(``--sampler nsga2`` or multi-objective ``tpe``).
"""

from __future__ import annotations

import sys

from nasplug.checks import device_arg, float_arg, int_arg, lr_arg, seed_arg
from nasplug.search.config import INITS, PRUNERS, SAMPLERS
from nasplug.theory.hparams import DEFAULT_BASE_LR, DEFAULT_WIDTH, MODELS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "search",
        help="Optuna architecture search that rejects unpromising cells before training",
        description="Run (or resume) an Optuna study over a search space. Cells failing --filter are "
        "re-drawn by the sampler and never trained; a cell whose network was already evaluated "
        "reuses its value. By default each cell is trained as a CNN on the embedded digits and "
        "scored on the validation split; the best cells are then retrained with several seeds and "
        "tested once. Prints one line per trial; writes summary.md/json and plots to --out. A "
        "rerun continues the study; a rerun with other evaluation settings is refused.",
    )
    p.add_argument("--space", default="nb201",
                   help="search space: nb201, dag (8 nodes) or dag:N (see `nasplug spaces`; "
                   "default %(default)s)")
    p.add_argument("--sampler", default="tpe", choices=SAMPLERS,
                   help="Optuna sampler: tpe, random, gp or nsga2 (NSGA-II, for --objectives; cmaes is "
                   "refused: it cannot model categorical edges) (default %(default)s)")
    p.add_argument("--objectives", default=None, metavar="LIST",
                   help="multi-objective search: accuracy and costs of the network, e.g. accuracy,params "
                   "(costs: params, flops, latency; optional directions: accuracy:max,params:min; "
                   "default: accuracy only)")
    p.add_argument("--filter", default=None, help="pre-training filter: dag_box, dag_box_authors, "
                   "top_fraction, none, or any registered filter (see `nasplug scorers`; default "
                   "dag_box, none with --objectives: the box drops the cheapest cells of a cost front)")
    p.add_argument("--scorer", default=None,
                   help="training-free scorer recorded per trial as nasplug:proxy (default: none)")
    p.add_argument("--n-trials", type=int_arg(1), default=30,
                   help="trials the study should have in total, >= 1; a rerun only adds the missing "
                   "ones (default %(default)s)")
    p.add_argument("--timeout", type=float_arg(0.0, low_open=True), default=None,
                   help="stop starting trials after this many seconds, > 0 (default: no limit)")
    obj = p.add_argument_group("objective (default: train each cell on the embedded digits)")
    obj.add_argument("--benchmark", metavar="FILE",
                     help="look accuracies up in a NAS-Bench-201 file instead of training (default: train)")
    obj.add_argument("--objective", metavar="MODULE:FUNCTION",
                     help="your own evaluate(arch) -> float instead of training (default: train)")
    obj.add_argument("--direction", default="maximize", choices=["maximize", "minimize"],
                     help="for --objective (accuracies are maximized) (default %(default)s)")
    obj.add_argument("--dataset", default=None,
                     help="training: digits (embedded; 1,079 train / 359 validation / 359 test; default), "
                     "cifar10, cifar100, imagenet16-120 (10%% of train held out for validation); "
                     "--benchmark: cifar10 (default), cifar100, ImageNet16-120")
    obj.add_argument("--data-root", default=None,
                     help="folder of the CIFAR/ImageNet16 files (default: none; digits is embedded)")
    obj.add_argument("--model", default=None, choices=MODELS,
                     help="network around the cell: cnn (conv edges; default on digits), nb201 (the "
                     "NAS-Bench-201 macro network; default on images), mlp (the theory MLP: convs "
                     "become linear layers, pooling the identity), nb101 or darts (those benchmarks' "
                     "networks, for their cells)")
    obj.add_argument("--width", type=int_arg(1), default=None,
                     help="channels (cnn; nb201's and darts' C), stem channels (nb101) or hidden units "
                     "(mlp), >= 1 (default "
                     + ", ".join(f"{m} {v}" for m, v in DEFAULT_WIDTH.items()) + ")")
    obj.add_argument("--init", default="arch_aware", choices=INITS,
                     help="weight init (default %(default)s: Var W = 2 / (in-degree x fan_in) [C24])")
    obj.add_argument("--epochs", type=int_arg(1), default=10,
                     help="training epochs per cell, >= 1 (default %(default)s)")
    obj.add_argument("--base-lr", type=lr_arg(), default=None,
                     help="base LR, > 0, scaled per cell by the [C24] max-LR multiplier (default per "
                     "model: " + ", ".join(f"{m} {v:g}" for m, v in DEFAULT_BASE_LR.items()) + ")")
    obj.add_argument("--device", type=device_arg(), default="auto",
                     help="training device: auto (CUDA when available), cpu, cuda, cuda:N or mps "
                     "(default %(default)s)")
    obj.add_argument("--pruner", default="none", choices=PRUNERS,
                     help="Optuna pruner on the per-epoch validation accuracy (default %(default)s)")
    obj.add_argument("--final-top", type=int_arg(0), default=3,
                     help="best distinct cells to retrain with --final-seeds seeds and test once at "
                     "the end, >= 0 (training only; default %(default)s)")
    obj.add_argument("--final-seeds", type=int_arg(1), default=3,
                     help="seeds per final cell, >= 1: the search's seed, then the next ones; 2 or "
                     "more measure the seed noise (default %(default)s)")
    st = p.add_argument_group("storage and parallelism")
    st.add_argument("--out", default="results/search", help="output folder (default %(default)s)")
    st.add_argument("--storage", default=None,
                    help="Optuna storage: a SQLite file (default OUT/study.db), an SQLAlchemy URL, "
                    "or journal:PATH (an in-memory sqlite:// is refused)")
    st.add_argument("--study-name", default=None,
                    help="study name in the storage (default nasplug-search); a new name starts a new "
                    "study next to the old one")
    st.add_argument("--jobs", type=int_arg(1), default=1,
                    help="worker processes sharing the storage, 1 to 4 per CPU core (default %(default)s)")
    st.add_argument("--heartbeat", type=int_arg(1), default=None,
                    help="Optuna heartbeat interval in seconds, >= 1 (RDB storages; for workers on "
                    "other machines; default: off)")
    p.add_argument("--seed", type=seed_arg(), default=0,
                   help="seed of the sampler and of each training (default %(default)s)")
    p.add_argument("--max-tries", type=int_arg(1), default=20,
                   help="proposals per trial before the filter's fallback, >= 1 (default %(default)s)")
    p.add_argument("--scored-startup", type=int_arg(0), default=0, metavar="N",
                   help="while fewer than N trials have finished, propose the best-scored distinct "
                   "cells that pass the filter (needs --scorer; see docs/parallel_efficiency.md; "
                   "default %(default)s: off)")
    p.add_argument("--no-dedupe", action="store_true", help="train duplicates of evaluated networks again")
    p.add_argument("--top", type=int_arg(1), default=5, help="best architectures to print, >= 1 "
                   "(default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no per-trial lines")
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
    ray.add_argument("--cpus-per-trial", type=float_arg(0.0), default=None,
                     help="CPUs per trial, >= 0 (default 1)")
    ray.add_argument("--gpus-per-trial", type=float_arg(0.0), default=None,
                     help="GPUs per trial, >= 0; fractions share a device (default 0)")
    ray.add_argument("--max-concurrent", type=int_arg(1), default=None,
                     help="trials at once (default: as many as the cluster's CPUs/GPUs fit)")
    ray.add_argument("--scheduler", default=None, choices=["none", "asha"],
                     help="asha: stop poor trials early on their per-epoch values; not with --objectives "
                     "(default none)")
    ray.add_argument("--ray-storage", default=None, metavar="DIR|URI",
                     help="Ray experiment storage: a folder (shared on multi-node clusters) or "
                     "s3://…, gs://… (default OUT/ray)")
    ray.add_argument("--max-failures", type=int_arg(0), default=None,
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
        width=args.width, init=args.init, epochs=args.epochs, base_lr=args.base_lr, device=args.device,
        filter=args.filter, scorer=args.scorer, sampler=args.sampler, pruner=args.pruner,
        n_trials=args.n_trials, timeout=args.timeout, seed=args.seed, max_tries=args.max_tries,
        dedupe=not args.no_dedupe, storage=args.storage or str(Path(args.out) / "study.db"),
        study_name=args.study_name, heartbeat=args.heartbeat, jobs=args.jobs,
        final_top=args.final_top, final_seeds=args.final_seeds, quiet=args.quiet,
        scored_startup=args.scored_startup,
        objectives=args.objectives,
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

    from nasplug.optuna.report import final_lines, outcome_lines
    from nasplug.optuna.storage import storage_url
    from nasplug.search.objectives import parse_objectives

    print()
    for line in outcome_lines(summary, f"filter {config.filter}", config.max_tries):
        print(line)
    if summary.best and config.objectives:
        names = [o.name for o in parse_objectives(config.objectives)]
        size = len(summary.best)
        print(f"\nPareto front ({size} cell{'s' if size != 1 else ''}; {summary.direction}):")
        print(f"{'':>4} {'trial':>6}  " + "  ".join(f"{n:>12}" for n in names) + "  architecture")
        for i, b in enumerate(summary.best):
            values = "  ".join(f"{b[n]:>12.6g}" for n in names)
            print(f"{i + 1:>3}. {b['trial']:>6}  {values}  {b['arch']}")
    elif summary.best:
        print(f"\ntop {min(args.top, len(summary.best))} by {summary.metric} ({summary.direction}):")
        for i, b in enumerate(summary.best[: args.top]):
            print(f"{i + 1:>3}. {b['value']:10.4f}  trial {b['trial']:>4}  {b['arch']}")
    final = final_lines(summary)
    if final:
        print()
        for line in final:
            print(line)
    print(f"\nwhat was measured: {summary.objective}")
    plots = "pareto.png, hypervolume.png" if config.objectives else "history.png"
    print(f"wrote {Path(args.out) / 'summary.md'}, summary.json, {plots}, outcomes.png")
    url = storage_url(config.storage)
    print(f"dashboard: optuna-dashboard {url[len('journal:'):] if url.startswith('journal:') else url}")
