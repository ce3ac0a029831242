"""Architecture-aware init gains and maximal-LR multipliers [C24] against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nasplug import ArchError, ArchGraph, scorers
from nasplug.graph import ArchBatch
from nasplug.search_spaces import NB201Space
from nasplug.theory.hparams import (
    init_gains,
    live_in_degrees,
    lr_multiplier,
    lr_multipliers,
    readout_gain,
    weighted_depth_histograms,
)


@pytest.mark.parametrize(
    "code, expected",
    # relative to the one-hidden-layer base with the authors' convention (depth = #param + 3, base 3)
    [("2_02_002", 0.3536), ("1_01_222", 0.375), ("2_21_112", 0.2814)],
)
def test_lr_worked_examples(code, expected):
    assert lr_multiplier(code) == pytest.approx(expected, abs=5e-5)


def test_lr_formula_by_hand():
    # 2_21_112 has path depths 0, 1, 2, 2; with offset 1: L = 1, 2, 3, 3 -> Σ L³ = 1 + 8 + 27 + 27
    assert lr_multiplier("2_21_112", offset=1, base=[2]) == pytest.approx(math.sqrt(8 / 63))
    # a base given as an architecture uses the same offset: base 2 (one linear edge) -> L_b = 1 + 1
    assert lr_multiplier("2_21_112", offset=1, base="2") == pytest.approx(math.sqrt(8 / 63))
    # CNN rule: the 1/q factor with q = the largest live kernel (3 here), base kernel 1
    conv3 = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|none~0|none~1|skip_connect~2|"
    assert lr_multiplier(conv3, kernel_scaling=True) == pytest.approx(math.sqrt(27 / 125) / 3)


def test_cells_without_path_are_rejected_not_crashed():
    with pytest.raises(ArchError, match="no input→output path"):
        lr_multiplier("0_00_000")
    values = scorers.get("max_lr_multiplier").score_many(["0_00_000", "2_02_002"])
    assert math.isnan(values[0]) and values[1] == pytest.approx(0.3536, abs=5e-5)
    with pytest.raises(ArchError, match="offset"):
        lr_multiplier("2", offset=-1)


def test_batched_equals_scalar_over_nb201():
    space = NB201Space()
    idx = np.random.default_rng(0).choice(space.size, 200, replace=False)
    batched = lr_multipliers(space.batch(idx))
    for value, i in zip(batched, idx):
        arch = space.decode(int(i))
        if arch.path_stats().num_paths:
            assert value == pytest.approx(lr_multiplier(arch))
        else:
            assert math.isnan(value)


def test_init_gains_target_and_source_rules():
    arch = ArchGraph.parse("2_21_112")
    # node 1: in-degree 1; node 2: in from 0 (linear) and 1 (skip) -> 2; node 3: 3 in-edges
    assert live_in_degrees(arch) == [0, 1, 2, 3]
    assert init_gains(arch) == {(0, 1): 2.0, (0, 2): 1.0, (2, 3): pytest.approx(2 / 3)}
    assert init_gains(arch, "source") == {(0, 1): 2.0, (0, 2): 2.0, (2, 3): 1.0}
    assert init_gains(arch, "he") == {(0, 1): 2.0, (0, 2): 2.0, (2, 3): 2.0}
    assert readout_gain(arch) == pytest.approx(2 / 3)
    with pytest.raises(ArchError, match="init rule"):
        init_gains(arch, "xavier")


def test_dead_sources_do_not_dilute_the_init():
    # node 1 only receives a zero edge, so the conv 1->2 carries no signal: node 2 has one live input
    arch = ArchGraph.parse("|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|")
    assert init_gains(arch)[(0, 2)] == 2.0


# ---------------------------------------------------------------- variance-weighted path sum (option)
def test_weighted_paths_by_hand():
    # 2_22: paths 0->2 (d=1) and 0->1->2 (d=2); node 2 has d_in = 2, so each carries weight 1/2.
    # offset 3: Σ w L³ = (64 + 125) / 2 = 94.5 against the base chain's 27
    assert lr_multiplier("2_22", path_weights="target") == pytest.approx(math.sqrt(27 / 94.5))
    assert lr_multiplier("2_22") == pytest.approx(math.sqrt(27 / 189))  # unweighted [C24]
    # 2_21_112: d_in = [0, 1, 2, 3]. Paths: skip 0->3 (d=0, w=1); 0->1->3 (d=1, w=1);
    # 0->2->3 (d=2, w=1/2·1/3); 0->1->2->3 (d=2, w=1·1/3) -> weights {0: 1, 1: 1, 2: 1/2}
    hist = weighted_depth_histograms(ArchBatch.from_archs([ArchGraph.parse("2_21_112")]))[0]
    assert hist[:3] == pytest.approx([1.0, 1.0, 0.5]) and not hist[3:].any()
    assert lr_multiplier("2_21_112", path_weights="target") == pytest.approx(math.sqrt(27 / 153.5))
    # source rule: edge (2,3) divides by d_in(2) = 2, edge (0,2) by d_in(0) = 1 -> {0: 1, 1: 1, 2: 1}
    assert lr_multiplier("2_21_112", path_weights="source") == pytest.approx(math.sqrt(27 / 216))


def test_weighted_paths_agree_with_c24_on_chains_and_sum_to_one_without_skips():
    for chain in ("2", "2_02", "2_02_002", "2_02_002_0002"):
        assert lr_multiplier(chain, path_weights="target") == pytest.approx(lr_multiplier(chain))
    # all-linear DAGs: the weights are the variance shares of a norm-preserving init, Σ w_p = 1
    for code in ("2_22_222_2222", "2_20_022_2002", "0_20_222_0000_02222"):
        hist = weighted_depth_histograms(ArchBatch.from_archs([ArchGraph.parse(code)]))[0]
        assert hist.sum() == pytest.approx(1.0)
    # a base given as an architecture gets the same weighting: the base itself has multiplier 1
    assert lr_multiplier("2_22_222", base="2_22_222", path_weights="target") == pytest.approx(1.0)


def test_weighted_paths_batched_equals_scalar_and_rejects_bad_input():
    space = NB201Space()
    idx = np.random.default_rng(1).choice(space.size, 100, replace=False)
    batched = lr_multipliers(space.batch(idx), path_weights="target")
    for value, i in zip(batched, idx):
        arch = space.decode(int(i))
        if arch.path_stats().num_paths:
            assert value == pytest.approx(lr_multiplier(arch, path_weights="target"))
        else:
            assert math.isnan(value)
    with pytest.raises(ArchError, match="path weighting"):
        lr_multiplier("2_02", path_weights="he")
    with pytest.raises(ArchError, match="no input→output path"):
        lr_multiplier("0_00_000", path_weights="target")
