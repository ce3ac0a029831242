"""Topology scorers against independent truths: the built network's FLOPs, hand counts, the box."""

from __future__ import annotations

import numpy as np
import pytest

from nasplug import scorers
from nasplug.search_spaces import NB201Space


def test_live_param_cost_is_affine_in_the_built_nb201_networks_flops():
    """NB201 stages share C²·H·W, so the macro net's MACs = a + b · Σ_live k² exactly."""
    space = NB201Space()
    cells = [space.decode(int(i)) for i in np.random.default_rng(2).choice(space.size, 8, replace=False)]
    cells.append(space.decode(0))  # all-none cell: cost 0
    cost = scorers.get("live_param_cost").score_many(cells)
    flops = scorers.get("flops").score_many(cells)
    distinct = np.unique(cost, return_index=True)[1]
    assert len(distinct) >= 3
    slope, intercept = np.polyfit(cost[distinct], flops[distinct], 1)
    assert slope > 0
    assert np.allclose(flops, intercept + slope * cost, rtol=1e-6, atol=1e-9)


def test_live_param_cost_by_hand():
    cost = scorers.get("live_param_cost")
    # conv3x3 0->1 feeds nothing alive (node 1 has no way to the output): only the 1x1 on 0->3 counts
    assert cost.score("|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|") == 1
    assert cost.score("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_1x1~2|") == 19
    assert cost.score("2_22_222") == 6 and cost.score("0_00_000") == 0


@pytest.mark.parametrize("name, kept", [("dag_box", 6_256), ("dag_box_authors", 8_226)])
def test_published_box_counts_on_nb201(name, kept):
    # [C22 §5.3] / docs/theory.md §2: 6,256 (40.0 %) with the fitted box, 52.6 % with the authors' fixed box
    keep = scorers.get(name).keep_many(NB201Space().batch())
    assert int(keep.sum()) == kept


def test_fitted_box_bounds_on_nb201():
    box = scorers.get("dag_box")
    # docs/theory.md §2: centre (1.625, 2.1667), half-radius (0.6875, 0.9167)
    assert box.depth_range == pytest.approx((1.625 - 0.6875, 1.625 + 0.6875))
    assert box.width_range == pytest.approx((13 / 6 - 11 / 12, 13 / 6 + 11 / 12))


def test_box_rejects_cells_without_path_and_bad_fraction():
    from nasplug.errors import NasplugError

    assert not scorers.get("dag_box_authors").keep("0_00_000")
    with pytest.raises(NasplugError, match="fraction"):
        scorers.get("dag_box", fraction=0)


def test_top_fraction_keeps_the_best_scored_cells():
    space = NB201Space()
    batch = space.batch()
    cost = scorers.get("live_param_cost").score_many(batch)
    keep = scorers.get("top_fraction", scorer="live_param_cost", keep=0.1).keep_many(batch)
    # at least the requested share (ties at the threshold are kept), and exactly a score threshold
    assert 0.1 <= keep.mean() < 0.2
    assert cost[keep].min() > cost[~keep].max()
    # a lower-is-better scorer is oriented: keep the cells with the smallest values
    low = scorers.get("top_fraction", scorer="nngp_convergence_factor", keep=0.25).keep_many(batch)
    factor = scorers.get("nngp_convergence_factor").score_many(batch)
    assert factor[low].max() <= factor[~low].min()


def test_top_fraction_bad_parameters():
    from nasplug.errors import NasplugError

    with pytest.raises(NasplugError, match="fraction"):
        scorers.get("top_fraction", keep=1.5)
    with pytest.raises(NasplugError, match="too slow"):
        scorers.get("top_fraction", scorer="naswot")
    with pytest.raises(NasplugError, match="unknown scorer"):
        scorers.get("top_fraction", scorer="nope")
