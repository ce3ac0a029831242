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
