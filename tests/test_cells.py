"""NAS-Bench-101 and DARTS / NAS-Bench-301 cells: round trips on the shared samples, the benchmark's
pruning rule on hand-made cases, DARTS genotype text forms, one-line errors per kind of bad encoding,
and the batched layouts against the per-cell ones."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pytest

from nasplug import ArchError, ArchGraph
from nasplug.graph import darts, nb101

IN, OUT, C3, C1, MP = "input", "output", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
OPS7 = [IN, C3, C1, MP, C3, C1, OUT]


def matrix(n, edges):
    m = np.zeros((n, n), dtype=int)
    for a, b in edges:
        m[a, b] = 1
    return m


# ---------------------------------------------------------------------- NB101
def test_nb101_round_trips_on_the_shared_sample(nb101_rows):
    seen_vertices = set()
    for r in nb101_rows:
        raw, ops = json.loads(r["matrix"]), json.loads(r["ops"])
        arch = ArchGraph.from_nb101(raw, ops)
        m, o = arch.to_nb101()
        # the pruned spec: every kept vertex lies on an input→output path of the raw graph
        g = nx.DiGraph([(a, b) for a, b in zip(*np.nonzero(raw))])
        g.add_nodes_from(range(7))
        on_path = {v for p in nx.all_simple_paths(g, 0, 6) for v in p}
        keep = sorted(on_path)
        assert m == np.asarray(raw)[np.ix_(keep, keep)].tolist() and o == [ops[v] for v in keep]
        seen_vertices.add(len(m))
        assert ArchGraph.from_nb101(m, o) == arch                     # spec -> DAG -> spec -> DAG
        assert ArchGraph.parse(str(arch)) == arch                     # JSON text
        assert ArchGraph.parse(arch.to_naslib()) == arch              # NASLib's 56-integer tuple
        assert ArchGraph.parse(str(arch.to_naslib())) == arch
        # the DAG's paths are NB101's paths: one per input→output path of the pruned cell
        assert arch.path_stats().num_paths == len(list(nx.all_simple_paths(g, 0, 6)))
    assert seen_vertices == {2, 3, 4, 5, 6, 7}


def test_nb101_tuple_of_a_7_vertex_cell_is_its_own():
    m = matrix(7, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (0, 2), (1, 6), (0, 6)])
    arch = ArchGraph.from_nb101(m, OPS7)
    expected = tuple(m.ravel()) + (0, 4, 3, 2, 4, 3, 1)  # NASLib: input 0, output 1, maxpool 2, 1x1 3, 3x3 4
    assert arch.to_naslib() == expected


@pytest.mark.parametrize("edges, pruned, ops", [
    # A: input→output only: one 1×1 projection
    ([(0, 6)], [[0, 1], [0, 0]], [IN, OUT]),
    # C: dead-end vertex 2 and isolated 3, 4, 5 are dropped
    ([(0, 1), (1, 6), (0, 2)], [[0, 1, 0], [0, 0, 1], [0, 0, 0]], [IN, C3, OUT]),
    # D: vertex 3 reaches the output but not from the input; 2 neither
    ([(0, 1), (1, 6), (2, 3), (3, 6)], [[0, 1, 0], [0, 0, 1], [0, 0, 0]], [IN, C3, OUT]),
    # E: 13 raw edges, 3 after pruning (raw edge counts do not matter)
    ([(0, 1), (1, 6), (0, 6), (2, 3), (2, 4), (2, 5), (3, 4), (3, 5), (4, 5), (2, 6), (3, 6), (4, 6), (5, 6)],
     [[0, 1, 1], [0, 0, 1], [0, 0, 0]], [IN, C3, OUT]),
    # G: 9 edges, all on paths: unchanged
    ([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (0, 2), (1, 6), (0, 6)], None, OPS7),
])
def test_nb101_pruning_hand_cases(edges, pruned, ops):
    raw = matrix(7, edges)
    m, o = ArchGraph.from_nb101(raw, OPS7).to_nb101()
    assert m == (raw.tolist() if pruned is None else pruned) and o == ops


def test_nb101_input_output_cell_is_one_projection():
    arch = ArchGraph.from_nb101(matrix(7, [(0, 6)]), OPS7)
    assert arch.edges == {(0, 11): arch.op(0, 11)} and arch.op(0, 11).name == C1
    assert arch.path_stats().effective_depth == 1.0


@pytest.mark.parametrize("spec, fragment", [
    ((matrix(7, [(0, 1), (2, 6)]), OPS7), "no input→output path"),
    ((matrix(7, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (0, 2), (0, 3), (0, 4), (0, 6)]), OPS7),
     "10 edges after pruning"),
    ((matrix(8, [(i, i + 1) for i in range(7)]), [IN, C3, C3, C3, C3, C3, C3, OUT]), "8 vertices"),
    ((matrix(7, [(0, 6), (3, 1)]), OPS7), "strictly upper triangular"),
    ((matrix(7, [(0, 6)]), OPS7[:-1]), "6 ops for a 7×7 matrix"),
    ((np.zeros((7, 6), dtype=int), OPS7), "square"),
    ((matrix(7, [(0, 6)]), [IN, "conv5x5", C1, MP, C3, C1, OUT]), "unknown NB101 op 'conv5x5' at vertex 1"),
    ((matrix(7, [(0, 6)]) * 2, OPS7), "must be 0 or 1"),
    ((matrix(7, [(0, 6)]), [C3, C3, C1, MP, C3, C1, OUT]), "must be 'input'"),
])
def test_nb101_bad_specs_are_one_clear_line(spec, fragment):
    with pytest.raises(ArchError) as info:
        ArchGraph.from_nb101(*spec)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_nb101_bad_tuples_and_foreign_dags():
    with pytest.raises(ArchError, match="out of range 0..4"):
        ArchGraph.parse(tuple(matrix(7, [(0, 6)]).ravel()) + (0, 4, 4, 4, 4, 9, 1))
    with pytest.raises(ArchError, match="6 op indices"):
        ArchGraph.parse(tuple(range(50)))
    with pytest.raises(ArchError, match="not an NB101 cell"):
        ArchGraph(12, {(0, 11): "skip_connect"}).to_nb101()
    with pytest.raises(ArchError, match="12 nodes"):
        ArchGraph.parse("2_21_112").to_nb101()
    with pytest.raises(ArchError, match="both 'matrix' and 'ops'"):
        ArchGraph.parse('{"matrix": [[0, 1], [0, 0]]}')


def test_nb101_batch_equals_per_cell_layout(nb101_rows):
    rng = np.random.default_rng(0)
    mats = np.triu(rng.random((3000, 7, 7)) < 0.4, 1)
    names = list(nb101.VERTEX_OPS)
    op_idx = rng.integers(0, 3, size=(3000, 5))
    batch, valid = nb101.batch_arrays(mats, op_idx)
    checked = 0
    for b in range(3000):
        ops = [IN, *(names[i] for i in op_idx[b]), OUT]
        try:
            ArchGraph.from_nb101(mats[b].astype(int), ops)
        except ArchError:
            assert not valid[b] and not batch.roles[b].any()
            continue
        assert valid[b]
        expected = ArchGraph.from_nb101(mats[b].astype(int), ops)
        single = type(batch).from_archs([expected])
        np.testing.assert_array_equal(batch.roles[b], single.roles[0])
        np.testing.assert_array_equal(batch.kernel_sizes[b], single.kernel_sizes[0])
        checked += 1
    assert checked > 500 and (~valid).sum() > 500


# ---------------------------------------------------------------------- DARTS / NB301
DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
            "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
            "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
            "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
            "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")


def test_darts_round_trips_on_the_shared_sample(nb301_rows):
    for r in nb301_rows:
        normal, reduce = json.loads(r["normal"]), json.loads(r["reduce"])
        arch = ArchGraph.from_darts({"normal": normal, "reduce": reduce})
        geno = arch.to_darts()
        assert [list(p) for p in geno.normal] == normal and [list(p) for p in geno.reduce] == reduce
        assert ArchGraph.parse(str(geno)) == arch                            # DARTS's printed form
        assert ArchGraph.parse(darts.format_compact(geno)) == arch            # NASLib's compact form
        assert ArchGraph.parse(str(darts.format_compact(geno))) == arch
        assert ArchGraph.parse(json.dumps({"normal": normal, "reduce": reduce})) == arch
        cell = ArchGraph.from_darts(normal, cell="normal")
        assert cell.to_darts() == [tuple(p) for p in normal] and ArchGraph.parse(str(cell)) == cell


def test_genotype_strings_as_printed_by_darts():
    """Forms printed by DARTS code: ``range(2, 6)`` from model_search.genotype(), lists in
    genotypes.py, and a namedtuple object with the same fields."""
    from collections import namedtuple

    searched = DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)").replace(
        "reduce_concat=[2, 3, 4, 5]", "reduce_concat=range(2, 6)")
    a, b = ArchGraph.parse(DARTS_V2), ArchGraph.parse(searched)
    DartsGenotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
    c = ArchGraph.parse(eval(DARTS_V2, {"Genotype": DartsGenotype}))  # noqa: S307 -- the test's own literal
    assert a == b == c and str(a) == DARTS_V2
    # DARTS_V2's normal cell by hand: node 2 = sep(s0) + sep(s1), node 3 likewise, node 4 = sep(s1) +
    # s0, node 5 = s0 + dil(node 2); every input state is one preprocessing conv deep and a sep_conv two
    # convs, so the 9 paths have depths 3, 3 | 3, 3 | 3, 1 | 1, 4, 4
    normal = ArchGraph.from_darts(DARTS_V2, cell="normal")
    assert normal.path_stats().depth_histogram == (0, 2, 0, 5, 2)


def test_darts_reduction_skip_from_an_input_is_a_factorized_reduction():
    geno = DARTS_V2.replace("('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0)",
                            "('skip_connect', 1), ('max_pool_3x3', 1), ('max_pool_3x3', 0)")
    arch = ArchGraph.parse(geno)
    reduce = ArchGraph.from_darts(geno, cell="reduce")
    # DARTS_V2's reduction cell has skips from node 2 only (stride 1); this one also from input 1
    assert [op.name for op in reduce.edges.values()].count("factorized_reduce") == 1
    assert [op.name for op in arch.edges.values()].count("factorized_reduce") == 1
    assert reduce.to_darts() == arch.to_darts().reduce
    assert ArchGraph.from_darts(geno, cell="normal").to_darts() == arch.to_darts().normal



def test_darts_parallel_edges_stay_apart():
    cell = [("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("skip_connect", 1), ("skip_connect", 0), ("skip_connect", 1)]
    arch = ArchGraph.from_darts(cell, cell="normal")
    assert arch.to_darts() == cell
    # node 2 = sep(s0) + s0 (two branches from one state), node 3 = sep(s1) + sep(s1), nodes 4 and 5 =
    # s0 + s1: depths 3, 1 | 3, 3 | 1, 1 | 1, 1
    assert arch.path_stats().depth_histogram == (0, 5, 0, 3)


@pytest.mark.parametrize("text, fragment", [
    (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), "input 5 of node 5"),
    (DARTS_V2.replace("('sep_conv_3x3', 1), ('sep_conv_3x3', 1)", "('sep_conv_3x3', 3), ('sep_conv_3x3', 1)",
                      1), "input 3 of node 3"),
    (DARTS_V2.replace("'dil_conv_3x3'", "'conv_7x1_1x7'"), "unknown DARTS op 'conv_7x1_1x7'"),
    (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[4, 5]"), "concatenates nodes 2, 3, 4, 5"),
    (DARTS_V2.replace(", ('dil_conv_3x3', 2)]", "]"), "7 (op, input) pairs"),
    ("Genotype(normal=[('sep_conv_3x3', 0)", "malformed genotype"),
    ("Genotype(normal=__import__('os').system('true'), reduce=[])", "malformed genotype"),
    ("((0, 9), (1, 3), (0, 3), (1, 3), (1, 3), (0, 2), (0, 2), (2, 5)), ((0, 0),) * 8", "malformed"),
    ('{"normal": [["sep_conv_3x3", 0]]}', "needs the fields normal and reduce"),
])
def test_bad_genotypes_are_one_clear_line(text, fragment):
    with pytest.raises(ArchError) as info:
        ArchGraph.parse(text)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_bad_compact_op_index():
    compact = (tuple((0, 3) for _ in range(8)), tuple((0, 3) for _ in range(7)) + ((0, 7),))
    with pytest.raises(ArchError, match="op index 7 in pair 7 of the reduce cell"):
        ArchGraph.parse(compact)


def test_darts_batch_equals_per_cell_layout(nb301_rows):
    ops = np.empty((len(nb301_rows), 2, 8), dtype=int)
    inputs = np.empty_like(ops)
    archs = []
    for b, r in enumerate(nb301_rows):
        geno = darts.genotype(json.loads(r["normal"]), json.loads(r["reduce"]))
        archs.append(ArchGraph.from_darts(geno))
        for c, cell in enumerate((geno.normal, geno.reduce)):
            ops[b, c] = [darts.OPS.index(o) for o, _ in cell]
            inputs[b, c] = [i for _, i in cell]
    batch = darts.batch_arrays(ops, inputs)
    expected = type(batch).from_archs(archs)
    np.testing.assert_array_equal(batch.roles, expected.roles)
    np.testing.assert_array_equal(batch.kernel_sizes, expected.kernel_sizes)
    for c, name in enumerate(("normal", "reduce")):
        single = darts.batch_arrays(ops[:, c], inputs[:, c], cell=name)
        expected = type(batch).from_archs([ArchGraph.from_darts(a.to_darts(), cell=name) for a in archs])
        np.testing.assert_array_equal(single.roles, expected.roles)


def test_canonical_keys_of_cells():
    geno = darts.parse_genotype(DARTS_V2)
    swapped = darts.genotype([(o, 1 - i if i < 2 else i) for o, i in geno.normal], geno.reduce)
    # inputs 0 and 1 read different cells in the network: swapping them is another architecture
    assert ArchGraph.from_darts(swapped).canonical_key() != ArchGraph.from_darts(geno).canonical_key()
    # two pairs of one node listed in the other order: the same function
    reordered = list(geno.normal)
    reordered[0], reordered[1] = reordered[1], reordered[0]
    assert ArchGraph.from_darts(darts.genotype(reordered, geno.reduce)).canonical_key() == \
        ArchGraph.from_darts(geno).canonical_key()
    # NB101: isomorphic cells (vertex order swapped) share a key; the op on a vertex matters
    a = ArchGraph.from_nb101(matrix(4, [(0, 1), (0, 2), (1, 3), (2, 3)]), [IN, C3, MP, OUT])
    b = ArchGraph.from_nb101(matrix(4, [(0, 1), (0, 2), (1, 3), (2, 3)]), [IN, MP, C3, OUT])
    c = ArchGraph.from_nb101(matrix(4, [(0, 1), (0, 2), (1, 3), (2, 3)]), [IN, C3, C3, OUT])
    assert a != b and a.canonical_key() == b.canonical_key() != c.canonical_key()
