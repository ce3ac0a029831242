"""``nasplug search --backend ray`` end to end on the shared Ray session (tests/conftest.py).

Truths: the NAS-Bench-201 table read straight from the CSV, the objectives' own logs on the
workers (which cell was evaluated, at which step, by which process), the filter's own decision, and
— for the device — what Ray assigned to each trial.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from nasplug import ArchGraph, scorers, search_spaces
from nasplug.cli import main
from nasplug.optuna import open_storage
from nasplug.search.attrs import ATTR_ARCH, ATTR_DUPLICATE_OF, ATTR_EVALUATED, ATTR_FAIL_REASON, ATTR_KEY

ROOT = Path(__file__).resolve().parents[1]
NB201 = search_spaces.get("nb201")


def _study(out: Path) -> optuna.Study:
    storage = open_storage(out / "study.db")
    return optuna.load_study(storage=storage, study_name=optuna.get_all_study_names(storage)[0])


def _log(scratch: Path, name: str) -> list[list[str]]:
    path = scratch / f"{name}.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def _clear(scratch: Path, *names: str) -> None:
    for name in names:
        (scratch / name).unlink(missing_ok=True)


def _search(out: Path, *args: str) -> int:
    return main(["search", "--backend", "ray", "--out", str(out), "--quiet", *args])


def _wait_for(predicate, what: str, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_table_search_with_asha_end_to_end(ray_session, nb201_csv, nb201_rows, tmp_path, capsys):
    truth = {NB201.encode(r["ArchitectureString"]): float(r["CIFAR10TestAccuracy200Epochs"])
             for r in nb201_rows}
    out = tmp_path / "s"
    rc = _search(out, "--benchmark", str(nb201_csv), "--n-trials", "16", "--scheduler", "asha",
                 "--max-concurrent", "2", "--filter", "dag_box")
    assert rc == 0
    study = _study(out)
    trials = study.get_trials()
    assert len(trials) == 16 and all(t.state == TrialState.COMPLETE for t in trials)
    box = scorers.get("dag_box", space=NB201)
    evaluated_keys = []
    for t in trials:
        arch = ArchGraph.parse(t.user_attrs[ATTR_ARCH])
        assert box.keep(arch)
        if t.user_attrs.get(ATTR_EVALUATED):
            assert t.value == pytest.approx(truth[NB201.encode(arch)])
            evaluated_keys.append(t.user_attrs[ATTR_KEY])
            assert t.user_attrs["nasplug:ray_trial"]
        else:  # the same function as an evaluated cell: its value, not the table's entry for this one
            original = trials[t.user_attrs[ATTR_DUPLICATE_OF]]
            assert original.user_attrs[ATTR_KEY] == t.user_attrs[ATTR_KEY] and original.value == t.value
    assert len(evaluated_keys) == len(set(evaluated_keys))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_trials"] == 16 and summary["n_failed"] == 0 and summary["config"]["backend"] == "ray"
    assert (out / "summary.md").is_file() and (out / "history.png").is_file()
    assert study.user_attrs["nasplug:ray_experiment"]["finished"] is True
    experiment = Path(study.user_attrs["nasplug:ray_experiment"]["path"])
    assert experiment.parent == out.resolve() / "ray" and (experiment / "tuner.pkl").is_file()
    # Rerun: nothing to do but the report.
    assert _search(out, "--benchmark", str(nb201_csv), "--n-trials", "16", "--scheduler", "asha",
                   "--max-concurrent", "2", "--filter", "dag_box") == 0
    assert len(_study(out).get_trials()) == 16
    # Larger budget: a new experiment runs only the missing trials, never a known cell again.
    assert _search(out, "--benchmark", str(nb201_csv), "--n-trials", "24", "--max-concurrent", "2",
                   "--filter", "dag_box") == 0
    trials = _study(out).get_trials()
    assert len(trials) == 24
    keys = [t.user_attrs[ATTR_KEY] for t in trials if t.user_attrs.get(ATTR_EVALUATED)]
    assert len(keys) == len(set(keys))


def test_multi_objective_table_search_equals_the_optuna_backend_on_the_same_cells(
        ray_session, nb201_csv, nb201_rows, tmp_path, capsys):
    """``--objectives accuracy,params`` on Ray: every trial's vector is the table's accuracy and the
    closed-form parameters of its cell, trial by trial what the Optuna backend's objective gives
    the same cells in one process; the report's front is the trials' front by an independent
    sweep; a larger budget continues the study."""
    from test_multiobjective import sweep_front

    from nasplug.optuna import ArchObjective
    from nasplug.search import Network, ObjectiveSet, table_evaluator

    truth = {NB201.encode(r["ArchitectureString"]): float(r["CIFAR10TestAccuracy200Epochs"])
             for r in nb201_rows}
    network = Network.for_dataset("nb201", "cifar10")
    out = tmp_path / "mo"
    args = ["--benchmark", str(nb201_csv), "--objectives", "accuracy,params", "--sampler", "nsga2",
            "--max-concurrent", "2"]
    assert _search(out, *args, "--n-trials", "16") == 0
    assert "Pareto front (" in capsys.readouterr().out
    study = _study(out)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    trials = study.get_trials()
    assert len(trials) == 16 and all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        arch = ArchGraph.parse(t.user_attrs[ATTR_ARCH])
        assert t.values == [pytest.approx(truth[NB201.encode(arch)]), network.costs(arch)[0]]
    # The single-process equivalent: the Optuna backend's objective on the same cells, in order.
    reference = optuna.create_study(directions=["maximize", "minimize"])
    for t in trials:
        reference.enqueue_trial(t.params)
    objective = ArchObjective(table_evaluator(str(nb201_csv), "cifar10"), "nb201", key="cell",
                              objectives=ObjectiveSet("accuracy,params", network))
    reference.optimize(objective, n_trials=len(trials))
    assert [t.values for t in reference.trials] == [t.values for t in trials]
    summary = json.loads((out / "summary.json").read_text())
    values = [t.values for t in trials]
    on_front = sweep_front(*(np.array(column) for column in zip(*values)))
    assert {b["arch"] for b in summary["best"]} == {trials[i].user_attrs[ATTR_ARCH] for i in on_front}
    assert summary["config"]["backend"] == "ray" and summary["true_front"]
    assert 0 < summary["hypervolume"] <= summary["true_hypervolume"] <= 1
    assert (out / "pareto.png").stat().st_size > 0 and (out / "hypervolume.png").stat().st_size > 0
    # A larger budget: a new experiment runs the missing trials; the first ones stay as they were.
    assert _search(out, *args, "--n-trials", "20") == 0
    again = _study(out).get_trials()
    assert len(again) == 20 and [t.values for t in again[:16]] == values
    cells = [t.user_attrs[ATTR_ARCH] for t in again if t.user_attrs.get(ATTR_EVALUATED)]
    assert len(cells) == len(set(cells))  # no cell looked up twice


def test_training_search_with_asha_equals_single_process_trainings(ray_session, tmp_path):
    """Each Ray trial trains its cell exactly as `train_arch` does in this process (same init, LR,
    data order): evaluated trials have the single-process accuracy and learning rate (also when ASHA
    stopped them on their last epoch); ASHA-stopped ones are PRUNED and carry the single-process
    per-epoch accuracies up to where they were stopped."""
    import torch

    from nasplug.search import SearchConfig
    from nasplug.search.evaluation import evaluation_data, train_once

    out = tmp_path / "s"
    assert _search(out, "--n-trials", "8", "--epochs", "3", "--scheduler", "asha", "--max-concurrent", "2",
                   "--filter", "dag_box", "--sampler", "random", "--seed", "1", "--model", "mlp",
                   "--final-top", "0") == 0
    trials = _study(out).get_trials()
    assert len(trials) == 8 and not [t for t in trials if t.state == TrialState.FAIL]
    config = SearchConfig(model="mlp", epochs=3, seed=1)  # the search's settings, defaults resolved
    data = evaluation_data("digits")
    threads = torch.get_num_threads()
    try:
        for t in trials:
            if ATTR_DUPLICATE_OF in t.user_attrs:
                continue
            # --seed seeds the trainings too; a search selects on the validation split
            reference = train_once(ArchGraph.parse(t.user_attrs[ATTR_ARCH]), data, model="mlp",
                                   width=config.width, base_lr=config.base_lr, epochs=3, seed=1,
                                   device="cpu", test=False)
            per_epoch = {m["epoch"]: 100 * m["valid_acc"] for m in reference.history}
            if t.state == TrialState.COMPLETE:
                assert t.value == pytest.approx(100 * reference.valid_acc, abs=1e-9)
                assert t.user_attrs["nasplug:lr"] == pytest.approx(reference.lr)
            else:
                assert t.state == TrialState.PRUNED and t.intermediate_values
                for step, value in t.intermediate_values.items():
                    assert value == pytest.approx(per_epoch[step], abs=1e-9)
    finally:
        torch.set_num_threads(threads)
    assert any(t.state == TrialState.PRUNED for t in trials), "ASHA stopped no trial"


def test_multi_objective_training_search_reports_the_trained_accuracy_and_the_costs(ray_session, tmp_path):
    """A training search with ``--objectives accuracy,params,latency`` on Ray: each evaluated trial
    has the accuracy of the same training in this process, torch's parameter count of its live
    network, and a latency its worker measured (a duplicate: the same network's)."""
    import torch

    from nasplug.models import count_parameters
    from nasplug.search import SearchConfig
    from nasplug.search.costs import live_cell
    from nasplug.search.evaluation import evaluation_data, train_once

    out = tmp_path / "s"
    assert _search(out, "--objectives", "accuracy,params,latency", "--n-trials", "6", "--epochs", "1",
                   "--max-concurrent", "2", "--sampler", "random", "--seed", "1", "--model", "mlp") == 0
    trials = _study(out).get_trials()
    assert len(trials) == 6 and all(t.state == TrialState.COMPLETE for t in trials)
    config = SearchConfig(model="mlp", epochs=1, seed=1, objectives="accuracy,params,latency")
    network, data = config.network(), evaluation_data("digits")
    threads = torch.get_num_threads()
    latency: dict[str, float] = {}
    try:
        for t in trials:
            arch = ArchGraph.parse(t.user_attrs[ATTR_ARCH])
            accuracy, params, ms = t.values
            assert params == count_parameters(network.build(live_cell(arch)))
            assert ms > 0 and latency.setdefault(str(live_cell(arch)), ms) == ms  # one figure per network
            if ATTR_DUPLICATE_OF in t.user_attrs:
                assert accuracy == trials[t.user_attrs[ATTR_DUPLICATE_OF]].values[0]
                continue
            reference = train_once(arch, data, model="mlp", width=config.width, base_lr=config.base_lr,
                                   epochs=1, seed=1, device="cpu", test=False)
            assert accuracy == pytest.approx(100 * reference.valid_acc, abs=1e-9)
    finally:
        torch.set_num_threads(threads)


def test_trials_get_their_device_from_the_gpus_ray_assigned(ray_session, tmp_path):
    import ray_objectives
    from ray import tune

    trainable = tune.with_resources(ray_objectives.device_probe,
                                    lambda config: {"cpu": 1, "gpu": config["gpu"]})
    tuner = tune.Tuner(trainable, param_space={"gpu": tune.grid_search([0.25, 0])},
                       run_config=tune.RunConfig(storage_path=str(tmp_path), name="device", verbose=0))
    results = {r.config["gpu"]: r.metrics for r in tuner.fit()}
    assert results[0.25]["device"] == "cuda" and results[0.25]["gpu_ids"] == ["0"]
    assert results[0]["device"] == "cpu" and results[0]["gpu_ids"] == []
    assert results[0]["cuda_visible"] == ""  # hidden even on a GPU node (Ray >= 2.60 does not)


def test_a_worker_killed_mid_trial_resumes_from_its_checkpoint(ray_session, tmp_path):
    scratch = ray_session
    _clear(scratch, "die_once.log", "victim.claim", "victim.pid")
    killed = []

    def killer():
        _wait_for(lambda: (scratch / "victim.pid").exists(), "the victim trial")
        pid = int((scratch / "victim.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    out = tmp_path / "s"
    rc = _search(out, "--objective", "ray_objectives:die_once", "--n-trials", "4", "--filter", "dag_box",
                 "--max-concurrent", "2", "--max-failures", "2", "--epochs", "3")
    thread.join(timeout=5)
    assert rc == 0 and killed
    study = _study(out)
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        assert t.value == pytest.approx(ArchGraph.parse(t.user_attrs[ATTR_ARCH]).path_stats().effective_width)
    log = _log(scratch, "die_once")
    steps = Counter((key, step) for _, step, key in log)
    evaluated = {t.user_attrs[ATTR_KEY] for t in trials if t.user_attrs.get(ATTR_EVALUATED)}
    assert set(steps) == {(k, str(s)) for k in evaluated for s in (1, 2, 3)}
    assert set(steps.values()) == {1}, "a step was lost or run twice"
    victim = next(key for pid, step, key in log if int(pid) == killed[0])
    by_step = {step: int(pid) for pid, step, key in log if key == victim}
    assert by_step["1"] == killed[0] and by_step["2"] == by_step["3"] != killed[0]


def test_a_diverging_trial_is_failed_with_its_reason_and_the_search_goes_on(ray_session, tmp_path):
    scratch = ray_session
    _clear(scratch, "diverge.log")
    out = tmp_path / "s"
    assert _search(out, "--objective", "ray_objectives:diverge", "--n-trials", "14", "--filter", "none",
                   "--sampler", "random", "--max-concurrent", "2", "--seed", "3") == 0
    trials = _study(out).get_trials()
    assert len(trials) == 14
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed, "the seed should draw a cell with at most 2 paths"
    for t in failed:
        assert ArchGraph.parse(t.user_attrs[ATTR_ARCH]).path_stats().num_paths <= 2
        assert t.user_attrs[ATTR_FAIL_REASON].startswith("diverged:")
    for t in trials:
        if t.state == TrialState.COMPLETE:
            assert t.value == ArchGraph.parse(t.user_attrs[ATTR_ARCH]).path_stats().num_paths
    # One run per trial: a failed evaluation is a result, not a crash that Tune would retry.
    # (A failure is not cached, so a later proposal of the same function is evaluated again.)
    runs = Counter(key for _, key in _log(scratch, "diverge"))
    assert sum(runs.values()) == len(failed) + sum(bool(t.user_attrs.get(ATTR_EVALUATED)) for t in trials)
    assert set(runs) == {t.user_attrs[ATTR_KEY] for t in trials if t.state == TrialState.FAIL
                         or t.user_attrs.get(ATTR_EVALUATED)}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])  # Ctrl-C; kill / timeout / Slurm
def test_an_interrupted_driver_is_resumed_by_rerunning_the_command(ray_session, tmp_path, sig):
    scratch = ray_session
    _clear(scratch, "slow.log")
    out = tmp_path / "s"
    args = ["--objective", "ray_objectives:slow", "--n-trials", "10", "--filter", "dag_box",
            "--max-concurrent", "2"]

    def interrupt():
        _wait_for(lambda: len(_log(scratch, "slow")) >= 3, "three evaluations")
        os.kill(os.getpid(), sig)  # Tune's handler (SIGTERM: ours calls it): save the experiment, stop

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    assert _search(out, *args) == 130
    thread.join(timeout=5)
    first = _study(out).get_trials()
    assert 3 <= len(first) < 10 and any(t.state == TrialState.RUNNING for t in first)
    experiment = _study(out).user_attrs["nasplug:ray_experiment"]
    assert experiment["finished"] is False
    assert _search(out, *args) == 0
    study = _study(out)
    trials = study.get_trials()
    assert study.user_attrs["nasplug:ray_experiment"] == {**experiment, "finished": True}  # restored
    assert len(trials) == 10 and not [t for t in trials if t.state != TrialState.COMPLETE]
    keys = [t.user_attrs[ATTR_KEY] for t in trials if t.user_attrs.get(ATTR_EVALUATED)]
    assert len(keys) == len(set(keys)), "an architecture was evaluated twice"
    for t in trials:
        assert t.value == pytest.approx(ArchGraph.parse(t.user_attrs[ATTR_ARCH]).path_stats().effective_width)


@pytest.mark.slow
def test_a_driver_killed_hard_is_resumed_by_rerunning_the_command(ray_session, tmp_path):
    """kill -9 of the driver (no snapshot at the end): the rerun restores the last snapshot; trials
    proposed after it are failed as a dead worker's (not counted), nothing is evaluated twice in
    the study, and it ends with n_trials counted trials, none RUNNING."""
    scratch = ray_session
    _clear(scratch, "slow.log")
    out = tmp_path / "s"
    args = ["--objective", "ray_objectives:slow", "--n-trials", "16", "--filter", "dag_box",
            "--max-concurrent", "2"]
    path = os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("RAY_ADDRESS", None)
    driver = subprocess.Popen([sys.executable, "-m", "nasplug.cli", "search", "--backend", "ray", "--out",
                               str(out), "--quiet", *args], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: len(_log(scratch, "slow")) >= 5, "five evaluations by the first driver")
    finally:
        driver.kill()
        driver.wait(timeout=60)
    assert _search(out, *args) == 0
    trials = _study(out).get_trials()
    counted = [t for t in trials if not str(t.user_attrs.get(ATTR_FAIL_REASON, "")).startswith("worker_died")]
    assert len(counted) == 16 and all(t.state == TrialState.COMPLETE for t in counted)
    assert all(t.state != TrialState.RUNNING for t in trials)
    keys = [t.user_attrs[ATTR_KEY] for t in trials if t.user_attrs.get(ATTR_EVALUATED)]
    assert len(keys) == len(set(keys))


# ----------------------------------------------------------------------------- user errors
def _cli_subprocess(args: list[str], block_ray: bool = False) -> subprocess.CompletedProcess:
    prelude = "import sys; sys.modules['ray'] = None; " if block_ray else "import sys; "
    code = prelude + f"from nasplug.cli import main; sys.exit(main({args!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_backend_ray_without_ray_is_one_line(tmp_path):
    done = _cli_subprocess(["search", "--backend", "ray", "--out", str(tmp_path)], block_ray=True)
    assert done.returncode == 2
    assert done.stderr.strip() == ("nasplug search: error: --backend ray needs the optional package 'ray': "
                                   "pip install 'nasplug[ray]'")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args, message", [
    (["--address", "auto"], "--address is a Ray option: add --backend ray"),
    (["--backend", "ray", "--gpus-per-trial", "-1"], "--gpus-per-trial: value must be a number >= 0"),
    (["--backend", "ray", "--cpus-per-trial", "0"], "a trial needs resources"),
    (["--backend", "ray", "--gpus-per-trial", "1.5"], "whole number"),
    (["--backend", "ray", "--max-concurrent", "0"], "--max-concurrent: value must be an integer >= 1"),
    (["--backend", "ray", "--device", "cuda"], "--device cuda needs GPUs per trial"),
    (["--backend", "ray", "--jobs", "2"], "on Ray use --max-concurrent"),
    (["--backend", "ray", "--pruner", "median"], "on Ray use --scheduler asha"),
    (["--backend", "ray", "--scored-startup", "5"], "--scored-startup needs --scorer"),
    (["--backend", "ray", "--objectives", "accuracy,params", "--scheduler", "asha"],
     "--scheduler asha stops trials on one intermediate value: not with --objectives"),
])
def test_bad_ray_options_are_one_line_errors_before_any_work(args, message, tmp_path, capsys, ray_module):
    out = tmp_path / "s"
    try:
        code = main(["search", "--out", str(out), *args])
    except SystemExit as stop:  # an option's own type check: argparse exits (with one line)
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nasplug search: error: ") and message in err and "\n" not in err
    assert not out.exists()


def test_the_command_lines_ray_defaults_and_schedulers_are_rayoptions(ray_module):
    """`nasplug search` cannot import Ray to build its help: its copies must agree with RayOptions."""
    import argparse
    from dataclasses import fields

    from nasplug.cli import build_parser
    from nasplug.commands.search import RAY_DEFAULTS
    from nasplug.ray.runner import SCHEDULERS, RayOptions

    options = RayOptions()
    names = {"ray_storage": "storage_path"}
    assert {names.get(k, k) for k in RAY_DEFAULTS} == {f.name for f in fields(RayOptions)}
    for key, default in RAY_DEFAULTS.items():
        assert getattr(options, names.get(key, key)) == default, key
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    scheduler = next(a for a in sub.choices["search"]._actions if "--scheduler" in a.option_strings)
    assert tuple(scheduler.choices) == SCHEDULERS
