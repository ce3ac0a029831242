"""nasplug.optuna: Optuna's own sampler conformance suite, the filter guarantee, fallbacks,
pass-through of other parameters, pruning before training, duplicates, failures, two processes."""

from __future__ import annotations

import math
import multiprocessing as mp
import warnings

import numpy as np
import optuna
import pytest
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    MultiObjectiveSamplerTestCase,
    RelativeSamplerTestCase,
)
from optuna.trial import TrialState

from nasplug import ArchGraph, search_spaces
from nasplug.optuna import (
    ArchObjective,
    EvaluationFailed,
    FilteredSampler,
    arch_distributions,
    arch_to_params,
    open_storage,
    params_to_arch,
    prune_before_training,
    suggest_architecture,
)
from nasplug.scorers.base import BatchFilter

optuna.logging.set_verbosity(optuna.logging.ERROR)
NB201 = search_spaces.get("nb201")


def in_c22_box(arch: ArchGraph) -> bool:
    """The published NB201 box [C22 §5.3] (docs/theory.md §2): centre (1.625, 2.1667), half-radius
    (0.6875, 0.9167), cells without a path rejected — computed from path_stats, not the filter."""
    st = arch.path_stats()
    if st.num_paths == 0:
        return False
    return (abs(st.effective_depth - 1.625) <= 0.6875 + 1e-9
            and abs(st.effective_width - 13 / 6) <= 11 / 12 + 1e-9)


# ---------------------------------------------------------------------- Optuna's conformance suite
@pytest.mark.parametrize("base", ["tpe", "random", "nsga2"])
class TestFilteredSamplerConformance(BasicSamplerTestCase, MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self, base):
        def make():
            inner = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
                     "nsga2": optuna.samplers.NSGAIISampler}[base](seed=0)
            return FilteredSampler(inner, filter="dag_box", space="nb201", seed=0)

        return make


class TestFilteredSamplerRelativeConformance(RelativeSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: FilteredSampler(
            optuna.samplers.TPESampler(seed=0, multivariate=True, n_startup_trials=0),
            filter="dag_box", space="nb201", seed=0)


# ---------------------------------------------------------------------- define-by-run parameters
def test_suggest_architecture_names_choices_and_round_trip():
    dists = arch_distributions("nb201")
    assert list(dists) == ["edge_0_1", "edge_0_2", "edge_1_2", "edge_0_3", "edge_1_3", "edge_2_3"] \
        or sorted(dists) == sorted(f"edge_{s}_{t}" for s, t in NB201.pairs)
    assert all(d.choices == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
               for d in dists.values())
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = NB201.sample(rng)
        assert params_to_arch(arch_to_params(arch, "nb201"), "nb201") == arch
    study = optuna.create_study()
    cell = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|"
    study.enqueue_trial(arch_to_params(cell, "nb201"))
    trial = study.ask()
    arch = suggest_architecture(trial, "nb201")
    assert arch.to_nb201() == cell
    assert trial.user_attrs["nasplug:key"] == ArchGraph.parse(cell).canonical_key()
    assert set(arch_distributions("dag:4")["edge_0_3"].choices) == {"none", "skip_connect", "linear"}


# ---------------------------------------------------------------------- the filter guarantee
@pytest.mark.parametrize("make_base", [
    lambda: optuna.samplers.TPESampler(seed=1),
    lambda: optuna.samplers.TPESampler(seed=1, multivariate=False),
    lambda: optuna.samplers.RandomSampler(seed=1),
    "cmaes",
], ids=["tpe", "tpe-independent", "random", "cmaes"])
def test_rejected_architectures_never_reach_the_objective(make_base):
    if make_base == "cmaes":  # Optuna's CMA-ES needs the optional `cmaes` package
        pytest.importorskip("cmaes")
        make_base = lambda: optuna.samplers.CmaEsSampler(seed=1, warn_independent_sampling=False)  # noqa: E731
    seen = []

    def objective(trial):
        arch = suggest_architecture(trial, "nb201")
        seen.append(arch)
        lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)  # a non-architecture parameter
        return arch.path_stats().effective_width + math.log(lr)

    study = optuna.create_study(direction="maximize",
                                sampler=FilteredSampler(make_base(), filter="dag_box", space="nb201", seed=0))
    study.optimize(objective, n_trials=40)
    assert len(seen) == 40
    assert all(in_c22_box(a) for a in seen)
    assert all(1e-3 <= t.params["lr"] <= 1.0 for t in study.trials)


def test_random_base_rejects_at_the_rate_of_the_box():
    # With a uniform base sampler the wrapper is rejection sampling: proposals per trial are
    # geometric with success probability 6,256 / 15,625 (docs/theory.md §2), mean 2.50.
    study = optuna.create_study(sampler=FilteredSampler(optuna.samplers.RandomSampler(seed=3),
                                                       filter="dag_box", space="nb201", seed=0))
    study.optimize(lambda t: suggest_architecture(t, "nb201").path_stats().num_paths, n_trials=300)
    tries = np.array([t.user_attrs["nasplug:filter_tries"] for t in study.trials])
    assert abs(tries.mean() - 15625 / 6256) < 0.35
    assert not any("nasplug:filter_fallback" in t.user_attrs for t in study.trials)


def test_dag_space_and_authors_box():
    study = optuna.create_study(sampler=FilteredSampler(optuna.samplers.RandomSampler(seed=0),
                                                       filter="dag_box_authors", space="dag:5", seed=0))
    archs = []
    study.optimize(lambda t: archs.append(suggest_architecture(t, "dag:5")) or 0.0, n_trials=25)
    for a in archs:
        st = a.path_stats()
        assert st.num_paths > 0 and 0.99 <= st.effective_depth <= 2.51 and 0.99 <= st.effective_width <= 3.01


class OnlyOne(BatchFilter):
    """A filter keeping exactly one cell (NB201 cells are identified by edge roles and kernel sizes)."""

    name = "only_one"

    def __init__(self, cell):
        self.target = NB201.batch([NB201.encode(cell)])

    def keep_batch(self, batch):
        return ((batch.roles == self.target.roles).all(axis=1)
                & (batch.kernel_sizes == self.target.kernel_sizes).all(axis=1))


class Nothing(BatchFilter):
    name = "nothing"

    def keep_batch(self, batch):
        return np.zeros(len(batch), dtype=bool)


@pytest.mark.parametrize("fallback", ["nearest", "uniform"])
def test_fallback_marks_the_trial_and_still_passes(fallback):
    cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    filt = OnlyOne(cell)
    sampler = FilteredSampler(optuna.samplers.RandomSampler(seed=0), filter=filt, max_tries=5,
                             space="nb201", fallback=fallback, seed=0)
    study = optuna.create_study(sampler=sampler)
    got = []
    study.optimize(lambda t: got.append(suggest_architecture(t, "nb201")) or 1.0, n_trials=5)
    assert all(a == ArchGraph.parse(cell) for a in got)
    assert all(t.user_attrs["nasplug:filter_fallback"] == fallback for t in study.trials)
    assert all(t.user_attrs["nasplug:filter_tries"] <= 5 for t in study.trials)
    assert all(ArchGraph.parse(t.user_attrs["nasplug:rejected_proposal"]) != ArchGraph.parse(cell)
               for t in study.trials)


def test_filter_rejecting_everything_is_pruned_by_the_objective():
    calls = []
    sampler = FilteredSampler(optuna.samplers.RandomSampler(seed=0), filter=Nothing(), max_tries=3,
                             space="nb201", seed=0)
    study = optuna.create_study(sampler=sampler)
    objective = ArchObjective(calls.append, "nb201", filter=Nothing())
    study.optimize(objective, n_trials=4, catch=objective.catch)
    assert calls == []
    assert all(t.state == TrialState.PRUNED for t in study.trials)
    assert all(t.user_attrs["nasplug:filter_fallback"] == "none_passes" for t in study.trials)


def test_non_architecture_parameters_pass_straight_through():
    class Constant(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, dist):
            if name == "wd":
                return 0.125
            return super().sample_independent(study, trial, name, dist)

    study = optuna.create_study(sampler=FilteredSampler(Constant(seed=0), filter="dag_box", space="nb201"))
    study.optimize(lambda t: (suggest_architecture(t, "nb201"), t.suggest_float("wd", 0, 1))[1], n_trials=5)
    assert [t.params["wd"] for t in study.trials] == [0.125] * 5


def test_sampler_pickles_for_worker_processes():
    import pickle

    sampler = FilteredSampler(optuna.samplers.TPESampler(seed=0), filter="dag_box", space="nb201")
    clone = pickle.loads(pickle.dumps(sampler))
    study = optuna.create_study(sampler=clone)
    study.optimize(lambda t: suggest_architecture(t, "nb201").path_stats().num_paths, n_trials=3)
    assert all(in_c22_box(ArchGraph.parse(t.user_attrs["nasplug:arch"])) for t in study.trials)


# ---------------------------------------------------------------------- objective side
def test_prune_before_training_reports_the_proxy_and_prunes():
    rng = np.random.default_rng(0)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    trained = []

    def objective(trial):
        arch = suggest_architecture(trial, "nb201")
        prune_before_training(trial, arch, "dag_box", scorer="effective_width")
        trained.append(arch)
        return float(rng.random())

    study.optimize(objective, n_trials=40)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned and trained
    assert all(in_c22_box(a) for a in trained)
    for t in study.trials:
        arch = ArchGraph.parse(t.user_attrs["nasplug:arch"])
        assert (t.state == TrialState.PRUNED) == (not in_c22_box(arch))
        assert t.intermediate_values[0] == pytest.approx(arch.path_stats().effective_width)
        assert (t.user_attrs.get("nasplug:rejected_by") == "dag_box") == (t.state == TrialState.PRUNED)


def test_duplicates_are_evaluated_once_even_across_storages_handles(tmp_path):
    # Three cells computing the same function: a dead edge (node 2 feeds nothing) is dropped, and
    # the order of a sum does not matter.
    a = "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    b = "|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    other = "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|nor_conv_3x3~1|none~2|"
    assert ArchGraph.parse(a).canonical_key() == ArchGraph.parse(b).canonical_key()
    url = f"sqlite:///{tmp_path / 's.db'}"
    calls = []

    def evaluate(arch):
        calls.append(str(arch))
        return float(len(calls))

    study = optuna.create_study(storage=url, study_name="d", direction="maximize")
    for cell in (a, a, b, other):
        study.enqueue_trial(arch_to_params(cell, "nb201"))
    study.optimize(ArchObjective(evaluate, "nb201"), n_trials=2)
    # A second handle on the same storage (another process would be the same) sees the cache.
    again = optuna.load_study(storage=url, study_name="d")
    again.optimize(ArchObjective(evaluate, "nb201"), n_trials=2)
    assert calls == [ArchGraph.parse(a).to_nb201(), ArchGraph.parse(other).to_nb201()]
    trials = again.trials
    assert [t.value for t in trials] == [1.0, 1.0, 1.0, 2.0]
    assert [t.user_attrs.get("nasplug:duplicate_of") for t in trials] == [None, 0, 0, None]


def test_diverging_and_failing_evaluations_are_recorded_and_the_study_continues():
    def evaluate(arch):
        st = arch.path_stats()
        if st.num_paths == 1:
            return float("nan")  # what a diverged training loss gives
        if st.num_paths == 2:
            raise EvaluationFailed("diverged", "loss became inf at epoch 1")
        return float(st.num_paths)

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    objective = ArchObjective(evaluate, "nb201")
    study.optimize(objective, n_trials=60, catch=objective.catch)
    assert len(study.trials) == 60
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed, "the seed should hit cells with one or two paths"
    for t in failed:
        paths = ArchGraph.parse(t.user_attrs["nasplug:arch"]).path_stats().num_paths
        assert paths in (1, 2)
        assert t.user_attrs["nasplug:fail_reason"].startswith("diverged")
    assert all(t.state == TrialState.COMPLETE for t in study.trials if t not in failed
               and ArchGraph.parse(t.user_attrs["nasplug:arch"]).path_stats().num_paths not in (1, 2))


# ---------------------------------------------------------------------- two processes, one storage
def _worker(storage_spec: str, n: int, seed: int, queue) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(storage_spec)
    study = optuna.load_study(storage=storage, study_name="mp")
    study.sampler = FilteredSampler(optuna.samplers.RandomSampler(seed=seed), filter="dag_box",
                                   space="nb201", seed=seed)
    mine = []

    def objective(trial):
        mine.append(trial.number)
        return suggest_architecture(trial, "nb201").path_stats().effective_width

    study.optimize(objective, n_trials=n)
    queue.put(mine)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_processes_complete_n_trials_without_loss_or_duplication(tmp_path, kind):
    spec = str(tmp_path / "s.db") if kind == "sqlite" else f"journal:{tmp_path / 'j.log'}"
    optuna.create_study(storage=open_storage(spec), study_name="mp", direction="maximize")
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork in a multi-threaded process
        procs = [ctx.Process(target=_worker, args=(spec, 8, seed, queue)) for seed in (1, 2)]
        for p in procs:
            p.start()
        got = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    trials = optuna.load_study(storage=open_storage(spec), study_name="mp").trials
    assert len(trials) == 16
    assert sorted(t.number for t in trials) == list(range(16))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len(got[0]) == len(got[1]) == 8 and not set(got[0]) & set(got[1])
    assert sorted(got[0] + got[1]) == list(range(16))
    assert all(in_c22_box(ArchGraph.parse(t.user_attrs["nasplug:arch"])) for t in trials)


# ---------------------------------------------------------------------- fixed (enqueued) edges
@pytest.mark.parametrize("seed", range(5))
def test_enqueued_edges_are_judged_by_the_filter_under_multivariate_tpe(seed):
    # The joint proposal of multivariate TPE used to be judged before Optuna applied the enqueued
    # edges, so the cell actually suggested often failed the filter (4 of 5 seeds).
    sampler = FilteredSampler(optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=3),
                              filter="dag_box", space="nb201", seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: suggest_architecture(t, "nb201").path_stats().effective_width, n_trials=8)
    fixed = {"edge_0_1": "avg_pool_3x3", "edge_1_2": "none", "edge_0_3": "skip_connect"}
    study.enqueue_trial(fixed)
    calls = []
    objective = ArchObjective(lambda a: calls.append(a) or 1.0, "nb201", filter="dag_box", dedupe=False)
    study.optimize(objective, n_trials=1)
    trial = study.trials[-1]
    assert trial.state == TrialState.COMPLETE and len(calls) == 1
    assert in_c22_box(calls[0])  # (a fallback, if TPE kept proposing rejected cells, keeps the fixed edges)
    assert all(trial.params[name] == op for name, op in fixed.items())


@pytest.mark.parametrize("make_base", [
    lambda: optuna.samplers.TPESampler(seed=0, multivariate=True, n_startup_trials=2),
    lambda: optuna.samplers.RandomSampler(seed=0),
], ids=["relative", "independent"])
def test_fixed_edges_with_no_passing_completion_are_marked_and_never_trained(make_base):
    sampler = FilteredSampler(make_base(), filter="dag_box", space="nb201", seed=0, max_tries=5)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: suggest_architecture(t, "nb201").path_stats().num_paths, n_trials=3)
    # nothing enters the output node: no input→output path, so no completion passes the box
    study.enqueue_trial({"edge_0_3": "none", "edge_1_3": "none", "edge_2_3": "none"})
    calls = []
    objective = ArchObjective(calls.append, "nb201", filter="dag_box")
    study.optimize(objective, n_trials=1, catch=objective.catch)
    trial = study.trials[-1]
    assert calls == [] and trial.state == TrialState.PRUNED
    assert trial.user_attrs["nasplug:filter_fallback"] == "none_passes"
    assert trial.user_attrs["nasplug:rejected_by"] == "dag_box"
    assert [trial.params[f"edge_{s}_3"] for s in range(3)] == ["none"] * 3


def test_fallbacks_keep_fixed_edges_on_large_spaces():
    from nasplug.search import KeepMask, resolve_filter

    space = search_spaces.get("dag:10")
    mask = KeepMask(space, resolve_filter("dag_box", space))
    rng = np.random.default_rng(0)
    passing = np.array(mask.uniform(rng))
    fixed = np.zeros(len(space.pairs), dtype=bool)
    fixed[:8] = True
    start = np.where(fixed, passing, 0)  # a passing cell's first edges, nothing else: rejected
    assert not mask.keep(start)
    for pick in (lambda: mask.nearest(start, rng, fixed=fixed),
                 lambda: mask.uniform(rng, fixed=np.where(fixed, start, -1))):
        cell = np.array(pick())
        assert mask.keep(cell) and (cell[fixed] == passing[fixed]).all()


# ---------------------------------------------------------------------- what counts as the same network
def test_key_rules_count_the_networks_actually_trained():
    from nasplug.search.dedupe import evaluation_key, key_rule

    cells = list(NB201)
    counts = {rule: len({evaluation_key(rule)(a) for a in cells})
              for rule in ("function", "mlp_function", "cell")}
    # The MLP abstraction maps NB201 onto the complete 4-node zero/skip/linear DAGs (none→zero,
    # skip/pool→skip, convs→linear): exactly the distinct functions of the dag:4 space.
    dag4 = {a.canonical_key() for a in search_spaces.get("dag:4")}
    assert counts == {"function": 4930, "mlp_function": len(dag4), "cell": 15625}
    assert len(dag4) == 78
    assert key_rule("train", "mlp") == "mlp_function" and key_rule("train", "cnn") == "function"
    assert key_rule("table") == "cell" and key_rule("custom") == "function"


def test_the_theory_mlp_of_a_cell_is_the_mlp_of_its_abstraction():
    import torch

    from nasplug.models import build_mlp

    rng = np.random.default_rng(0)
    x = torch.randn(16, 64, generator=torch.Generator().manual_seed(0))
    for _ in range(20):
        arch = NB201.sample(rng)
        a = build_mlp(arch, 64, 32, 10, seed=3)
        b = build_mlp(arch.abstract(), 64, 32, 10, seed=3)
        with torch.no_grad():
            assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("rule, evaluated", [("mlp_function", 1), ("function", 2)])
def test_dedupe_follows_the_key_rule(rule, evaluated):
    conv3 = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
    conv1 = "|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"  # the same MLP
    study = optuna.create_study(direction="maximize")
    for cell in (conv3, conv1):
        study.enqueue_trial(arch_to_params(cell, "nb201"))
    calls = []
    study.optimize(ArchObjective(lambda a: calls.append(a) or 1.0, "nb201", key=rule), n_trials=2)
    assert len(calls) == evaluated
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert ("nasplug:duplicate_of" in study.trials[1].user_attrs) == (evaluated == 1)


def test_a_duplicate_of_a_running_evaluation_waits_for_it():
    import threading
    import time

    cell = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|"
    study = optuna.create_study(direction="maximize")
    for _ in range(2):
        study.enqueue_trial(arch_to_params(cell, "nb201"))
    calls, lock = [], threading.Lock()

    def evaluate(arch):
        with lock:
            calls.append(arch)
        time.sleep(0.5)  # both threads start their trial while this one runs
        return 7.0

    study.optimize(ArchObjective(evaluate, "nb201"), n_trials=2, n_jobs=2)
    assert len(calls) == 1
    assert sorted(t.value for t in study.trials) == [7.0, 7.0]
    assert sum("nasplug:duplicate_of" in t.user_attrs for t in study.trials) == 1


def test_a_filter_is_applied_to_a_space_once_per_process():
    """The run's header, the sampler and the scored start share one keep-mask per filter object:
    a filter that scores the whole space (top_fraction) is not re-applied by each of them."""
    from nasplug.search import keep_mask, resolve_filter

    space = search_spaces.get("nb201")
    box = resolve_filter("dag_box", space)
    calls = []
    keep_many = box.keep_many
    box.keep_many = lambda batch: calls.append(len(batch)) or keep_many(batch)
    first = keep_mask(space, box)
    assert first.count() == 6256 and keep_mask(search_spaces.get("nb201"), box) is first
    FilteredSampler(filter=box, space=space, scorer="live_param_cost", scored_startup=2)._index.count()
    assert calls == [space.size]  # one pass over the whole space, whoever asked
    other = resolve_filter("dag_box", space)
    assert keep_mask(space, other) is not first  # another filter object: its own mask
