"""ArchGraph: codecs, validation, canonical keys and path statistics against independent truths."""

from __future__ import annotations

import itertools
import pickle
from collections import defaultdict

import networkx as nx
import numpy as np
import pytest

from nasplug import ArchError, ArchGraph
from nasplug.graph import ArchBatch, depth_histograms, path_stats_arrays
from nasplug.search_spaces import DAGSpace, NB201Space


# ---------------------------------------------------------------- worked examples [docs/theory.md §2]
@pytest.mark.parametrize(
    "code, P, d_bar, m_bar",
    [("2_02_002", 1, 3.0, 1 / 3), ("1_01_222", 3, 1.0, 3.0), ("2_21_112", 4, 1.25, 2.4)],
)
def test_worked_examples(code, P, d_bar, m_bar):
    stats = ArchGraph.parse(code).path_stats()
    assert stats.num_paths == P
    assert stats.effective_depth == pytest.approx(d_bar)
    assert stats.effective_width == pytest.approx(m_bar)


def test_no_path_cell():
    stats = ArchGraph.parse("0_00_000").path_stats()
    assert (stats.num_paths, stats.effective_depth, stats.effective_width, stats.max_depth) == (0, 0, 0, -1)


# ---------------------------------------------------------------- DP vs brute force
def brute_force_depths(arch: ArchGraph) -> list[int]:
    """Enumerate every input→output path with networkx and count its parameterized edges."""
    g = arch.graph
    return [
        sum(arch.op(s, t).is_parameterized for s, t in zip(p, p[1:]))
        for p in nx.all_simple_paths(g, 0, arch.output)
    ]


@pytest.mark.parametrize("n_nodes", [2, 3, 4, 5, 6, 7])
def test_path_stats_match_enumeration_on_random_dags(n_nodes):
    space = DAGSpace(n_nodes)
    rng = np.random.default_rng(n_nodes)
    for _ in range(60):
        arch = space.sample(rng)
        depths = brute_force_depths(arch)
        stats = arch.path_stats()
        assert stats.num_paths == len(depths)
        hist = np.bincount(depths) if depths else np.zeros(0, int)
        assert list(stats.depth_histogram) == list(hist)
        assert stats.sum_depth_cubed == sum(d**3 for d in depths)
        if depths:
            mean = sum(depths) / len(depths)
            assert stats.effective_depth == pytest.approx(mean)
            width = sum(d > 0 for d in depths) / mean if mean else 0.0
            assert stats.effective_width == pytest.approx(width)
            assert stats.max_depth == max(depths)


def test_nb201_path_stats_match_enumeration():
    # pooling and skips add no depth; convs add one
    rng = np.random.default_rng(0)
    for _ in range(200):
        arch = NB201Space().sample(rng)
        assert arch.path_stats().num_paths == len(brute_force_depths(arch))


def test_complete_64_node_dag_is_exact_without_enumerating_paths():
    # 2^62 paths: no enumeration could finish, so finishing at all shows the dynamic programme
    # (its speed is measured in benchmarks/score_throughput.py, not asserted on a loaded machine)
    space = DAGSpace(64)
    arch = space.from_digits([2] * len(space.pairs))  # every edge linear
    stats = arch.path_stats()
    # paths of a complete DAG on n nodes: 2^(n-2); with d_p = #edges, histogram = binomial(62, d-1)
    from math import comb

    assert stats.num_paths == 2**62
    assert list(stats.depth_histogram) == [0] + [comb(62, k) for k in range(63)]
    # all skips: the same number of paths, depth 0
    skips = space.from_digits([1] * len(space.pairs)).path_stats()
    assert skips.num_paths == 2**62 and skips.effective_depth == 0


def test_exact_counts_beyond_float_precision():
    complete = ArchGraph(70, dict.fromkeys(ArchBatch.all_pairs(70), "skip"))  # beyond dag:N's 64 nodes
    stats = complete.path_stats()
    assert stats.num_paths == 2**68  # exact Python int, not a rounded float


def test_batched_stats_equal_scalar_stats():
    space = NB201Space()
    indices = np.random.default_rng(1).choice(space.size, 300, replace=False)
    batch = space.batch(indices)
    arrays = path_stats_arrays(depth_histograms(batch))
    for pos, index in enumerate(indices):
        stats = space.decode(int(index)).path_stats()
        assert arrays["num_paths"][pos] == stats.num_paths
        assert arrays["effective_depth"][pos] == pytest.approx(stats.effective_depth)
        assert arrays["effective_width"][pos] == pytest.approx(stats.effective_width)
        assert arrays["sum_depth_cubed"][pos] == stats.sum_depth_cubed
    # the space's fast batch equals the batch built from ArchGraph objects
    slow = ArchBatch.from_archs(space.decode(int(i)) for i in indices)
    assert np.array_equal(slow.roles, batch.roles)
    assert np.array_equal(slow.kernel_sizes, batch.kernel_sizes)


# ---------------------------------------------------------------- codecs
def test_every_nb201_string_round_trips(nb201_rows):
    seen = set()
    for row in nb201_rows:
        text = row["ArchitectureString"]
        arch = ArchGraph.parse(text)
        assert arch.to_nb201() == text
        assert ArchGraph.from_naslib(arch.to_naslib()) == arch
        seen.add(arch)
    assert len(seen) == 15_625


def test_nb201_space_covers_the_benchmark(nb201_rows):
    space = NB201Space()
    assert {space.decode(i).to_nb201() for i in range(space.size)} == {
        r["ArchitectureString"] for r in nb201_rows
    }


def test_naslib_mapping():
    expected = (
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+"
        "|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    )
    assert ArchGraph.parse((4, 3, 3, 3, 2, 3)).to_nb201() == expected
    assert ArchGraph.parse("(4, 3, 3, 3, 2, 3)") == ArchGraph.parse(expected)
    assert ArchGraph.parse(expected).to_naslib() == (4, 3, 3, 3, 2, 3)
    # op 1 is 'none', op 0 'skip' in NASLib's order
    assert ArchGraph.parse((0, 1, 1, 1, 1, 1)).to_nb201() == (
        "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    )


def test_dag_code_round_trips_over_the_whole_5_node_space():
    space = DAGSpace(5)
    assert space.size == 59_049
    for index in range(0, space.size, 7):
        arch = space.decode(index)
        code = arch.to_dag_code()
        assert ArchGraph.parse(code) == arch
        assert space.encode(code) == index
        assert int(code.replace("_", ""), 3) == index  # index = the code in base 3


def test_from_networkx_user_dag():
    g = nx.DiGraph()
    g.add_edge("in", "a", op="nor_conv_3x3")
    g.add_edge("in", "b", op="skip_connect")
    g.add_edge("a", "out", op="linear")
    g.add_edge("b", "out", op="avg_pool_3x3")
    g.add_edge("a", "b", op="none")
    arch = ArchGraph.from_networkx(g)
    assert arch.n_nodes == 4
    assert arch.path_stats().num_paths == 2
    assert ArchGraph.from_networkx(arch.graph) == arch


def test_pickle_and_hash():
    arch = ArchGraph.parse("2_21_112")
    assert pickle.loads(pickle.dumps(arch)) == arch
    assert len({arch, ArchGraph.parse("2_21_112")}) == 1


# ---------------------------------------------------------------- canonical keys
def test_canonical_key_never_splits_a_benchmark_class(nb201_rows):
    """Cells with equal NB201 'unique strings' compute the same function: one key per class."""
    classes = defaultdict(set)
    for row in nb201_rows:
        classes[row["UniqueString"]].add(ArchGraph.parse(row["ArchitectureString"]).canonical_key())
    assert all(len(keys) == 1 for keys in classes.values())
    n_keys = len(set().union(*classes.values()))
    # 4,930 < 6,466: the benchmark's strings keep dead ('#') branches and do not always sort the
    # terms of a sum; both merges are provably the same function (see docs/architectures.md)
    assert n_keys == 4_930


def test_canonical_key_semantics():
    key = lambda s: ArchGraph.parse(s).canonical_key()  # noqa: E731
    # sums are commutative: swapping the two parallel branches of node 3
    tail = "|+|none~0|skip_connect~1|skip_connect~2|"
    assert key("|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1" + tail) == key(
        "|avg_pool_3x3~0|+|nor_conv_3x3~0|none~1" + tail
    )
    # dead edges do not matter: node 1 feeds nothing
    assert key("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|skip_connect~2|") == key(
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|skip_connect~2|"
    )
    # skips are transparent: conv(skip(x)) == conv(x)
    assert key("1_02_002") != key("0_02_002")  # the second has no path: its output is 0
    assert key("1_02_002") == key("2_02_001")  # lin(lin(x)), the skip first or last
    # multiplicities matter: x + x is not x
    assert key("1_11_001") != key("1_00_001")
    # different functions differ
    assert key("2_02_002") != key("2_22_222")


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("hello", "unrecognised"),
        ("|nor_conv_3x3~0|+|foo~0|nor_conv_3x3~1|", "unknown op 'foo'"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~2|", "position"),
        ("|nor_conv_3x3~0+|nor_conv_3x3~0|", "malformed"),
        ("|nor_conv_3x3-0|", "token 'nor_conv_3x3-0' at position 1"),
        ("|nor_conv_3x3~0|+|skip_connect~0|skip_connect~0|", "given twice"),
        ("2_3", "position 2"),
        ("2_02_00", "needs exactly 3 digits"),
        ("2_05_002", "'5' at position 3"),
        ("(4, 3, 3)", "6 op indices"),
        ("(4, 3, 3, 3, 2, 9)", "position 5"),
        ("(4, 3, x, 3, 2, 1)", "not an integer"),
        ("(4, 3, 3, 3, 2, 1", "closing bracket"),
    ],
)
def test_bad_strings_raise_clear_errors(text, fragment):
    with pytest.raises(ArchError, match=None) as info:
        ArchGraph.parse(text)
    assert fragment in str(info.value)


def test_invalid_graphs():
    with pytest.raises(ArchError, match="cycle"):
        ArchGraph.from_networkx(nx.DiGraph([(0, 1, {"op": "linear"}), (1, 2, {"op": "linear"}),
                                            (2, 1, {"op": "linear"})]))
    with pytest.raises(ArchError, match="exactly one input"):
        ArchGraph.from_networkx(nx.DiGraph([(0, 2, {"op": "linear"}), (1, 2, {"op": "linear"})]))
    with pytest.raises(ArchError, match="no 'op' attribute"):
        ArchGraph.from_networkx(nx.DiGraph([(0, 1)]))
    with pytest.raises(ArchError, match="unknown op"):
        ArchGraph.from_networkx(nx.DiGraph([(0, 1, {"op": "conv9x9"})]))
    with pytest.raises(ArchError, match="invalid"):
        ArchGraph(3, {(2, 1): "linear"})
    with pytest.raises(ArchError, match="at least 2 nodes"):
        ArchGraph(1, {})
    with pytest.raises(ArchError, match="DAG-code digit"):
        ArchGraph.parse((4, 3, 3, 3, 2, 3)).to_dag_code()


def test_abstraction_maps_convs_to_linear_and_pools_to_skips():
    arch = ArchGraph.parse((4, 3, 3, 3, 2, 3))
    abstract = arch.abstract()
    assert abstract.to_dag_code() == "1_22_222"
    assert abstract.path_stats() == arch.path_stats()


# ---------------------------------------------------------------- search spaces
def test_spaces_sizes_sampling_and_neighbours():
    nb = NB201Space()
    assert nb.size == 15_625 == len(list(itertools.islice(iter(nb), 20_000)))
    assert DAGSpace(5).size == 59_049
    assert DAGSpace(30).size == 3**435  # never materialized
    big = DAGSpace(30).sample(np.random.default_rng(0))
    assert big.n_nodes == 30
    rng = np.random.default_rng(3)
    arch = nb.sample(rng)
    assert nb.decode(nb.encode(arch)) == arch
    neighbours = nb.neighbours(arch)
    assert len(neighbours) == 24 and len(set(neighbours)) == 24
    assert all(sum(a.op(*e) != arch.op(*e) for e in nb.pairs) == 1 for a in neighbours)
    # uniform sampling: each op about 1/5 of the time on every edge
    counts = np.zeros((6, 5))
    for _ in range(2000):
        counts[np.arange(6), nb.digits(nb.encode(nb.sample(rng)))] += 1
    assert np.all(np.abs(counts / 2000 - 0.2) < 0.05)


def test_space_errors():
    from nasplug import search_spaces

    with pytest.raises(ArchError, match="outside"):
        NB201Space().decode(15_625)
    with pytest.raises(ArchError, match="not in this space"):
        NB201Space().encode("2_21_112")
    with pytest.raises(ArchError, match="unknown space"):
        search_spaces.get("nb999")
    assert search_spaces.get("dag:6").n_nodes == 6
    assert "2_21_112" in DAGSpace(4) and "2_21_112" not in NB201Space()


def test_live_edges_match_path_enumeration():
    space = DAGSpace(6)
    rng = np.random.default_rng(5)
    for _ in range(100):
        arch = space.sample(rng)
        on_paths = {
            (s, t) for p in nx.all_simple_paths(arch.graph, 0, arch.output) for s, t in zip(p, p[1:])
        }
        assert set(arch.live_edges()) == on_paths
