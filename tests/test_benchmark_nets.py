"""The NAS-Bench-101 and DARTS / NAS-Bench-301 networks: parameter counts against the ``params_m``
recorded in the shared samples (NASLib's counts), FLOPs by hand, forward passes, and the theory
networks of the same cells (concatenating DAG cells)."""

from __future__ import annotations

import json

import pytest
import torch

from nasplug import ArchError, ArchGraph, scorers
from nasplug.models import DAGCell, build_cnn, build_darts, build_mlp, build_nb101, count_parameters
from nasplug.models.measures import count_flops
from nasplug.models.nb101 import vertex_channels

torch.set_num_threads(1)


def nb101_arch(row):
    return ArchGraph.from_nb101(json.loads(row["matrix"]), json.loads(row["ops"]))


def nb301_arch(row):
    return ArchGraph.from_darts({"normal": json.loads(row["normal"]), "reduce": json.loads(row["reduce"])})


def check_counts(rows, make_arch, build):
    with torch.device("meta"):  # shapes only: the count needs no weights
        for row in rows:
            arch = make_arch(row)
            assert count_parameters(build(arch)) == round(float(row["params_m"]) * 1e6), str(arch)


def test_nb101_parameter_counts_match_the_sample(nb101_rows):
    check_counts(nb101_rows[::5], nb101_arch, lambda a: build_nb101(a, init="torch"))


def test_nb301_parameter_counts_match_naslibs_network(nb301_rows):
    """NASLib's May-2022 DARTS graph: C = 32, 8 cells, no auxiliary head, BN without affine
    parameters inside the cell ops (docs/nasbench.md)."""
    check_counts(nb301_rows[::5], nb301_arch, lambda a: build_darts(a, affine=False, init="torch"))


@pytest.mark.slow
def test_all_parameter_counts_match(nb101_rows, nb301_rows):
    check_counts(nb101_rows, nb101_arch, lambda a: build_nb101(a, init="torch"))
    check_counts(nb301_rows, nb301_arch, lambda a: build_darts(a, affine=False, init="torch"))


def test_nb301_training_network_differs_by_the_op_bn_parameters_exactly(nb301_rows):
    """NB301 trained DARTS's evaluation cells, whose op BNs are affine: 2 parameters per channel of
    every BN inside an op — two per sep_conv, one per dil_conv and per factorized-reduction skip."""
    bns = {"sep_conv_3x3": 2, "sep_conv_5x5": 2, "dil_conv_3x3": 1, "dil_conv_5x5": 1, "max_pool_3x3": 0,
           "avg_pool_3x3": 0, "skip_connect": 0}
    for row in nb301_rows[:20]:
        arch = nb301_arch(row)
        geno = arch.to_darts()
        expected = 0
        for c, reduction in zip((32, 32, 64, 64, 64, 128, 128, 128), (0, 0, 1, 0, 0, 1, 0, 0)):
            for op, inp in (geno.reduce if reduction else geno.normal):
                fr = op == "skip_connect" and reduction and inp < 2
                expected += 2 * c * (bns[op] + fr)
        with torch.device("meta"):
            diff = count_parameters(build_darts(arch, init="torch")) - count_parameters(
                build_darts(arch, affine=False, init="torch"))
        assert diff == expected


def test_nb101_flops_by_hand():
    """The input→output cell is one 1×1 projection per cell: MACs at 32², 16², 8² by hand."""
    arch = ArchGraph.from_nb101([[0, 1], [0, 0]], ["input", "output"])
    stem = 32 * 32 * 128 * 3 * 9
    stack1 = 3 * 32 * 32 * 128 * 128
    stack2 = 16 * 16 * (128 * 256 + 2 * 256 * 256)
    stack3 = 8 * 8 * (256 * 512 + 2 * 512 * 512)
    with torch.device("meta"):
        macs = count_flops(build_nb101(arch, init="torch"), (3, 32, 32))
    assert macs == stem + stack1 + stack2 + stack3 + 5120
    assert scorers.get("flops").score(arch) == pytest.approx(macs / 1e6)
    assert scorers.get("num_params").score(arch) == 882_570  # the benchmark's count of this cell


def test_vertex_channels_split():
    # 3 interior vertices feed the output: 128 = 43 + 43 + 42; vertex 1 feeds only 2 → takes 43
    m = [[0, 1, 1, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 0, 1], [0, 0, 0, 0, 1, 1],
         [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]]
    assert vertex_channels(64, 128, m) == [64, 43, 43, 43, 42, 128]


def test_forward_passes_and_errors():
    x = torch.randn(2, 3, 32, 32)
    nb101 = ArchGraph.from_nb101([[0, 1, 1, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
                                 ["input", "conv3x3-bn-relu", "maxpool3x3", "output"])
    assert build_nb101(nb101, stem_channels=8, seed=0)(x).shape == (2, 10)
    geno = ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('dil_conv_5x5', 0), "
            "('max_pool_3x3', 2), ('avg_pool_3x3', 1), ('skip_connect', 3), ('sep_conv_5x5', 4), "
            "('dil_conv_3x3', 0)], normal_concat=[2, 3, 4, 5], reduce=[('skip_connect', 0), "
            "('max_pool_3x3', 1), ('sep_conv_3x3', 2), ('skip_connect', 1), ('avg_pool_3x3', 0), "
            "('dil_conv_5x5', 3), ('skip_connect', 4), ('sep_conv_5x5', 1)], reduce_concat=[2, 3, 4, 5])")
    assert build_darts(geno, C=4, layers=5, num_classes=7, seed=0)(x).shape == (2, 7)
    with pytest.raises(ArchError, match="not an NB101 cell|12 nodes"):
        build_nb101("2_21_112")
    with pytest.raises(ArchError, match="needs a genotype"):
        build_darts(ArchGraph.from_darts(geno, cell="normal"))
    # the theory networks of the same cells: concatenating DAG cells at any width
    for arch in (nb101, ArchGraph.parse(geno)):
        assert build_mlp(arch, 64, 30, 10, seed=0)(torch.randn(3, 64)).shape == (3, 10)
        assert build_cnn(arch, 3, 6, 10, seed=0)(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_dag_cell_concat_stacks_blocks():
    """concat(a, b) of two identity branches of x = x where the blocks come from, block by block."""
    arch = ArchGraph(4, {(0, 1): "skip_connect", (0, 2): "linear", (1, 3): "concat", (2, 3): "concat"})
    from torch import nn

    cell = DAGCell(arch, lambda e, op: nn.Identity() if op.role != "param" else nn.Linear(5, 5, bias=False))
    x = torch.randn(4, 5)
    out = cell(x)
    lin = cell.edge_module((0, 2))(x)
    torch.testing.assert_close(out[:, :3], x[:, :3])  # block 0: 5 // 2 + 1 channels from node 1
    torch.testing.assert_close(out[:, 3:], lin[:, 3:])


def test_train_nb101_and_darts_networks_on_images():
    """A short run of each benchmark's network through train_arch, on random images (tiny widths)."""
    from nasplug.data import ArrayDataset
    from nasplug.train import train_arch

    gen = torch.Generator().manual_seed(0)
    data = ArrayDataset("fake", torch.randn(16, 3, 16, 16, generator=gen), torch.arange(16) % 10,
                        torch.randn(8, 3, 16, 16, generator=gen), torch.arange(8) % 10, 10)
    nb101 = ArchGraph.from_nb101([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
    darts_v2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
                "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
                "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
                "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
                "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
    for arch, model, width in ((nb101, "nb101", 8), (darts_v2, "darts", 4)):
        result = train_arch(arch, data, model=model, width=width, epochs=1, batch_size=8, progress=False,
                            device="cpu", augment=False)
        assert result.ok and result.info["model"] == model and result.lr > 0
