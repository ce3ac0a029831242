"""ArchSearcher units, driven the way Tune drives a searcher (no Ray cluster needed).

Truths: the filter's own decision on every launched cell (scorers.get("dag_box")), the exact calls
a scripted base searcher receives, canonical keys computed independently of the searcher, and a
searcher continued from save()/restore() proposing exactly what the original goes on to propose.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from nasplug import ArchGraph, scorers, search_spaces
from nasplug.errors import NasplugError
from nasplug.optuna import arch_to_params, params_to_arch
from nasplug.search.costs import live_cell

ray = pytest.importorskip("ray")  # the ray extra; conftest's ray_module fails under CI instead
from ray.tune.search import Searcher  # noqa: E402

from nasplug.ray import METRIC, TIME_ATTR, ArchSearcher, ArchSpace, optuna_searcher  # noqa: E402
from nasplug.search.attrs import (  # noqa: E402
    ATTR_DUPLICATE_OF,
    ATTR_EVALUATED,
    ATTR_FAIL_REASON,
    ATTR_KEY,
    ATTR_REJECTED_BY,
)

NB201 = search_spaces.get("nb201")
BOX = scorers.get("dag_box", space=NB201)


@pytest.fixture(autouse=True)
def _ray_installed(ray_module):
    optuna.logging.set_verbosity(optuna.logging.WARNING)


class Tune:
    """Drives a searcher as Tune's controller does: fresh trial ids, at most ``k`` live trials,
    completions in launch order with ``outcome(config) -> result dict | "error"``."""

    def __init__(self, searcher: Searcher, outcome, k: int = 2):
        self.searcher, self.outcome, self.k = searcher, outcome, k
        self.launched: dict[str, dict] = {}
        self.live: list[str] = []
        self.counter = 0
        self.finished = False

    def step(self) -> None:
        while not self.finished and len(self.live) < self.k:
            self.counter += 1
            tid = f"t{self.counter}"
            config = self.searcher.suggest(tid)
            if config == Searcher.FINISHED:
                self.finished = True
            elif config is None:
                break
            else:
                self.launched[tid] = config
                self.live.append(tid)
        if self.live:
            tid = self.live.pop(0)
            result = self.outcome(self.launched[tid])
            if result == "error":
                self.searcher.on_trial_complete(tid, None, error=True)
            else:
                for intermediate in result.pop("_intermediate", []):
                    self.searcher.on_trial_result(tid, intermediate)
                self.searcher.on_trial_complete(tid, result)

    def run(self, max_steps: int = 10_000) -> None:
        for _ in range(max_steps):
            if self.finished and not self.live:
                return
            self.step()
        raise AssertionError("the searcher never finished")


def arch_of(config) -> ArchGraph:
    return params_to_arch(config, NB201)


def evaluated(value: float) -> dict:
    return {METRIC: value, ATTR_EVALUATED: True}


def width_outcome(config) -> dict:
    return evaluated(arch_of(config).path_stats().effective_width)


def test_every_launched_cell_passes_the_filter_and_duplicates_are_never_launched():
    searcher = optuna_searcher("nb201", filter="dag_box", n_trials=40, seed=3)
    tune = Tune(searcher, width_outcome, k=3)
    tune.run()
    archs = [arch_of(c) for c in tune.launched.values()]
    assert all(BOX.keep(a) for a in archs)
    keys = [a.canonical_key() for a in archs]
    assert len(keys) == len(set(keys)), "a cell was launched twice"
    trials = searcher.study.get_trials()
    assert len(trials) == 40 and all(t.state == TrialState.COMPLETE for t in trials)
    evaluated_trials = [t for t in trials if t.user_attrs.get(ATTR_EVALUATED)]
    assert len(evaluated_trials) == len(archs)
    by_number = {t.number: t for t in trials}
    for t in trials:
        if ATTR_DUPLICATE_OF in t.user_attrs:
            original = by_number[t.user_attrs[ATTR_DUPLICATE_OF]]
            assert original.user_attrs[ATTR_KEY] == t.user_attrs[ATTR_KEY]
            assert t.value == original.value and original.user_attrs.get(ATTR_EVALUATED)
        else:
            assert t.user_attrs.get(ATTR_EVALUATED)
        cell = ArchGraph.parse(t.user_attrs["nasplug:arch"])
        assert t.value == pytest.approx(cell.path_stats().effective_width)


class Scripted(Searcher):
    """Proposes a fixed list of cells and records what it is told (module level: picklable)."""

    def __init__(self, cells, metric=METRIC, mode="max"):
        super().__init__(metric=metric, mode=mode)
        self.cells, self.index, self.told, self.results = list(cells), 0, [], []

    def suggest(self, trial_id):
        if self.index >= len(self.cells):
            return Searcher.FINISHED
        self.index += 1
        return {**arch_to_params(self.cells[self.index - 1], NB201), "lr": 0.1}

    def on_trial_result(self, trial_id, result):
        self.results.append((trial_id, result[METRIC]))

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.told.append((trial_id, None if result is None else result.get(METRIC), error))


@functools.cache
def _pick_cells():
    """A kept cell, another cell computing the same function, a kept cell of another function, a
    rejected cell."""
    keep = BOX.keep_many(NB201.batch())
    kept = [NB201.decode(int(i)) for i in np.flatnonzero(keep)[:200]]
    pairs = ((x, y) for x in kept for y in kept if str(x) < str(y) and x.canonical_key() == y.canonical_key())
    a, twin = next(pairs)
    c = next(b for b in kept if b.canonical_key() != a.canonical_key())
    rejected = NB201.decode(int(np.flatnonzero(~keep)[0]))
    return a, twin, c, rejected


def test_scripted_base_filter_park_and_cache_in_order():
    a, twin, c, rejected = _pick_cells()
    assert BOX.keep(twin)  # equal functions: same decision
    base = Scripted([a, rejected, twin, c, twin])
    searcher = ArchSearcher(base, NB201, filter="dag_box", n_trials=None)
    first = searcher.suggest("r1")
    assert arch_of(first).canonical_key() == a.canonical_key() and first["lr"] == 0.1
    second = searcher.suggest("r2")            # rejected -> told, twin of running a -> parked, c
    assert arch_of(second).canonical_key() == c.canonical_key()
    assert base.told == [("r2~2", None, False)]                   # the rejected proposal
    assert searcher.suggest("r3") is None                          # twin (#5) parked too; base done
    searcher.on_trial_complete("r1", evaluated(7.0))
    assert base.told[1:] == [("r1~1", 7.0, False), ("r2~3", 7.0, False), ("r3~5", 7.0, False)]
    searcher.on_trial_complete("r2", evaluated(5.0))
    assert searcher.suggest("r4") == Searcher.FINISHED
    assert searcher.rejected == 1 and searcher.proposed == 4


def test_a_finished_duplicate_is_answered_and_the_base_asked_again():
    a, twin, c, _ = _pick_cells()
    base = Scripted([a, twin, c])
    searcher = ArchSearcher(base, NB201, filter="dag_box")
    searcher.suggest("r1")
    searcher.on_trial_complete("r1", evaluated(3.0))
    config = searcher.suggest("r2")            # twin answered from the cache, then c launched
    assert arch_of(config).canonical_key() == c.canonical_key()
    assert base.told == [("r1~1", 3.0, False), ("r2~2", 3.0, False)]


def test_parked_duplicates_are_launched_when_the_running_cell_ends_without_a_value():
    a, twin, c, _ = _pick_cells()
    stopped = {METRIC: 1.0, TIME_ATTR: 1, "training_iteration": 1}  # never passed to on_trial_result
    for ending in ({"error": True}, {"result": stopped}):  # crashed; stopped early by a scheduler
        base = Scripted([a, twin, c])
        searcher = ArchSearcher(base, NB201, filter="dag_box")
        searcher.suggest("r1")
        assert arch_of(searcher.suggest("r2")).canonical_key() == c.canonical_key()  # twin parked
        searcher.on_trial_complete("r1", ending.get("result"), error=ending.get("error", False))
        relaunched = searcher.suggest("r3")
        assert str(arch_of(relaunched)) == str(twin)
        assert searcher.suggest("r4") == Searcher.FINISHED


def test_outcomes_reach_the_study_as_complete_pruned_and_failed_with_reasons():
    searcher = optuna_searcher("nb201", filter="dag_box", n_trials=3, seed=0)
    configs = [searcher.suggest(f"r{i}") for i in range(3)]
    keys = [arch_of(c).canonical_key() for c in configs]
    assert len(set(keys)) == 3
    # r0: stopped by ASHA after epoch 1 (its last result never reached on_trial_result)
    searcher.on_trial_result("r0", {METRIC: 80.0, TIME_ATTR: 1, "training_iteration": 1})
    searcher.on_trial_complete("r0", {METRIC: 70.0, TIME_ATTR: 2, "training_iteration": 2})
    # r1: its evaluation failed (a diverged training); r2: stopped on its final report = evaluated
    searcher.on_trial_complete("r1", {METRIC: math.nan, ATTR_FAIL_REASON: "diverged: loss nan at epoch 2"})
    searcher.on_trial_complete("r2", {METRIC: 90.0, TIME_ATTR: 3, "training_iteration": 3,
                                      ATTR_EVALUATED: True, "nasplug:lr": 0.05})
    trials = {t.number: t for t in searcher.study.get_trials()}
    by_cfg = [trials[c["optuna_trial"]] for c in configs]
    assert by_cfg[0].state == TrialState.PRUNED and by_cfg[0].intermediate_values == {1: 80.0, 2: 70.0}
    assert by_cfg[1].state == TrialState.FAIL
    assert by_cfg[1].user_attrs[ATTR_FAIL_REASON] == "diverged: loss nan at epoch 2"
    assert by_cfg[2].state == TrialState.COMPLETE and by_cfg[2].value == 90.0
    assert by_cfg[2].user_attrs["nasplug:lr"] == 0.05
    assert searcher.cache.lookup(keys[2]).value == 90.0
    assert searcher.cache.lookup(keys[0]) is None and searcher.cache.running(keys[0]) is None


def test_a_trial_that_ends_by_itself_is_complete_whatever_it_reports():
    """A user's trainable reports {"value": v} per epoch and returns: COMPLETE with the last value
    (every result it reported reached on_trial_result, the last one included)."""
    searcher = optuna_searcher("nb201", filter="none", n_trials=1, seed=0)
    config = searcher.suggest("r0")
    for i, v in enumerate((50.0, 60.0), start=1):
        searcher.on_trial_result("r0", {METRIC: v, "training_iteration": i})
    searcher.on_trial_complete("r0", {METRIC: 60.0, "training_iteration": 2, "done": True})
    trial = searcher.study.get_trials()[config["optuna_trial"]]
    assert trial.state == TrialState.COMPLETE and trial.value == 60.0
    assert trial.user_attrs[ATTR_EVALUATED] is True


def test_crashed_trial_is_failed_with_a_reason():
    searcher = optuna_searcher("nb201", filter="none", n_trials=1, seed=0)
    config = searcher.suggest("r0")
    searcher.on_trial_complete("r0", None, error=True)
    trial = searcher.study.get_trials()[config["optuna_trial"]]
    assert trial.state == TrialState.FAIL and trial.user_attrs[ATTR_FAIL_REASON].startswith("error:")


def test_rejected_proposals_of_an_unfiltered_base_are_pruned_in_the_study():
    from ray.tune.search.optuna import OptunaSearch

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    base = OptunaSearch(space=ArchSpace("nb201"), metric=METRIC, mode="max", storage=storage, study_name="s",
                        sampler=optuna.samplers.RandomSampler(seed=1))
    searcher = ArchSearcher(base, NB201, filter="dag_box", n_trials=30, study=study)
    tune = Tune(searcher, width_outcome, k=2)
    tune.run()
    assert all(BOX.keep(arch_of(c)) for c in tune.launched.values())
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert len(pruned) == searcher.rejected > 0
    assert all(t.user_attrs[ATTR_REJECTED_BY] == "dag_box" for t in pruned)
    assert all(not BOX.keep(ArchGraph.parse(t.user_attrs["nasplug:arch"])) for t in pruned)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 30


def _extra(trial):
    return {"lr": trial.suggest_categorical("lr", [0.01, 0.1])}


def test_other_hyperparameters_pass_through_and_are_part_of_the_dedupe_key():
    searcher = optuna_searcher("nb201", filter="dag_box", n_trials=60, seed=2, extra=_extra)
    seen = {}

    def outcome(config):
        key = (arch_of(config).canonical_key(), config["lr"])
        assert key not in seen, "the same cell and lr were launched twice"
        seen[key] = 1
        return evaluated(arch_of(config).path_stats().effective_width * (1 + config["lr"]))

    Tune(searcher, outcome, k=2).run()
    assert {lr for _, lr in seen} == {0.01, 0.1}
    cells = [k for k, _ in seen]
    assert len(cells) > len(set(cells)), "the same cell with another lr must be evaluated too"


def test_save_and_restore_continue_exactly_where_the_search_was(tmp_path):
    """Save mid-search (trials running, one parked), restore into a searcher built with another
    seed (as Tuner.restore rebuilds it from tuner.pkl): fed the same results, it proposes exactly
    what the original goes on to propose."""
    original = optuna_searcher("nb201", filter="dag_box", n_trials=40, seed=5)
    tune = Tune(original, width_outcome, k=3)
    for _ in range(8):
        tune.step()
    assert tune.live, "save while trials are running"
    path = tmp_path / "searcher-state.pkl"
    original.save(str(path))
    restored = optuna_searcher("nb201", filter="dag_box", n_trials=40, seed=99)
    restored.restore(str(path))
    assert restored.proposed == original.proposed and set(restored.live) == set(original.live)
    assert len(restored.study.get_trials()) == len(original.study.get_trials())

    twin = Tune(restored, width_outcome, k=3)
    twin.launched, twin.live, twin.counter = dict(tune.launched), list(tune.live), tune.counter
    tune.run()
    twin.run()
    assert twin.launched == tune.launched
    assert [t.value for t in restored.study.get_trials()] == [t.value for t in original.study.get_trials()]


def test_a_restore_from_an_older_snapshot_counts_what_the_study_recorded_since(tmp_path):
    """kill -9 between two snapshots: the study holds trials the restored searcher never saw. The
    finished ones count towards n_trials and answer duplicates; the RUNNING one does not count."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    searcher = optuna_searcher("nb201", filter="dag_box", n_trials=8, seed=4,
                               storage=optuna.storages.RDBStorage(url), study_name="nas")
    tune = Tune(searcher, width_outcome, k=2)
    tune.step()
    tune.step()                                  # trials 0, 1 finished; 2 running
    searcher.save(str(tmp_path / "old.pkl"))     # the last snapshot: 3 proposed
    tune.step()
    tune.step()                                  # 2, 3 finished; 4 running: the driver dies here
    states = [t.state for t in searcher.study.get_trials()]
    assert states == [TrialState.COMPLETE] * 4 + [TrialState.RUNNING]
    restored = optuna_searcher("nb201", filter="dag_box", n_trials=8, seed=4,
                               storage=optuna.storages.RDBStorage(url), study_name="nas")
    restored.restore(str(tmp_path / "old.pkl"))
    # 3 from the snapshot (trial 2 among them: Tune reruns it) + trial 3; not the orphan trial 4
    assert restored.proposed == 4
    since = searcher.study.get_trials()[3]
    assert restored.cache.lookup(since.user_attrs[ATTR_KEY]).value == since.value


def test_timeout_stops_launching_and_a_restored_run_gets_its_own_clock(tmp_path):
    searcher = optuna_searcher("nb201", filter="dag_box", seed=0, timeout=0.0)
    assert searcher.suggest("r1") == Searcher.FINISHED
    searcher.save(str(tmp_path / "s.pkl"))
    searcher.restore(str(tmp_path / "s.pkl"))
    assert searcher._started is None


def test_a_new_searcher_on_the_same_study_reuses_its_finished_values():
    storage = optuna.storages.InMemoryStorage()
    first = optuna_searcher("nb201", filter="dag_box", n_trials=25, seed=1, storage=storage, study_name="nas")
    done = Tune(first, width_outcome, k=1)
    done.run()
    old_keys = {arch_of(c).canonical_key() for c in done.launched.values()}
    second = optuna_searcher("nb201", filter="dag_box", n_trials=25, seed=1, storage=storage,
                             study_name="nas")
    assert len(second.cache) == len(old_keys)
    again = Tune(second, width_outcome, k=1)
    again.run()
    assert not old_keys & {arch_of(c).canonical_key() for c in again.launched.values()}


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(NasplugError, match="mode"):
        optuna_searcher("nb201", mode="maximize")
    with pytest.raises(NasplugError, match="unknown filter"):
        optuna_searcher("nb201", filter="nope")


# ---------------------------------------------------------------------- several objectives
def _mo_searcher(spec: str, **kwargs) -> ArchSearcher:
    from test_multiobjective import DAG3, TINY

    from nasplug.search.objectives import ObjectiveSet

    sampler = optuna.samplers.NSGAIISampler(population_size=10, seed=0)
    return optuna_searcher(DAG3, filter=None, sampler=sampler, objectives=ObjectiveSet(spec, TINY),
                           seed=0, **kwargs)


def _linear_edges(arch: ArchGraph) -> int:
    return sum(op.role == "param" for op in live_cell(arch).edges.values())


def test_multi_objective_duplicates_get_the_cached_accuracy_and_their_own_costs():
    """The hand-computed tiny space of test_multiobjective: accuracy by the function's terms, 16
    parameters + 6 per live linear edge; the Ray searcher finds the hand-computed front and trains
    each function once, its duplicates answered with its accuracy and their own parameters."""
    from test_multiobjective import DAG3, HAND_FRONT, accuracy

    from nasplug.optuna.pareto import completed_points, front

    searcher = _mo_searcher("accuracy,params", n_trials=120)
    assert searcher.metric == [METRIC, "params"] and searcher.mode == ["max", "min"]

    def outcome(config):  # what the trainable reports: accuracy and the costs by name
        arch = params_to_arch(config, DAG3)
        return {**evaluated(accuracy(arch)), "params": 16.0 + 6 * _linear_edges(arch)}

    tune = Tune(searcher, outcome, k=2)
    tune.run()
    launched = [params_to_arch(c, DAG3).canonical_key() for c in tune.launched.values()]
    assert len(launched) == len(set(launched))  # each function evaluated once
    study = searcher.study
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 120
    duplicates = 0
    for t in complete:
        arch = ArchGraph.parse(t.user_attrs["nasplug:arch"])
        assert t.values == [accuracy(arch), 16.0 + 6 * _linear_edges(arch)]
        duplicates += "nasplug:duplicate_of" in t.user_attrs
    assert duplicates == 120 - len(launched) > 0
    found = front(completed_points(study)[0], ("maximize", "minimize"))
    assert {tuple(v) for v in found.values.tolist()} == HAND_FRONT
    # A new searcher on the same study: the cache (the accuracy, by key) comes back from the values.
    again = _mo_searcher("accuracy,params", storage=study._storage, study_name=study.study_name)
    assert len(again.cache) == len(launched)


def test_with_latency_a_duplicate_is_answered_only_for_a_network_a_trial_has_measured():
    """Latency is measured by the trials on their devices (here: a made-up figure per network);
    the driver never measures. A cell of an evaluated function but another network is launched."""
    from test_multiobjective import DAG3, accuracy

    def measured(arch) -> float:
        return 1.0 + len(live_cell(arch).edges) + 0.5 * _linear_edges(arch)

    searcher = _mo_searcher("accuracy,latency", n_trials=60)

    def outcome(config):
        arch = params_to_arch(config, DAG3)
        return {**evaluated(accuracy(arch)), "latency": measured(arch)}

    tune = Tune(searcher, outcome, k=2)
    tune.run()
    networks = [str(live_cell(params_to_arch(c, DAG3))) for c in tune.launched.values()]
    assert len(networks) == len(set(networks))  # each network once
    functions = {params_to_arch(c, DAG3).canonical_key() for c in tune.launched.values()}
    assert len(functions) < len(networks)  # some functions ran as two networks
    complete = searcher.study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 60 and sum("nasplug:duplicate_of" in t.user_attrs for t in complete) > 0
    for t in complete:
        arch = ArchGraph.parse(t.user_attrs["nasplug:arch"])
        assert t.values == [accuracy(arch), measured(arch)]
    latency = searcher.objectives.latency  # fed by the trials: it returns what they measured
    assert len(latency) == len(networks) and all(latency(n) == measured(n) for n in networks)
    # A new searcher on the same study: the accuracies and latencies come back from its values.
    study = searcher.study
    again = _mo_searcher("accuracy,latency", storage=study._storage, study_name=study.study_name)
    assert len(again.cache) == len(networks)
    assert all(again.objectives.latency(n) == measured(n) for n in networks)
    assert len(again.objectives.latency) == len(networks)  # read back, none measured here


def test_progress_lines_are_the_optuna_backends_with_the_best_so_far(caplog):
    """One line per finished trial, the same as the Optuna backend's (search.progress.trial_line),
    read back from what the study recorded: outcome, value, the best value and trial so far."""
    import logging

    from nasplug.search.progress import trial_line

    searcher = optuna_searcher("nb201", filter="dag_box", n_trials=25, seed=3)
    with caplog.at_level(logging.INFO, logger="nasplug.ray"):
        Tune(searcher, width_outcome, k=2).run()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trial ")]
    trials = {t.number: t for t in searcher.study.get_trials()}
    assert len(lines) == 25
    best = None
    for line in lines:
        number = int(line.split()[1])
        t = trials[number]
        if ATTR_DUPLICATE_OF not in t.user_attrs and (best is None or t.value > best[1]):
            best = (str(number), t.value)
        assert line == trial_line(str(number), "COMPLETE", t.value, t.user_attrs, best=best, trained=False)
