"""nasplug.search.pareto and .objectives: fronts and hypervolumes against hand-computed values,
brute-force dominance and exact grid counting; the --objectives grammar and its one-line errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nasplug import search_spaces
from nasplug.errors import NasplugError
from nasplug.search.costs import Network
from nasplug.search.objectives import ObjectiveSet, format_objectives, parse_objectives
from nasplug.search.pareto import Bounds, hypervolume, hypervolume_history, pareto_mask

MAX_MIN = ("maximize", "minimize")


def brute_force_front(values: np.ndarray, directions) -> np.ndarray:
    """Every pair compared: a point is on the front when no other point dominates it."""
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    loss = values * sign
    n = len(loss)
    out = np.ones(n, dtype=bool)
    for i, j in itertools.product(range(n), range(n)):
        if i != j and np.all(loss[j] <= loss[i]) and np.any(loss[j] < loss[i]):
            out[i] = False
    return out & np.isfinite(values).all(axis=1)


def test_hand_computed_front():
    #             accuracy  params
    points = np.array([[90.0, 100.0],   # A  front
                       [80.0, 50.0],    # B  front
                       [85.0, 120.0],   # C  dominated by A (less accurate, costlier)
                       [80.0, 60.0],    # D  dominated by B (as accurate, costlier)
                       [95.0, 300.0],   # E  front (most accurate)
                       [95.0, 300.0],   # F  equal to E: neither dominates, both kept
                       [np.nan, 10.0]])  # G  failed: never on the front
    assert pareto_mask(points, MAX_MIN).tolist() == [True, True, False, False, True, True, False]


@pytest.mark.parametrize("directions", [MAX_MIN, ("minimize", "minimize", "maximize")])
def test_front_equals_brute_force(directions):
    rng = np.random.default_rng(0)
    for _ in range(20):
        values = rng.integers(0, 6, size=(40, len(directions))).astype(float)  # many ties
        assert (pareto_mask(values, directions) == brute_force_front(values, directions)).all()


def test_hypervolume_hand_computed_2d():
    bounds = Bounds(ideal=(100.0, 0.0), nadir=(0.0, 100.0), directions=MAX_MIN)
    assert hypervolume(np.array([[50.0, 50.0]]), bounds) == pytest.approx(0.25)
    # two boxes [0.5,1]x[0.5,1] and [0.2,1]x[0.8,1]: 0.25 + 0.16 - 0.10 overlap
    assert hypervolume(np.array([[50.0, 50.0], [80.0, 80.0]]), bounds) == pytest.approx(0.31)
    # dominated, beyond-the-nadir and failed points add nothing
    more = np.array([[50.0, 50.0], [80.0, 80.0], [40.0, 60.0], [90.0, 150.0], [np.nan, 0.0]])
    assert hypervolume(more, bounds) == pytest.approx(0.31)
    assert hypervolume(np.empty((0, 2)), bounds) == 0.0
    assert hypervolume(np.array([[100.0, 0.0]]), bounds) == pytest.approx(1.0)


def test_hypervolume_equals_exact_grid_counting_in_3d():
    # Losses on a 10-step grid: the dominated volume is exactly the number of dominated grid cells.
    rng = np.random.default_rng(1)
    directions = ("minimize",) * 3
    bounds = Bounds((0.0, 0.0, 0.0), (10.0, 10.0, 10.0), directions)
    centres = np.stack(np.meshgrid(*[np.arange(10) + 0.5] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    for _ in range(5):
        points = rng.integers(0, 10, size=(12, 3)).astype(float)
        dominated = (points[None, :, :] <= centres[:, None, :]).all(axis=2).any(axis=1)
        assert hypervolume(points, bounds) == pytest.approx(dominated.sum() / 1000)


def test_hypervolume_history_is_the_hypervolume_of_every_prefix():
    rng = np.random.default_rng(2)
    values = np.column_stack([rng.uniform(50, 95, 60), rng.uniform(1e5, 1e6, 60)])
    values[7] = np.nan
    bounds = Bounds.of(values, MAX_MIN)
    history = hypervolume_history(values, bounds)
    assert history == pytest.approx([hypervolume(values[: n + 1], bounds) for n in range(len(values))])
    assert (np.diff(history) >= 0).all()


def test_bounds_and_normalization():
    values = np.array([[90.0, 10.0], [70.0, 30.0], [np.nan, 0.0]])
    bounds = Bounds.of(values, MAX_MIN)
    assert bounds.ideal == (90.0, 10.0) and bounds.nadir == (70.0, 30.0)
    assert bounds.normalize(values[:2]).tolist() == [[0.0, 0.0], [1.0, 1.0]]
    flat = Bounds((5.0, 1.0), (5.0, 1.0), MAX_MIN)  # one value only: scaled by 1, no division by 0
    assert flat.normalize(np.array([[5.0, 1.0]])).tolist() == [[0.0, 0.0]]
    with pytest.raises(NasplugError, match="no finite"):
        Bounds.of(np.array([[np.nan, 1.0]]), MAX_MIN)
    with pytest.raises(NasplugError, match="direction"):
        pareto_mask(values, ("maximize", "lower"))


# ---------------------------------------------------------------------- --objectives
@pytest.mark.parametrize("spec, expected", [
    ("accuracy,params", "accuracy:maximize,params:minimize"),
    (" Accuracy:max , latency:min", "accuracy:maximize,latency:minimize"),
    ("flops,accuracy:maximize,params", "flops:minimize,accuracy:maximize,params:minimize"),
    (["accuracy", "params:minimize"], "accuracy:maximize,params:minimize"),
])
def test_objectives_grammar(spec, expected):
    assert format_objectives(parse_objectives(spec)) == expected


@pytest.mark.parametrize("spec, message", [
    ("accuracy,parms", "unknown objective 'parms'; choose from accuracy, params, flops, latency"),
    ("accuracy,,params", "empty objective"),
    ("params,flops", "must include accuracy"),
    ("accuracy", "needs a cost next to accuracy"),
    ("accuracy:min,params", "accuracy is always maximized"),
    ("accuracy,params:max", "params is always minimized"),
    ("accuracy,params:low", "must be max or min"),
    ("accuracy,params,params", "'params' is given twice"),
])
def test_objectives_errors_name_the_mistake(spec, message):
    with pytest.raises(NasplugError, match=message) as err:
        parse_objectives(spec)
    assert "\n" not in str(err.value)


def test_objective_vectors_and_whole_space():
    space = search_spaces.get("nb201")
    network = Network.for_dataset("nb201", "cifar10")
    objectives = ObjectiveSet("flops,accuracy,params", network)
    arch = space.decode(1234)
    params, flops = network.costs(arch)
    assert objectives.vector(arch, 91.5) == (flops, 91.5, params)
    assert objectives.accuracy_index == 1 and objectives.directions == ("minimize", "maximize", "minimize")
    accuracy = np.linspace(10, 90, space.size)
    vectors = objectives.space_vectors(space, accuracy)
    assert vectors[1234].tolist() == [flops, accuracy[1234], params]
    with pytest.raises(NasplugError, match="latency"):
        ObjectiveSet("accuracy,latency", network).space_vectors(space, accuracy)
    # Without a true front: accuracy 100 → 0 %, parameters over the whole space.
    bounds = ObjectiveSet("accuracy,params", network).bounds(space, np.array([[50.0, 2e5]]))
    costs = network.space_costs(space)[:, 0]
    assert bounds.ideal == (100.0, costs.min()) and bounds.nadir == (0.0, costs.max())
