"""Run (or resume) a search on a Ray cluster: what ``nasplug search --backend ray`` does.

The Optuna study stays the source of truth, exactly as with the Optuna backend (same storage, same
study name, same ``summary.md``/plots/dashboard): Ray Tune runs the trials, the
:class:`~nasplug.ray.ArchSearcher` in this driver process proposes the cells (filtered, deduped)
and records every outcome in the study. Each run is one Tune experiment under
``<ray storage>/<study name>-<time>``; the study remembers the experiment it is running
(``nasplug:ray_experiment``), so

* rerunning the same command after an interrupt (Ctrl-C: Tune saves the experiment) restores it
  with ``Tuner.restore`` — trials that were running resume from their checkpoints, the searcher
  continues with its state;
* rerunning after a finished experiment with a larger ``--n-trials`` (or after ``--timeout``)
  starts a new experiment for the missing trials, its duplicate cache and TPE history read from the
  study;
* a finished study only gets its report rewritten.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import ray
from optuna.trial import TrialState
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from nasplug.checks import format_count, writable_dir
from nasplug.errors import NasplugError
from nasplug.optuna.pareto import write_pareto_report
from nasplug.optuna.report import SearchSummary, report_settings, write_report
from nasplug.optuna.runner import (
    check_inputs,
    final_stage,
    make_sampler,
    open_study,
    prepare_study,
    worker_seed,
)
from nasplug.optuna.storage import counted_trials, storage_url
from nasplug.processes import stop_on_sigterm
from nasplug.ray.searcher import optuna_searcher
from nasplug.ray.space import METRIC, TIME_ATTR
from nasplug.ray.trainable import evaluate_trial
from nasplug.search import SearchConfig, keep_mask
from nasplug.search.attrs import ATTR_EVALUATED, ATTR_FAIL_REASON, DEAD_WORKER

#: Study attribute: the Ray experiment this study is being searched by, and whether it finished.
ATTR_RAY_EXPERIMENT = "nasplug:ray_experiment"
SCHEDULERS = ("none", "asha")


@dataclass
class RayOptions:
    """How the trials run on Ray (the ``--backend ray`` options of ``nasplug search``).

    ``address``: an existing cluster (``auto``, ``ray://host:10001``, ``host:6379``), default: start
    Ray on this machine. ``cpus_per_trial``/``gpus_per_trial``: each trial's resources (fractional
    GPUs below 1 share a device). ``max_concurrent``: trials at once (default: as many as the
    cluster's CPUs and GPUs fit). ``scheduler``: ``"asha"`` stops poor trials early on their
    per-epoch values (Ray's ASHA, ``grace_period`` 1 epoch, ``reduction_factor`` 3; one objective
    only), ``"none"``.
    ``storage_path``: Ray's experiment folder, a local path (shared on a multi-node cluster) or a
    cloud URI (``s3://bucket/prefix``, ``gs://...``). ``max_failures``: restarts of a trial whose
    worker died (from its last checkpoint).
    """

    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    scheduler: str = "none"
    storage_path: str | None = None
    max_failures: int = 2

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise NasplugError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")
        cpus, gpus = self.cpus_per_trial, self.gpus_per_trial
        if cpus < 0 or gpus < 0 or cpus + gpus <= 0:
            raise NasplugError("a trial needs resources: --cpus-per-trial and --gpus-per-trial must be "
                               f">= 0 and not both 0 (got {cpus}, {gpus})")
        if self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise NasplugError(f"--gpus-per-trial above 1 must be a whole number, got {self.gpus_per_trial}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise NasplugError(f"--max-concurrent must be at least 1, got {self.max_concurrent}")
        if self.max_failures < 0:
            raise NasplugError(f"--max-failures must be at least 0, got {self.max_failures}")

    def resources(self) -> dict[str, float]:
        return {"cpu": self.cpus_per_trial, "gpu": self.gpus_per_trial}


def check_settings(config: SearchConfig, options: RayOptions) -> None:
    """Options that mean nothing on Ray are one-line errors, before any work."""
    if config.jobs != 1:
        raise NasplugError("--jobs is for the Optuna backend; on Ray use --max-concurrent")
    if config.pruner != "none":
        raise NasplugError("--pruner is for the Optuna backend; on Ray use --scheduler asha")
    if config.heartbeat:
        raise NasplugError("--heartbeat is for the Optuna backend (the Ray driver owns every trial)")
    if config.objectives is not None and options.scheduler != "none":
        raise NasplugError(f"--scheduler {options.scheduler} stops trials on one intermediate value: "
                           "not with --objectives")
    if config.device.startswith("cuda") and options.gpus_per_trial <= 0:
        raise NasplugError("--device cuda needs GPUs per trial: --gpus-per-trial (e.g. 0.25 or 1)")


def absolute_paths(config: SearchConfig) -> SearchConfig:
    """The config with its file paths absolute: a Ray trial runs in its own working directory."""
    data = config.as_dict()
    for name in ("benchmark", "data_root"):
        if data[name]:
            data[name] = str(Path(data[name]).expanduser().resolve())
    if "://" not in data["storage"] and not data["storage"].startswith("journal:"):
        data["storage"] = str(Path(data["storage"]).expanduser().resolve())
    return SearchConfig.from_dict(data)


def connect(address: str | None, *, quiet: bool = False) -> bool:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``, which Ray jobs set) or start Ray on this
    machine; ``False`` if Ray was already initialized in this process (then the caller must not
    shut it down).

    Ray's own authentication default applies (since 2.59 a local Ray uses a token in
    ``~/.ray/auth_token``; set ``RAY_AUTH_MODE`` to choose, see docs/ray.md). A local Ray gets this
    process's working directory and ``PYTHONPATH`` on its workers' path, so ``--objective
    mymodule:fn`` resolves there as it does here.
    """
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING if quiet else logging.INFO,
                              "log_to_driver": not quiet}
    address = address or os.environ.get("RAY_ADDRESS")  # set for a driver run by `ray job submit`
    if address:
        kwargs["address"] = address
    else:
        path = os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH", "")) if p)
        kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
    try:
        ray.init(**kwargs)
    except ConnectionError as err:
        raise NasplugError(f"cannot connect to the Ray cluster at {address!r}: {err}") from None
    return True


def default_concurrency(options: RayOptions) -> int:
    """How many trials the cluster's CPUs and GPUs fit at once (at least 1)."""
    total = ray.cluster_resources()
    fits = []
    if options.cpus_per_trial > 0:
        fits.append(int(total.get("CPU", 0) // options.cpus_per_trial))
    if options.gpus_per_trial > 0:
        fits.append(int(total.get("GPU", 0) // options.gpus_per_trial))
    return max(1, min(fits))


def trial_dirname(trial: Any) -> str:
    """Short trial folder names (Tune's default repeats the whole config)."""
    return f"trial_{trial.trial_id}"


def _trainable(config: SearchConfig, options: RayOptions) -> Any:
    return tune.with_resources(tune.with_parameters(evaluate_trial, search=config.as_dict()),
                               options.resources())


def _fit(tuner: tune.Tuner, study: optuna.Study, experiment: dict[str, Any]) -> bool:
    """Run the experiment; ``True`` when it finished, ``False`` when Ctrl-C interrupted it.

    Tune catches the first SIGINT in the main thread, saves the experiment and returns from
    ``fit()`` normally; its handler then puts the previous one back, while after a normal end its
    own handler stays installed. That is how an interrupt is told apart (plus: every trial ended).
    """
    before = signal.getsignal(signal.SIGINT)
    catches = threading.current_thread() is threading.main_thread() \
        and not int(os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0"))
    try:
        with warnings.catch_warnings():
            # The define-by-run space is where the driver samples and filters cells: it is meant to
            # take a while (TPE's joint draws), unlike what Ray's warning assumes.
            warnings.filterwarnings("ignore", message="Define-by-run function passed", category=UserWarning)
            grid = tuner.fit()
    finally:
        interrupted = catches and signal.getsignal(signal.SIGINT) is before
        signal.signal(signal.SIGINT, before)  # Tune leaves its own handler installed
    finished = not interrupted and grid.num_terminated + grid.num_errors == len(grid)
    if finished:
        study.set_user_attr(ATTR_RAY_EXPERIMENT, {**experiment, "finished": True})
    return finished


def _fail_running(study: optuna.Study) -> list[int]:
    """When no experiment runs, a RUNNING trial belongs to a driver that stopped before recording its
    end (killed after proposing it, or while writing its result). Fail it as a dead worker's trial:
    it does not count towards ``n_trials``, and a result it may have started to record is void."""
    lost = []
    reason = f"{DEAD_WORKER}: its Ray driver stopped before the trial was saved"
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, ATTR_FAIL_REASON, reason)
        if t.user_attrs.get(ATTR_EVALUATED):
            study._storage.set_trial_user_attr(t._trial_id, ATTR_EVALUATED, False)
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        lost.append(t.number)
    return lost


def run_ray_search(config: SearchConfig, options: RayOptions, out: str | Path, *, top: int = 10,
                   echo: Callable[[str], None] = print) -> tuple[SearchSummary, bool]:
    """Create or resume the study, run Ray Tune experiments until it has ``config.n_trials``
    trials, and write the report to ``out``. Returns the summary and whether the run finished
    (``False``: interrupted, rerun to resume)."""
    check_settings(config, options)
    out = writable_dir(out, "output folder (--out)").resolve()
    config = absolute_paths(config)
    space, filt, _ = check_inputs(config)
    study = prepare_study(config)
    storage_path = options.storage_path or str(out / "ray")
    if "://" not in storage_path:
        storage_path = str(Path(storage_path).expanduser().resolve())
    kept = ""
    if filt is not None and space.enumerable:
        kept = f" keeps {keep_mask(space, filt).count():,} of {space.size:,} cells"
    echo(f"study {config.study_name} in {storage_url(config.storage)}")
    echo(f"space {config.space} ({format_count(space.size)} cells), sampler {config.sampler}, "
         f"filter {config.filter}{kept}, objective {config.objective}"
         + (f" ({config.dataset})" if config.dataset else ""))
    finished = True
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if counted_trials(study) < config.n_trials or running:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no progress boxes; our own lines instead
        # CheckpointConfig(num_to_keep=2) bounds the disk a long search uses, at the price of an
        # experiment snapshot every 2 checkpoints of a trial; with fast epochs Tune warns about it.
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        log = logging.getLogger("nasplug.ray")
        handler = logging.StreamHandler(sys.stdout)
        log.addHandler(handler)
        log.setLevel(logging.WARNING if config.quiet else logging.INFO)
        started = connect(options.address, quiet=config.quiet)
        try:
            with stop_on_sigterm():  # ray.init installed its own SIGTERM handler (it aborts): ours again
                finished = _run_experiments(config, options, study, storage_path, echo, filt)
        finally:
            log.removeHandler(handler)
            if started:
                ray.shutdown()
    else:
        echo(f"the study already has {counted_trials(study)} trials (asked for {config.n_trials}); "
             "reporting only")
    study = open_study(config)
    final = comparison = None
    if finished and config.objective == "train" and config.final_top > 0 and config.objectives is None:
        final, comparison = final_stage(config, study, echo)  # in the driver, one run after another
    extra = {"backend": "ray", "ray_storage": storage_path, "scheduler": options.scheduler}
    if config.objectives is not None:  # the same Pareto-front report as the Optuna backend's
        settings = {**report_settings(config), **extra}
        return write_pareto_report(study, out, config, settings=settings).summary, finished
    return write_report(study, out, config=config, top=top, final=final, comparison=comparison,
                        extra_settings=extra), finished


def _run_experiments(config: SearchConfig, options: RayOptions, study: optuna.Study, storage_path: str,
                     echo: Callable[[str], None], filt: Any) -> bool:
    trainable = _trainable(config, options)
    experiment = study.user_attrs.get(ATTR_RAY_EXPERIMENT)
    if experiment and not experiment.get("finished") and tune.Tuner.can_restore(experiment["path"]):
        echo(f"resuming Ray experiment {experiment['path']}")
        if not _fit(tune.Tuner.restore(experiment["path"], trainable=trainable, resume_unfinished=True),
                    study, experiment):
            return False
    lost = _fail_running(study)  # nothing runs now: a RUNNING trial is a stopped driver's proposal
    remaining = config.n_trials - counted_trials(study)
    if remaining > 0:
        concurrent = options.max_concurrent or default_concurrency(options)
        name = f"{config.study_name}-{time.strftime('%Y%m%d-%H%M%S')}"
        experiment = {"path": f"{storage_path.rstrip('/')}/{name}", "finished": False}
        echo(f"Ray: {remaining} trials, {concurrent} at a time, {options.resources()} each, "
             f"scheduler {options.scheduler}; experiment {experiment['path']}")
        study.set_user_attr(ATTR_RAY_EXPERIMENT, experiment)
        tune_config = _tune_config(config, options, study, remaining, concurrent, filt)
        tuner = tune.Tuner(trainable, tune_config=tune_config,
                           run_config=_run_config(options, name, storage_path))
        if not _fit(tuner, study, experiment):
            return False
        lost += _fail_running(study)
    if lost:
        echo(f"{len(lost)} trial(s) proposed by an earlier driver that stopped before saving them: "
             f"{lost} (recorded as failed, not counted)")
    return True


def _tune_config(config: SearchConfig, options: RayOptions, study: optuna.Study, remaining: int,
                 concurrent: int, filt: Any) -> tune.TuneConfig:
    """``filt``: the filter :func:`check_inputs` fitted (fitted once per command)."""
    seed = worker_seed(config, study, 0)
    mode = "max" if config.direction == "maximize" else "min"
    objectives = config.objective_set()
    searcher = optuna_searcher(
        config.space, filter=filt, sampler=make_sampler(config.sampler, seed), scorer=config.scorer,
        scored_startup=config.scored_startup, objectives=objectives,
        storage=study._storage, study_name=config.study_name, mode=mode, max_tries=config.max_tries,
        seed=seed, n_trials=remaining, timeout=config.timeout, dedupe=config.dedupe, key=config.key_rule)
    scheduler = None
    if options.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr=TIME_ATTR, max_t=max(1, config.epochs), grace_period=1,
                                  reduction_factor=3)
    single = objectives is None  # Ray's rule: a searcher with a list of metrics, none in TuneConfig
    return tune.TuneConfig(search_alg=searcher, scheduler=scheduler, metric=METRIC if single else None,
                           mode=mode if single else None,
                           num_samples=-1, max_concurrent_trials=concurrent, reuse_actors=True,
                           trial_dirname_creator=trial_dirname)


def _run_config(options: RayOptions, name: str, storage_path: str) -> tune.RunConfig:
    return tune.RunConfig(name=name, storage_path=storage_path, verbose=0,  # per-trial lines: our logger
                          failure_config=tune.FailureConfig(max_failures=options.max_failures),
                          checkpoint_config=tune.CheckpointConfig(num_to_keep=2))
