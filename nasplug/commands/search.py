"""``nasplug search``: an Optuna study over a search space, with unpromising cells pruned before training.

The objective is pluggable: training with each cell's principled init and LR [C24] on digits (default)
or CIFAR (``--dataset cifar10 --data-root DIR``), a NAS-Bench-201 table lookup (``--benchmark FILE``)
for fast reproducible experiments, or any ``--objective MODULE:FUNCTION``. The study lives in a storage
(a SQLite file under ``--out`` by default, any Optuna URL or ``journal:PATH`` with ``--storage``), so
rerunning the same command continues it, several processes can share it (``--jobs N``, or several
commands with different ``--seed``), and ``optuna-dashboard`` can watch it.
"""

from __future__ import annotations

import sys

SAMPLERS = ("tpe", "random", "cmaes", "gp")
FILTERS = ("dag_box", "dag_box_authors", "none")


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
    obj.add_argument("--pruner", default="none", choices=["none", "median"],
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


# ---------------------------------------------------------------------- configuration
def _config(args) -> dict:
    """Everything a worker needs, as plain data (workers are spawned processes)."""
    from pathlib import Path

    from nasplug.errors import NasplugError
    from nasplug.optuna.storage import storage_url

    if args.benchmark and args.objective:
        raise NasplugError("give either --benchmark or --objective, not both")
    if args.n_trials < 1 or args.jobs < 1:
        raise NasplugError("--n-trials and --jobs must be at least 1")
    if args.benchmark:
        kind = "table"
        dataset = args.dataset or "cifar10"
        if not Path(args.benchmark).is_file():
            raise NasplugError(f"{args.benchmark}: no such file")
        label = f"table-{dataset}"
    elif args.objective:
        kind, dataset, label = "custom", None, "custom-" + args.objective.replace(":", ".")
    else:
        kind = "train"
        dataset = args.dataset or "digits"
        label = f"train-{dataset}-{args.epochs}ep"
    direction = "maximize" if kind != "custom" else args.direction
    filt = (args.filter or "none").strip()
    name = args.study_name or f"nasplug-{args.space}-{label}-{args.sampler}-{filt}-seed{args.seed}"
    storage = args.storage or str(Path(args.out) / "study.db")
    return {
        "study_name": name, "storage": storage, "storage_url": storage_url(storage), "space": args.space,
        "sampler": args.sampler, "filter": filt, "scorer": args.scorer, "n_trials": args.n_trials,
        "objective": kind, "benchmark": args.benchmark, "callable": args.objective,
        "direction": direction, "dataset": dataset, "data_root": args.data_root,
        "model": args.model or ("mlp" if dataset in (None, "digits") else "nb201"),
        "epochs": args.epochs, "base_lr": args.base_lr, "device": args.device, "pruner": args.pruner,
        "seed": args.seed, "max_tries": args.max_tries, "dedupe": not args.no_dedupe,
        "timeout": args.timeout, "heartbeat": args.heartbeat, "quiet": args.quiet,
    }


def make_sampler(name: str, seed: int | None):
    """The base Optuna sampler for ``--sampler``.

    TPE is Optuna's default (multivariate for one objective, so it models the edges jointly). CMA-ES
    models only numerical parameters: on an all-categorical cell space it samples the edges with its
    independent sampler (random), so it is meaningful only with extra numerical parameters. The GP
    sampler handles categoricals (Hamming-type kernel) but costs about a second per trial.
    """
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401  (Optuna's CMA-ES sampler is built on it)
        except ImportError:
            from nasplug.errors import NasplugError

            raise NasplugError("--sampler cmaes needs the 'cmaes' package: pip install cmaes") from None
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    raise ValueError(name)


def _evaluator(config: dict):
    from nasplug.optuna import evaluators

    if config["objective"] == "table":
        return evaluators.table_evaluator(config["benchmark"], config["dataset"], config["space"]), False
    if config["objective"] == "custom":
        return evaluators.load_callable(config["callable"]), False
    return evaluators.train_evaluator(
        config["dataset"], data_root=config["data_root"], model=config["model"], epochs=config["epochs"],
        base_lr=config["base_lr"], seed=config["seed"], device=config["device"]), True


def _open_study(config: dict, create: bool):
    import optuna

    from nasplug.optuna import open_storage

    storage = open_storage(config["storage"], heartbeat=config["heartbeat"])
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5) if config["pruner"] == "median" \
        else optuna.pruners.NopPruner()
    if create:
        study = optuna.create_study(storage=storage, study_name=config["study_name"],
                                    direction=config["direction"], load_if_exists=True, pruner=pruner)
    else:
        study = optuna.load_study(storage=storage, study_name=config["study_name"], pruner=pruner)
    return study


def _worker_seed(config: dict, study, worker: int) -> int:
    """Reproducible for one process started on a fresh or resumed study; distinct per worker, per
    resume and — when another process is already searching this study — per process."""
    import os

    from optuna.trial import TrialState

    from nasplug.optuna.storage import counted_trials

    seed = config["seed"] * 1_000_003 + counted_trials(study) * 7_919 + worker * 104_729
    if worker == 0 and study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        seed += os.getpid()
    return seed % (2**31 - 1)


def work(config: dict, worker: int = 0) -> int:
    """One worker: search until the study has ``n_trials`` counted trials. Returns trials it ran."""
    import logging

    import optuna

    from nasplug.optuna import ArchObjective, PruningSampler, StopAtTrials
    from nasplug.optuna.storage import counted_trials

    optuna.logging.set_verbosity(logging.WARNING if config["quiet"] else logging.INFO)
    study = _open_study(config, create=False)
    remaining = config["n_trials"] - counted_trials(study)
    if remaining <= 0:
        return 0
    seed = _worker_seed(config, study, worker)
    evaluate, pass_trial = _evaluator(config)
    sampler = PruningSampler(make_sampler(config["sampler"], seed), filter=config["filter"],
                             max_tries=config["max_tries"], space=config["space"], seed=seed,
                             scorer=config["scorer"])
    study.sampler = sampler
    # The objective re-checks the filter: a fallback "proposal" or an enqueued cell that fails it
    # is pruned before training rather than trained.
    objective = ArchObjective(evaluate, config["space"], filter=sampler.filter, dedupe=config["dedupe"],
                              pass_trial=pass_trial)
    before = len(study.get_trials(deepcopy=False))
    study.optimize(objective, n_trials=remaining, timeout=config["timeout"], catch=objective.catch,
                   callbacks=[StopAtTrials(config["n_trials"])], gc_after_trial=False)
    return len(study.get_trials(deepcopy=False)) - before


def _spawned(config: dict, worker: int) -> None:
    work(config, worker)


def run(args) -> int:
    import multiprocessing as mp
    from pathlib import Path

    import optuna

    import search_spaces
    from nasplug.errors import NasplugError
    from nasplug.optuna import recover_dead_trials
    from nasplug.optuna.report import write_report
    from nasplug.optuna.sampler import resolve_filter
    from nasplug.optuna.storage import counted_trials

    config = _config(args)
    space = search_spaces.get(config["space"])
    filt = resolve_filter(config["filter"], space)  # validates the name before any work
    _evaluator(config) if config["objective"] != "train" else None  # validate files/callables early
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _open_study(config, create=True)
    stored = study.user_attrs.get("nasplug:config")
    if stored is None:
        study.set_user_attr("nasplug:config", {k: v for k, v in config.items() if k != "quiet"})
    elif any(stored.get(k) != config[k] for k in ("space", "objective", "dataset", "benchmark", "filter")):
        print(f"nasplug search: warning: study {config['study_name']!r} was created with other "
              f"settings ({ {k: stored.get(k) for k in ('space', 'objective', 'dataset', 'filter')} })",
              file=sys.stderr)
    recovered = recover_dead_trials(study)
    done = counted_trials(study)
    kept = f"keeps {int(filt.keep_many(space.batch()).sum()):,} of {space.size:,} cells" \
        if filt is not None and space.size <= 2_000_000 else ""
    print(f"study {config['study_name']} in {config['storage_url']}")
    print(f"space {config['space']} ({space.size:,} cells), sampler {config['sampler']}, filter "
          f"{config['filter']} {kept}, objective {config['objective']}"
          + (f" ({config['dataset']})" if config["dataset"] else ""))
    if recovered:
        print(f"recovered {len(recovered)} trial(s) whose worker had died: {recovered} (re-enqueued)")
    if done >= config["n_trials"]:
        print(f"the study already has {done} trials (asked for {config['n_trials']}); reporting only")
    elif done:
        print(f"resuming: {done} trials stored, running up to {config['n_trials'] - done} more")
    if done < config["n_trials"]:
        if args.jobs == 1:
            work(config)
        else:
            ctx = mp.get_context("spawn")
            procs = [ctx.Process(target=_spawned, args=(config, w)) for w in range(args.jobs)]
            for proc in procs:
                proc.start()
            for proc in procs:
                proc.join()
            bad = [p.exitcode for p in procs if p.exitcode]
            if bad:
                raise NasplugError(f"{len(bad)} worker(s) failed (exit codes {bad})")
    study = _open_study(config, create=False)
    summary = write_report(study, Path(args.out), config={k: config[k] for k in (
        "space", "sampler", "filter", "objective", "dataset", "benchmark", "n_trials", "seed",
        "storage_url")}, top=max(args.top, 10))
    print(f"\n{summary.n_trials} trials: {summary.n_evaluated} evaluated, {summary.n_duplicates} "
          f"duplicates reused, {summary.n_pruned} pruned, {summary.n_failed} failed"
          + (f" {summary.fail_reasons}" if summary.fail_reasons else "")
          + f"; {summary.n_rejected_proposals} proposals rejected by the filter before becoming trials")
    if summary.best:
        print(f"\ntop {min(args.top, len(summary.best))} ({summary.direction}):")
        for i, b in enumerate(summary.best[: args.top]):
            print(f"{i + 1:>3}. {b['value']:10.4f}  trial {b['trial']:>4}  {b['arch']}")
    print(f"\nwrote {Path(args.out) / 'summary.md'}, summary.json, history.png, outcomes.png")
    url = config["storage_url"]
    print(f"dashboard: optuna-dashboard {url[len('journal:'):] if url.startswith('journal:') else url}")
    return 0
