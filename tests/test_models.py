"""Torch builders: NB201 parameter counts (published), shapes, the theory network's forward pass by
hand, init variances measured on the drawn weights, and norm preservation against docs/theory.md §4."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasplug.graph import ArchGraph
from nasplug.models import (
    DAGCell,
    build_cnn,
    build_mlp,
    build_nb201,
    count_parameters,
    node_sq_norms,
    weight_layer,
)
from nasplug.theory.hparams import init_gains, readout_gain

torch.set_num_threads(1)


@pytest.mark.parametrize("naslib, published", [
    ((4, 3, 3, 3, 2, 3), 428_346),
    ((4, 1, 0, 0, 0, 3), 101_306),
    ((3, 3, 2, 1, 3, 2), 643_386),
])
def test_nb201_parameter_counts_match_the_benchmark(naslib, published):
    assert count_parameters(build_nb201(ArchGraph.parse(naslib), 10)) == published


def test_forward_shapes():
    x_img = torch.randn(4, 3, 32, 32)
    assert build_nb201((3, 3, 2, 1, 3, 2), 100)(x_img).shape == (4, 100)
    assert build_cnn("2_21_112", 3, 8, 7)(torch.randn(4, 3, 8, 8)).shape == (4, 7)
    assert build_mlp("2_21_112", 64, 32, 10)(torch.randn(4, 1, 8, 8)).shape == (4, 10)  # flattens
    # an NB201 cell on a CNN-DAG: conv/pool ops keep the spatial size
    assert build_cnn((4, 3, 3, 3, 2, 3), 1, 8, 10)(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_cell_without_path_computes_zero():
    cell = build_nb201("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", 10)
    x = torch.randn(2, 3, 32, 32)
    out = cell(x)
    assert torch.all(out == cell.classifier.bias)  # the body contributes exactly nothing
    # the dead conv edge is still instantiated, as in the benchmark
    assert count_parameters(cell) > count_parameters(build_nb201((1,) * 6, 10))


def test_mlp_without_bias_is_the_theory_network():
    """z_0 = W_0 x, z_t = Σ_skip z_a + Σ_param W_st φ(z_s), y = W_out φ(z_H), computed by hand."""
    arch = ArchGraph.parse("2_12_112")
    net = build_mlp(arch, 5, 16, 3, bias=False, bn=False, seed=1)
    x = torch.randn(6, 5)
    relu = torch.relu
    z = {0: x @ net.stem[1].weight.T}
    for t in range(1, arch.n_nodes):
        z[t] = torch.zeros(6, 16)
        for (s, tt), op in arch.edges.items():
            if tt != t:
                continue
            if op.is_parameterized:
                z[t] = z[t] + relu(z[s]) @ net.cell.edge_module((s, t))[1].weight.T
            else:
                z[t] = z[t] + z[s]
    expected = relu(z[3]) @ net.head[1].weight.T
    assert torch.allclose(net(x), expected, atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules())


def _empirical_var(layer) -> float:
    return float(layer.weight.detach().double().var())


def test_init_variances_equal_gain_over_fan_in():
    """Complete 5-node linear DAG: node t has t in-edges, so the target rule gives 2/t [C24 App. A];
    measured on the drawn weights (width 512: 262k samples, ~0.3 % sampling error)."""
    arch = ArchGraph.parse("2_22_222_2222")
    width = 512
    net = build_mlp(arch, 64, width, 10, seed=0)
    gains = init_gains(arch, "target")
    for (s, t) in arch.edges:
        layer = weight_layer(net.cell.edge_module((s, t)))
        assert gains[(s, t)] == pytest.approx(2.0 / t)  # independent hand value
        assert _empirical_var(layer) == pytest.approx(2.0 / t / width, rel=0.03)
        assert torch.all(layer.bias == 0)
    assert _empirical_var(net.head[1]) == pytest.approx(readout_gain(arch) / width**2, rel=0.1)
    assert readout_gain(arch) == pytest.approx(2.0 / 4)
    he = build_mlp(arch, 64, width, 10, init="he", seed=0)
    for edge in arch.edges:
        assert _empirical_var(weight_layer(he.cell.edge_module(edge))) == pytest.approx(2.0 / width, rel=0.03)


def test_init_source_rule_and_conv_fan_in():
    # source rule: edge (1, 3) of 2_22_222 has source in-degree 1, edge (2, 3) source in-degree 2
    arch = ArchGraph.parse("2_22_222")
    net = build_cnn(arch, 3, 32, 10, init="arch_aware_source", seed=0)
    fan = 32 * 3 * 3
    for edge, d_src in {(0, 3): 1, (1, 3): 1, (2, 3): 2, (0, 2): 1, (1, 2): 1}.items():
        layer = weight_layer(net.cell.edge_module(edge))
        assert _empirical_var(layer) == pytest.approx(2.0 / d_src / fan, rel=0.05)
    # NB201 cell: conv1x1 edges (fan_in = C) and conv3x3 edges (C·9), target rule, first stage C=16
    cell_arch = ArchGraph.parse((3, 3, 2, 1, 3, 2))
    nb = build_nb201(cell_arch, 10, C=16, seed=0)
    degrees = {1: 1, 2: 1, 3: 3}  # node 2 only receives (0, 2): its (1, 2) edge is 'none'
    gains = init_gains(cell_arch)
    variances = {e: [] for e in cell_arch.edges}
    for cell in [m for m in nb.cells if isinstance(m, DAGCell)][:5]:  # pool the 5 stage-1 cells
        for edge in cell_arch.edges:
            variances[edge].append(weight_layer(cell.edge_module(edge)).weight.detach().double().flatten())
    for (s, t), op in cell_arch.edges.items():
        assert gains[(s, t)] == pytest.approx(2.0 / degrees[t])
        var = float(torch.cat(variances[(s, t)]).var())
        assert var == pytest.approx(2.0 / degrees[t] / (16 * op.kernel_size**2), rel=0.1)


def test_norm_preserved_on_linear_dag_and_grows_with_he():
    """docs/theory.md §4 on the complete 6-node linear DAG: q_t = q_0 under the arch-aware init, and
    q_t = Σ_{s<t} q_s = 2^(t-1) q_0 under He (Monte-Carlo, width 512)."""
    arch = ArchGraph(6, {(s, t): "linear" for t in range(1, 6) for s in range(t)})
    x = torch.randn(128, 64, generator=torch.Generator().manual_seed(0))
    aware = node_sq_norms(build_mlp(arch, 64, 512, 10, bias=False, seed=0), x)
    he = node_sq_norms(build_mlp(arch, 64, 512, 10, init="he", bias=False, seed=0), x)
    q0 = aware[0]
    # stem: Var 1/d on inputs with ‖x‖²/d ≈ 1 (finite-width fluctuation of W_0ᵀW_0 allowed for)
    assert q0 == pytest.approx(1.0, rel=0.3)
    band = max(aware.values()) / min(aware.values())
    assert band < 1.2
    for t in range(1, 6):
        assert he[t] / he[0] == pytest.approx(2 ** (t - 1), rel=0.2)
    assert max(he.values()) / min(he.values()) > 10


def test_seeded_builds_are_reproducible():
    a = build_mlp("2_21_112", 64, 32, 10, seed=3)
    b = build_mlp("2_21_112", 64, 32, 10, seed=3)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_unknown_init_and_non_nb201_op_are_user_errors():
    from nasplug.errors import ArchError, NasplugError

    with pytest.raises(NasplugError, match="unknown init"):
        build_mlp("2", 4, 4, 2, init="xavier")
    with pytest.raises(ArchError, match="not a NAS-Bench-201 op"):
        build_nb201("2_21_112")


def test_mlp_parameter_count_by_hand():
    # 3 linear edges of 2_21_112 ... counted from the code: (0,1) lin, (0,2) lin, (1,2) skip,
    # (0,3) skip, (1,3) skip, (2,3) lin -> 3 linear edges
    arch = ArchGraph.parse("2_21_112")
    n_lin = sum(op.is_parameterized for op in arch.edges.values())
    assert n_lin == 3
    w = 32
    expected = (64 * w + w) + n_lin * (w * w + w) + (w * 10 + 10)
    assert count_parameters(build_mlp(arch, 64, w, 10)) == expected
    assert np.isclose(count_parameters(build_mlp(arch, 64, w, 10, bias=False)),
                      64 * w + n_lin * w * w + w * 10)
