"""The framework-neutral search core: evaluator signatures and state stores, evaluation keys, the
best-scored start (search.seeding) and the sampler's scored startup.

Truths: an uninterrupted training (for a resumed one), the scorer's and filter's own values on
every cell of NAS-Bench-201 (for the ranking), canonical keys computed independently.
"""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from nasplug import scorers, search_spaces
from nasplug.errors import NasplugError
from nasplug.optuna import FilteredSampler, suggest_architecture
from nasplug.search import as_evaluator, train_evaluator
from nasplug.search.dedupe import KEY_RULES, evaluation_key, with_hyperparameters
from nasplug.search.seeding import scored_cells

NB201 = search_spaces.get("nb201")


class MemoryStore:
    """A StateStore in memory that records what it was given and when."""

    def __init__(self):
        self.state, self.events = None, []

    def load(self):
        return self.state

    def save(self, step, state):
        self.events.append(("save", step))
        self.state = state


def test_as_evaluator_passes_what_each_function_takes():
    seen = []
    report, store = (lambda s, v: None), MemoryStore()
    as_evaluator(lambda a: seen.append((a,)) or 1.0)("x", report, store)
    as_evaluator(lambda a, r: seen.append((a, r)) or 1.0)("x", report, store)
    as_evaluator(lambda a, r, s: seen.append((a, r, s)) or 1.0)("x", report, store)
    as_evaluator(lambda *args: seen.append(args) or 1.0)("x", report, store)
    assert seen == [("x",), ("x", report), ("x", report, store), ("x", report, store)]


def test_train_evaluator_saves_before_reporting_and_resumes_to_the_uninterrupted_value():
    evaluate = train_evaluator("digits", model="mlp", epochs=3, seed=1, device="cpu", width=32)
    straight = evaluate("2_21_112")

    store = MemoryStore()

    class Killed(Exception):
        pass

    def report(step, value):
        store.events.append(("report", step))
        if step == 2:
            raise Killed

    with pytest.raises(Killed):
        evaluate("2_21_112", report, store)
    assert store.events == [("save", 1), ("report", 1), ("save", 2), ("report", 2)]
    resumed_steps = []
    resumed = evaluate("2_21_112", lambda s, v: resumed_steps.append(s), store)
    assert resumed_steps == [3]
    assert resumed.value == straight.value


def test_with_hyperparameters_adds_them_sorted_by_name():
    assert with_hyperparameters("k") == "k" == with_hyperparameters("k", {})
    key = with_hyperparameters("k", {"lr": 0.1, "wd": 1e-4})
    assert key == with_hyperparameters("k", {"wd": 1e-4, "lr": 0.1})
    assert with_hyperparameters("k", {"lr": 0.1}) != with_hyperparameters("k", {"lr": 0.01}) != "k"


def test_evaluation_keys_are_picklable_and_unknown_rules_are_refused():
    import pickle

    a, b = NB201.from_digits((0, 1, 2, 3, 1, 2)), NB201.from_digits((0, 1, 2, 3, 1, 2))
    for rule in KEY_RULES:
        key = pickle.loads(pickle.dumps(evaluation_key(rule)))
        assert key(a) == key(b) == evaluation_key(rule)(a)
    with pytest.raises(NasplugError, match="key rule must be one of"):
        evaluation_key("k")


# ----------------------------------------------------------------------------- scored start
def test_scored_cells_are_the_best_scored_distinct_passing_cells():
    scorer = scorers.get("live_param_cost")
    box = scorers.get("dag_box", space=NB201)
    cells = scored_cells(NB201, "live_param_cost", "dag_box", n=40, rng=0)
    assert len(cells) == 40
    archs = [NB201.from_digits(c) for c in cells]
    assert all(box.keep(a) for a in archs)
    keys = [a.canonical_key() for a in archs]
    assert len(set(keys)) == 40
    scores = np.array([scorer.score(a) for a in archs])
    assert np.all(np.diff(scores) <= 0)                       # best first
    everything = scorer.score_many(NB201.batch())
    kept = box.keep_many(NB201.batch())
    assert scores[0] == everything[kept].max()
    # No passing cell of another function scores above the last one returned.
    better = np.flatnonzero(kept & (everything > scores[-1]))
    assert {NB201.decode(int(i)).canonical_key() for i in better} <= set(keys)


def test_scored_cells_break_ties_by_seed_and_honour_lower_is_better():
    a = scored_cells(NB201, "live_param_cost", None, n=30, rng=1)
    b = scored_cells(NB201, "live_param_cost", None, n=30, rng=2)
    scorer = scorers.get("live_param_cost")
    assert sorted(scorer.score(NB201.from_digits(c)) for c in a) == \
        sorted(scorer.score(NB201.from_digits(c)) for c in b)
    assert a != b  # equal scores, other cells
    low = scored_cells(NB201, "nngp_convergence_factor", None, n=5, rng=0)  # lower is better
    cost = scorers.get("nngp_convergence_factor")
    assert not cost.higher_is_better
    values = cost.score_many(NB201.batch())
    assert cost.score(NB201.from_digits(low[0])) == np.nanmin(values)


def test_scored_cells_need_a_scorer_and_a_positive_count():
    with pytest.raises(NasplugError, match="need a scorer"):
        scored_cells(NB201, None)
    with pytest.raises(NasplugError, match="at least 1"):
        scored_cells(NB201, "live_param_cost", n=0)


def _study(scored_startup, seed=0):
    sampler = FilteredSampler(optuna.samplers.TPESampler(seed=seed), filter="top_fraction", space=NB201,
                              scorer="live_param_cost", scored_startup=scored_startup, seed=seed)
    return optuna.create_study(direction="maximize", sampler=sampler)


def test_a_blind_first_batch_becomes_the_best_scored_cells():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _study(scored_startup=4, seed=3)
    expected = scored_cells(NB201, "live_param_cost", "top_fraction", n=12, rng=3)
    pending = [study.ask() for _ in range(12)]                      # K = 12 before any result
    cells = [NB201.digits(NB201.encode(suggest_architecture(t, NB201))) for t in pending]
    assert cells == expected
    assert [t.user_attrs["nasplug:scored_startup"] for t in study.get_trials()] == list(range(12))
    for t in pending[:4]:
        study.tell(t, 1.0)
    nxt = study.ask()                                               # 4 finished: TPE's turn
    suggest_architecture(nxt, NB201)
    assert "nasplug:scored_startup" not in study.get_trials()[-1].user_attrs


def test_scored_startup_skips_cells_the_study_holds_and_needs_a_scorer():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _study(scored_startup=3, seed=0)
    first = scored_cells(NB201, "live_param_cost", "top_fraction", n=3, rng=0)
    study.enqueue_trial({f"edge_{s}_{t}": NB201.ops[d].name for (s, t), d in zip(NB201.pairs, first[0])})
    trials = []
    for _ in range(3):
        trial = study.ask()
        trials.append(NB201.digits(NB201.encode(suggest_architecture(trial, NB201))))
        study.tell(trial, 0.5)
    assert trials == [first[0], first[1], first[2]]  # the enqueued one, then the next unheld ones
    assert study.get_trials()[0].state == TrialState.COMPLETE
    with pytest.raises(NasplugError, match="needs a scorer"):
        FilteredSampler(filter="dag_box", space=NB201, scored_startup=3)
