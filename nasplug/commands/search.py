"""``nasplug search``: an Optuna study over a search space, with unpromising cells pruned before training.

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
    p.add_argument("--sampler", default="tpe", choices=SAMPLERS,
                   help="Optuna sampler (default tpe; nsga2 for NSGA-II)")
    p.add_argument("--objectives", default=None, metavar="LIST",
                   help="multi-objective search: accuracy and costs of the network, e.g. accuracy,params "
                   "(costs: params, flops, latency; optional directions: accuracy:max,params:min)")
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
    obj.add_argument("--model", default=None, choices=["mlp", "cnn", "nb201", "nb101", "darts"],
                     help="network around the cell (default mlp on digits, nb201 on images; nb101 and "
                     "darts: those benchmarks' networks for their cells)")
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
    p.add_argument("--no-dedupe", action="store_true", help="train duplicates of evaluated cells again")
    p.add_argument("--top", type=int, default=5, help="best architectures to print")
    p.add_argument("--quiet", action="store_true", help="no per-trial log lines")
    p.set_defaults(func=run)


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
        storage=args.storage or str(Path(args.out) / "study.db"), study_name=args.study_name,
        heartbeat=args.heartbeat, jobs=args.jobs, quiet=args.quiet, objectives=args.objectives,
    )


def run(args) -> int:
    from pathlib import Path

    from nasplug.optuna.runner import run_search
    from nasplug.optuna.storage import storage_url
    from nasplug.search.objectives import parse_objectives

    config = config_from_args(args)
    summary = run_search(config, args.out, top=max(args.top, 10))
    print(f"\n{summary.n_trials} trials: {summary.n_evaluated} evaluated, {summary.n_duplicates} "
          f"duplicates reused, {summary.n_pruned} pruned, {summary.n_failed} failed"
          + (f" {summary.fail_reasons}" if summary.fail_reasons else "")
          + f"; {summary.n_rejected_proposals} proposals rejected by the filter before becoming trials")
    if summary.best and config.objectives:
        names = [o.name for o in parse_objectives(config.objectives)]
        size = len(summary.best)
        print(f"\nPareto front ({size} cell{'s' if size != 1 else ''}; {summary.direction}):")
        print(f"{'':>4} {'trial':>6}  " + "  ".join(f"{n:>12}" for n in names) + "  architecture")
        for i, b in enumerate(summary.best):
            values = "  ".join(f"{b[n]:>12.6g}" for n in names)
            print(f"{i + 1:>3}. {b['trial']:>6}  {values}  {b['arch']}")
    elif summary.best:
        print(f"\ntop {min(args.top, len(summary.best))} ({summary.direction}):")
        for i, b in enumerate(summary.best[: args.top]):
            print(f"{i + 1:>3}. {b['value']:10.4f}  trial {b['trial']:>4}  {b['arch']}")
    plots = "pareto.png, hypervolume.png" if config.objectives else "history.png"
    print(f"\nwrote {Path(args.out) / 'summary.md'}, summary.json, {plots}, outcomes.png")
    url = storage_url(config.storage)
    print(f"dashboard: optuna-dashboard {url[len('journal:'):] if url.startswith('journal:') else url}")
    return 0
