"""Baseline proxies against independent truths: NB201's published parameter counts, FLOPs counted
by hand, synflow as the product-of-|weights| path sum, NASWOT's kernel determinant by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nasplug import scorers
from nasplug.graph import ArchGraph
from nasplug.models import build_mlp
from nasplug.models.measures import naswot_score, synflow_score

torch.set_num_threads(1)


@pytest.mark.parametrize("naslib, published", [
    ((4, 3, 3, 3, 2, 3), 428_346),
    ((4, 1, 0, 0, 0, 3), 101_306),
    ((3, 3, 2, 1, 3, 2), 643_386),
])
def test_num_params_scorer_matches_nb201(naslib, published):
    assert scorers.get("num_params").score(ArchGraph.parse(naslib)) == published


def test_num_params_on_an_arch_batch_recovers_nb201_ops():
    from nasplug import search_spaces

    space = search_spaces.get("nb201")
    idx = [space.encode(ArchGraph.parse(t)) for t in [(4, 3, 3, 3, 2, 3), (3, 3, 2, 1, 3, 2)]]
    assert scorers.get("num_params").score_many(space.batch(idx)).tolist() == [428_346, 643_386]


def test_flops_by_hand():
    # MLP-DAG (width 256, 64 inputs, 10 outputs): one MAC per weight
    arch = ArchGraph.parse("2_21_112")
    assert scorers.get("flops").score(arch) == pytest.approx((64 * 256 + 3 * 256 * 256 + 256 * 10) / 1e6)
    # NB201 cell without any op: stem + two reduction blocks + classifier, on 3×32×32
    none = ArchGraph.parse((1, 1, 1, 1, 1, 1))
    macs = (16 * 32 * 32 * 3 * 9                                          # stem
            + 32 * 16 * 16 * 16 * 9 + 32 * 16 * 16 * 32 * 9 + 32 * 16 * 16 * 16   # block 16->32
            + 64 * 8 * 8 * 32 * 9 + 64 * 8 * 8 * 64 * 9 + 64 * 8 * 8 * 32        # block 32->64
            + 64 * 10)
    assert scorers.get("flops").score(none) == pytest.approx(macs / 1e6)
    # each conv 3x3 edge of the first stage adds 16·16·9 MACs per pixel of 32×32
    one = ArchGraph.parse((1, 1, 2, 1, 1, 1))  # only edge (0, 3) = conv3x3
    per_cell = [16 * 32 * 32 * 16 * 9, 32 * 16 * 16 * 32 * 9, 64 * 8 * 8 * 64 * 9]
    assert scorers.get("flops").score(one) * 1e6 == pytest.approx(macs + 5 * sum(per_cell))


def test_synflow_of_a_linear_chain_is_layers_times_path_sum():
    """With |W| and a ones input, R = 1ᵀ|W_L|…|W_1|1 (sum over paths of |weight| products), and
    Σ θ ∂R/∂θ = L·R because R is linear in every layer's weights."""
    torch.manual_seed(0)
    chain = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 5, bias=False),
                          nn.ReLU(), nn.Linear(5, 2, bias=False))
    ws = [np.abs(m.weight.detach().numpy().astype(np.float64)) for m in chain if isinstance(m, nn.Linear)]
    path_sum = np.ones(2) @ ws[2] @ ws[1] @ ws[0] @ np.ones(3)
    assert synflow_score(chain, (3,)) == pytest.approx(3 * path_sum, rel=1e-12)
    # the same on the theory network of a 1-edge DAG: stem, edge, readout = 3 layers
    net = build_mlp("2", 6, 8, 3, bias=False, init="he", seed=0)
    ws = [np.abs(w.detach().numpy().astype(np.float64))
          for w in (net.stem[1].weight, net.cell.edge_module((0, 1))[1].weight, net.head[1].weight)]
    path_sum = np.ones(3) @ ws[2] @ ws[1] @ ws[0] @ np.ones(6)
    assert synflow_score(net, (6,)) == pytest.approx(3 * path_sum, rel=1e-10)


def _threshold_net(thresholds, weights=None):
    """x ↦ ReLU(w_j x − θ_j): unit j is active iff w_j x > θ_j, so patterns are known by hand."""
    k = len(thresholds)
    lin = nn.Linear(1, k)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(weights or [1.0] * k).view(k, 1))
        lin.bias.copy_(-torch.tensor(thresholds, dtype=torch.float32))
    return nn.Sequential(lin, nn.ReLU())


def test_naswot_kernel_by_hand():
    # thresholds 0.5, 1.5, 2.5 and inputs 0..3: patterns 000, 100, 110, 111
    net = _threshold_net([0.5, 1.5, 2.5])
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    codes = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]])
    hamming = np.abs(codes[:, None] - codes[None]).sum(-1)
    expected = math.log(np.linalg.det(3 - hamming))
    assert naswot_score(net, x) == pytest.approx(expected, rel=1e-9)


def test_naswot_is_larger_when_patterns_differ_more():
    x = torch.tensor([[-1.0], [1.0]])
    # A: only one of three units separates the inputs (Hamming 1) -> det = 9 - 4 = 5
    similar = _threshold_net([0.0, -5.0, -5.0])
    # B: every unit separates them (Hamming 3) -> det = 9 - 0 = 9
    different = _threshold_net([0.0, 0.0, 0.0], weights=[1.0, 2.0, 3.0])
    a, b = naswot_score(similar, x), naswot_score(different, x)
    assert a == pytest.approx(math.log(5)) and b == pytest.approx(math.log(9))
    assert b > a
    # identical patterns make the kernel singular
    assert naswot_score(_threshold_net([-5.0, -5.0, -5.0]), x) == -math.inf


@pytest.mark.parametrize("name", ["naswot", "synflow", "flops", "num_params"])
def test_proxies_are_registered_deterministic_and_finite(name):
    scorer = scorers.get(name)
    cells = [ArchGraph.parse((4, 1, 0, 0, 0, 3)), ArchGraph.parse("2_21_112")]
    first = scorer.score_many(cells)
    assert np.all(np.isfinite(first))
    assert np.array_equal(first, scorer.score_many(cells))
    state = torch.get_rng_state()
    scorer.score(cells[1])
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is left alone
