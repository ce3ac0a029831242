"""The NB101 and DARTS / NB301 search spaces: digits ↔ cells, validity, batched = per cell, sampling,
filters fitted on a space sample or on any list of cells, and Optuna suggestions of valid cells only."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest

from nasplug import ArchError, ArchGraph, scorers, search_spaces
from nasplug.graph import ArchBatch
from nasplug.optuna import FilteredSampler, arch_to_params, params_to_arch, suggest_architecture
from nasplug.scorers.topology import BoxFilter
from nasplug.search import KeepMask

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("name, size", [("nb101", 2**21 * 3**5), ("nb301", (180 * 7**8) ** 2)])
def test_digits_batches_and_round_trips(name, size):
    space = search_spaces.get(name)
    assert space.size == size and not space.enumerable
    digits = space.sample_digits(400, 0)
    assert space.valid_digits(digits).all()
    archs = [space.from_digits(d) for d in digits]
    batched = space.batch_digits(digits)
    expected = ArchBatch.from_archs(archs)
    np.testing.assert_array_equal(batched.roles, expected.roles)
    np.testing.assert_array_equal(batched.kernel_sizes, expected.kernel_sizes)
    for arch in archs[:100]:
        assert space.decode(space.encode(arch)) == arch
        assert params_to_arch(arch_to_params(arch, space), space) == arch
    indices = space.indices_of(digits)
    np.testing.assert_array_equal(space.digit_matrix(indices), digits)


def test_nb101_validity_is_the_benchmarks_domain(nb101_rows):
    space = search_spaces.get("nb101")
    for row in nb101_rows[::10]:
        arch = ArchGraph.from_nb101(json.loads(row["matrix"]), json.loads(row["ops"]))
        assert arch in space
    rng = np.random.default_rng(1)
    raw = np.floor(rng.random((3000, len(space.radices))) * np.array(space.radices)).astype(int)
    valid = space.valid_digits(raw)
    assert 0.05 < valid.mean() < 0.95  # uniform raw draws: both kinds occur
    for d, ok in zip(raw[:300], valid[:300]):
        try:
            space.from_digits(d)
        except ArchError:
            assert not ok
        else:
            assert ok


def test_darts_space_holds_nb301_genotypes(nb301_rows):
    space = search_spaces.get("darts")
    for row in nb301_rows[::10]:
        geno = {"normal": json.loads(row["normal"]), "reduce": json.loads(row["reduce"])}
        if any(a == b for cell in geno.values() for (_, a), (_, b) in zip(cell[::2], cell[1::2])):
            continue  # a node reading one input twice is a genotype but not a cell of NB301's space
        assert ArchGraph.from_darts(geno) in space
    one_cell = ArchGraph.from_darts(json.loads(nb301_rows[0]["normal"]), cell="normal")
    with pytest.raises(ArchError, match="not one cell"):
        space.encode(one_cell)


def test_filters_fit_on_any_list_of_cells(nb101_rows, nb301_rows):
    """A box fitted on a list uses exactly those cells' (d̄, m̄) ranges, whatever their sizes."""
    cells = [ArchGraph.from_nb101(json.loads(r["matrix"]), json.loads(r["ops"])) for r in nb101_rows[:40]]
    cells += [ArchGraph.parse(s) for s in ("2_21_112", "|nor_conv_3x3~0|+|none~0|skip_connect~1|")]
    box = BoxFilter.fit(cells, fraction=1.0)
    stats = [a.path_stats() for a in cells]
    live = [s for s in stats if s.effective_depth > 0]
    np.testing.assert_allclose(box.depth_range, (min(s.effective_depth for s in live),
                                                 max(s.effective_depth for s in live)), rtol=1e-12)
    np.testing.assert_allclose(box.width_range, (min(s.effective_width for s in live),
                                                 max(s.effective_width for s in live)), rtol=1e-12)
    assert box.keep_many(cells).all()
    top = scorers.get("top_fraction", space=cells, scorer="live_param_cost", keep=0.25)
    cost = scorers.get("live_param_cost").score_many(cells)
    np.testing.assert_array_equal(top.keep_many(cells), cost >= np.quantile(cost, 0.75, method="lower"))
    # the default scorer, rank_ensemble, ranks against the very cells it is fitted on
    ensemble = scorers.get("rank_ensemble", space=cells).score_many(cells)
    default = scorers.get("top_fraction", space=cells, keep=0.25)
    np.testing.assert_array_equal(default.keep_many(cells),
                                  ensemble >= np.quantile(ensemble, 0.75, method="lower") - 1e-12)


@pytest.mark.parametrize("name", ["nb101", "nb301"])
def test_filtered_search_proposes_valid_filtered_cells_only(name):
    space = search_spaces.get(name)
    box = BoxFilter((2.0, 8.0), (1.0, 100.0))
    sampler = FilteredSampler(optuna.samplers.RandomSampler(seed=0), filter=box, space=space, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: suggest_architecture(t, space).path_stats().effective_depth, n_trials=12)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    mask = KeepMask(space, box)
    for t in study.trials:
        arch = params_to_arch(t.params, space)
        assert box.keep(arch) and mask.keep(space.encode_digits(arch))


def test_plain_sampler_prunes_invalid_nb101_draws():
    space = search_spaces.get("nb101")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: suggest_architecture(t, space).path_stats().num_paths, n_trials=30)
    states = [t.state for t in study.trials]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and optuna.trial.TrialState.COMPLETE in states
    digits = [[space.params[j][1].index(t.params[name]) for j, (name, _) in enumerate(space.params)]
              for t in pruned]
    assert not space.valid_digits(np.array(digits)).any()
