"""Multi-objective searches: a tiny space with a hand-computed Pareto front, NSGA-II and MO-TPE through
the filtered sampler with filter and dedupe, the CLI on the NB201 table (true front, resume, study
identity) and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from nasplug import ArchGraph, search_spaces
from nasplug.cli import main
from nasplug.graph.paths import live_edge_mask
from nasplug.ops import ROLE_CODES
from nasplug.optuna import ArchObjective, FilteredSampler, open_storage
from nasplug.optuna.pareto import completed_points, front
from nasplug.scorers.base import BatchFilter
from nasplug.search import SearchConfig
from nasplug.search.costs import Network
from nasplug.search.objectives import ObjectiveSet
from nasplug.search.pareto import Bounds, hypervolume

optuna.logging.set_verbosity(optuna.logging.ERROR)
DAG3 = search_spaces.get("dag:3")  # edges (0,1) a, (0,2) b, (1,2) c; ops zero, skip, linear: 27 cells
NB201 = search_spaces.get("nb201")
#: An MLP of width 2 on 4 inputs, 2 outputs: 16 parameters + 6 per live linear edge (2·2 + bias 2).
TINY = Network("mlp", (4,), 2, width=2)
#: Accuracy of each function out = b(x) + c(a(x)), by hand, by the terms "0", "x", "L", "LL" of the
#: direct edge b and of the path a→c. Equal functions (sums commute) get equal accuracies.
ACCURACY = {("0", "0"): 10.0, ("x", "0"): 20.0, ("0", "x"): 20.0, ("x", "x"): 25.0,
            ("L", "0"): 60.0, ("0", "L"): 60.0, ("L", "x"): 80.0, ("x", "L"): 80.0,
            ("0", "LL"): 70.0, ("L", "L"): 75.0, ("x", "LL"): 85.0, ("L", "LL"): 90.0}
#: Cheapest = 16 parameters: best x + x (25); one linear (22): L(x) + x (80); two (28): L(L(x)) + x
#: (85) beats L(L(x)) (70) and L(x) + L(x) (75); three (34): L(L(x)) + L(x) (90). All four trade off.
HAND_FRONT = {(25.0, 16.0), (80.0, 22.0), (85.0, 28.0), (90.0, 34.0)}


def terms(arch: ArchGraph) -> tuple[str, str]:
    ops = {e: op.role for e, op in arch.edges.items()}
    b = {"zero": "0", "skip": "x", "param": "L"}[ops.get((0, 2), "zero")]
    a, c = ops.get((0, 1), "zero"), ops.get((1, 2), "zero")
    path = "0" if "zero" in (a, c) else ("x", "L", "LL")[(a == "param") + (c == "param")]
    return b, path


def accuracy(arch: ArchGraph) -> float:
    return ACCURACY[terms(arch)]


class NotAllLinear(BatchFilter):
    """Rejects the cells with three live linear edges (the most accurate and costliest)."""

    name = "not_all_linear"

    def keep_batch(self, batch):
        return (live_edge_mask(batch) & (batch.roles == ROLE_CODES["param"])).sum(axis=1) < 3


def search(sampler_name: str, filt=None, n_trials: int = 120, seed: int = 0):
    base = {"nsga2": lambda: optuna.samplers.NSGAIISampler(population_size=10, seed=seed),
            "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
            "random": lambda: optuna.samplers.RandomSampler(seed=seed)}[sampler_name]()
    objectives = ObjectiveSet("accuracy,params", TINY)
    calls = []

    def evaluate(arch):
        calls.append(arch.canonical_key())
        return accuracy(arch)

    sampler = FilteredSampler(base, filter=filt, space=DAG3, seed=seed)
    study = optuna.create_study(directions=list(objectives.directions), sampler=sampler)
    objective = ArchObjective(evaluate, DAG3, filter=filt, objectives=objectives)
    study.optimize(objective, n_trials=n_trials, catch=objective.catch)
    return study, calls


@pytest.mark.parametrize("sampler_name", ["nsga2", "random"])  # (MO-TPE need not visit every cell)
def test_tiny_space_front_is_the_hand_computed_one(sampler_name):
    study, _ = search(sampler_name)
    points, evaluations = completed_points(study)
    found = front(points, ("maximize", "minimize"))
    assert {tuple(v) for v in found.values.tolist()} == HAND_FRONT
    assert {tuple(t.values) for t in study.best_trials} == HAND_FRONT  # Optuna's own front agrees
    assert evaluations[-1] == len({t.user_attrs["nasplug:key"] for t in study.trials})
    # Hypervolume by hand with the front's own ideal (90, 16) and nadir (25, 34): losses
    # (0, 1), (5/65, 2/3), (10/65, 1/3), (1, 0) → (60/65)(1/3) + (55/65)(1/3) = 23/39.
    bounds = Bounds.of(np.array(sorted(HAND_FRONT)), ("maximize", "minimize"))
    assert hypervolume(found.values, bounds) == pytest.approx(23 / 39)


@pytest.mark.parametrize("sampler_name", ["nsga2", "tpe"])
def test_filter_and_dedupe_hold_in_multi_objective_runs(sampler_name):
    study, calls = search(sampler_name, filt=NotAllLinear(), n_trials=80, seed=1)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 80
    keys = {}
    for t in complete:
        arch = ArchGraph.parse(t.user_attrs["nasplug:arch"])
        assert NotAllLinear().keep(arch)  # no rejected cell became a trial
        assert t.values[0] == accuracy(arch)  # evaluated, or reused from the same function
        assert t.values[1] == TINY.costs(arch)[0]  # the cell's own network, even for a duplicate
        keys.setdefault(t.user_attrs["nasplug:key"], []).append(t)
    assert sorted(calls) == sorted(keys)  # each function evaluated exactly once
    for trials in keys.values():
        duplicate = [("nasplug:duplicate_of" in t.user_attrs) for t in trials]
        assert duplicate == [False] + [True] * (len(trials) - 1)
    found = front(completed_points(study)[0], ("maximize", "minimize"))
    assert {tuple(v) for v in found.values.tolist()} == HAND_FRONT - {(90.0, 34.0)}
    if sampler_name == "nsga2":  # NSGA-II's offspring (crossover through sample_relative) went through
        generations = {t.system_attrs.get("NSGAIISampler:generation") for t in study.trials}
        assert max(generations) >= 3


def test_latency_objective_measures_each_network_once():
    objectives = ObjectiveSet("accuracy,latency", TINY, device="cpu")
    study = optuna.create_study(directions=list(objectives.directions),
                                sampler=FilteredSampler(optuna.samplers.RandomSampler(seed=0), filter=None,
                                                        space=DAG3))
    study.optimize(ArchObjective(accuracy, DAG3, objectives=objectives), n_trials=15)
    networks = {str(ArchGraph(3, ArchGraph.parse(t.user_attrs["nasplug:arch"]).live_edges()))
                for t in study.trials}
    assert len(objectives.latency) == len(networks)
    assert all(t.values[1] > 0 for t in study.trials)


# ---------------------------------------------------------------------- the CLI on the NB201 table
def sweep_front(accuracy: np.ndarray, cost: np.ndarray) -> set[int]:
    """2-D Pareto front by a sweep over costs (not the library's algorithm): a cost level is on the
    front when its best accuracy beats every cheaper cell's."""
    out, best = set(), -np.inf
    for c in np.unique(cost):
        level = np.flatnonzero(cost == c)
        top = accuracy[level].max()
        if top > best:
            out |= set(level[accuracy[level] == top].tolist())
            best = top
    return out


def _study(db: Path, name: str | None = None):
    storage = open_storage(db)
    return optuna.load_study(storage=storage, study_name=name or optuna.get_all_study_names(storage)[0])


def test_table_search_front_true_front_and_resume(tmp_path, nb201_csv, nb201_rows, capsys):
    truth = np.full(NB201.size, np.nan)
    truth[NB201.encode_many([r["ArchitectureString"] for r in nb201_rows])] = [
        float(r["CIFAR10TestAccuracy200Epochs"]) for r in nb201_rows]
    params = Network.for_dataset("nb201", "cifar10").space_costs(NB201)[:, 0]
    out = tmp_path / "out"
    args = ["search", "--benchmark", str(nb201_csv), "--objectives", "accuracy,params", "--sampler",
            "nsga2", "--n-trials", "20", "--out", str(out), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Pareto front (" in printed and "nsga2" in printed
    study = _study(out / "study.db")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    for t in complete:
        i = NB201.encode(t.user_attrs["nasplug:arch"])
        assert t.values[1] == params[i]
        if "nasplug:duplicate_of" not in t.user_attrs:
            assert t.values[0] == pytest.approx(truth[i])
    summary = json.loads((out / "summary.json").read_text())
    values = np.array([t.values for t in complete])
    on_front = sweep_front(values[:, 0], values[:, 1])
    # a table lookup evaluates each cell (key rule "cell"): the front's cells are its trials' cells
    assert {complete[i].user_attrs["nasplug:arch"] for i in on_front} == {b["arch"] for b in summary["best"]}
    expected = {str(NB201.decode(i)) for i in sweep_front(np.nan_to_num(truth, nan=-1.0), params)}
    assert {b["arch"] for b in summary["true_front"]} == expected
    assert 0 < summary["hypervolume"] <= summary["true_hypervolume"] <= 1
    for name in ("summary.md", "pareto.png", "hypervolume.png", "outcomes.png"):
        assert (out / name).stat().st_size > 0
    assert "True Pareto front of the space" in (out / "summary.md").read_text()
    # Rerun with a larger budget: the same study continues, the first trials untouched.
    first = [(t.params, t.values) for t in study.trials]
    assert main([*args[:-4], "26", *args[-3:]]) == 0
    assert "resuming: 20 trials stored" in capsys.readouterr().out
    again = _study(out / "study.db")
    assert len(again.trials) == 26 and [(t.params, t.values) for t in again.trials[:20]] == first
    # Other objectives are another study's values: refused in the same study, in one line ...
    name = study.study_name
    assert main([*args[:4], "accuracy,flops", *args[5:-4], "3", *args[-3:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "objectives=accuracy:maximize,params:minimize" in err[0]
    # ... and a study of their own under another name, never mixed into this one.
    assert main([*args[:4], "accuracy,flops", *args[5:-4], "3", *args[-3:], "--study-name", "flops"]) == 0
    names = optuna.get_all_study_names(open_storage(out / "study.db"))
    assert sorted(names) == sorted([name, "flops"])
    capsys.readouterr()
    # A single-objective run pointed at the multi-objective study is refused, in one line.
    assert main(["search", "--benchmark", str(nb201_csv), "--study-name", name, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "objectives=accuracy:maximize,params:minimize" in err[0]
    assert len(_study(out / "study.db", name).trials) == 26


@pytest.mark.parametrize("extra, message", [
    (["--objectives", "accuracy,parms"], "unknown objective 'parms'"),
    (["--objectives", "params"], "must include accuracy"),
    (["--objectives", "accuracy"], "needs a cost next to accuracy"),
    (["--objectives", "accuracy:min,params"], "accuracy is always maximized"),
    (["--objectives", ""], "empty objective"),
    (["--objectives", "accuracy,params", "--pruner", "median"], "--pruner"),
    (["--objectives", "accuracy,params", "--sampler", "cmaes"], "sampler cmaes"),
    (["--objectives", "accuracy,params", "--objective", "os:getcwd"], "a custom --objective has none"),
])
def test_wrong_objectives_are_one_line_before_any_side_effect(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert main(["search", *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nasplug search: error:") and message in err[0], err
    assert not out.exists()


def test_objectives_are_part_of_the_config_identity(tmp_path):
    (tmp_path / "t.csv").touch()  # a table search needs its file to exist
    config = SearchConfig(benchmark=str(tmp_path / "t.csv"), objective="table",
                          objectives="params, accuracy:max")
    assert config.objectives == "params:minimize,accuracy:maximize"  # normalized, order kept
    assert config.directions == ("minimize", "maximize")
    assert config.identity()["objectives"] == config.objectives
    assert SearchConfig.from_dict(config.as_dict()) == config  # what spawned workers rebuild
    assert config.network() == Network("nb201", (3, 32, 32), 10, 16)
    assert SearchConfig(dataset="cifar100", objectives="accuracy,flops").network() == \
        Network("nb201", (3, 32, 32), 100, 16)  # trained on images: the NB201 network by default
    assert SearchConfig(objectives=None).directions == ("maximize",)
