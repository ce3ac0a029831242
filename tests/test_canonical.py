"""Canonical forms and keys (nasplug.graph.canonical): the polynomial fold against the materialized
expression it replaced, closed-form lengths of complete DAGs, and keys of DAGs with 2^62 paths."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest

from nasplug import ArchError, ArchGraph, search_spaces
from nasplug.cli import main
from nasplug.graph.canonical import CANONICAL_FORM_LIMIT


def materialized_form(arch: ArchGraph) -> str:
    """The reference: the expression written term by term, every duplicate kept as a string (the
    algorithm nasplug used before the fold; exponential, so small cells only)."""
    terms: list[list[str]] = [["x"]] + [[] for _ in range(arch.n_nodes - 1)]
    blocks: dict[int, list[int]] = {}

    def value(node: int) -> str:
        return "+".join(sorted(terms[node])) if terms[node] else "0"

    def finish(node: int) -> None:
        sources = blocks.pop(node, None)
        if sources is None or all(not terms[a] for a in sources):
            return
        if len(sources) == 1:
            terms[node].extend(terms[sources[0]])
        else:
            terms[node].append(f"concat({','.join(sorted(value(a) for a in sources))})")

    for (s, t), op in arch.edge_items:
        finish(s)
        if op.role == "concat":
            blocks.setdefault(t, []).append(s)
        elif terms[s]:
            terms[t].extend(terms[s]) if op.is_skip else terms[t].append(f"{op.name}({value(s)})")
    finish(arch.output)
    return value(arch.output)


def complete(n_nodes: int, digit: str) -> ArchGraph:
    """The complete ``n_nodes`` DAG with every edge skip (``1``) or linear (``2``)."""
    return ArchGraph.parse("_".join(digit * i for i in range(1, n_nodes)))


def diamonds(k: int) -> ArchGraph:
    """A chain of ``k`` skip diamonds (``2^k`` input→output paths through ``2k + 1`` nodes)."""
    edges = {}
    for i in range(k):
        edges.update({(2 * i, 2 * i + 1): "skip", (2 * i, 2 * i + 2): "skip", (2 * i + 1, 2 * i + 2): "skip"})
    return ArchGraph(2 * k + 1, edges)


def small_cells() -> list[ArchGraph]:
    """Every 4-node DAG code, every NB201 cell, random 5-node DAG codes, NB101 cells and DARTS
    cells (each with its nodes' two inputs listed in the other order: the same function)."""
    rng = np.random.default_rng(0)
    cells = list(search_spaces.get("dag:4")) + list(search_spaces.get("nb201"))
    dag5 = search_spaces.get("dag:5")
    cells += [dag5.from_digits(d) for d in dag5.sample_digits(2000, rng)]
    nb101 = search_spaces.get("nb101")
    cells += [nb101.from_digits(d) for d in nb101.sample_digits(300, rng)]
    nb301 = search_spaces.get("nb301")
    for digits in nb301.sample_digits(100, rng):
        geno = nb301.from_digits(digits).to_darts()
        swapped = [pair for i in range(0, 8, 2) for pair in (geno.normal[i + 1], geno.normal[i])]
        cells += [ArchGraph.from_darts(geno, cell="normal"), ArchGraph.from_darts(swapped, cell="normal")]
    return cells


def test_the_fold_partitions_cells_exactly_as_the_materialized_form():
    cells = small_cells()
    forms = [materialized_form(a) for a in cells]
    keys = [a.canonical_key() for a in cells]
    assert [a.canonical_form() for a in cells] == forms  # the same text, character for character
    assert [a.canonical_form_length() for a in cells] == [len(f) for f in forms]
    by_form, by_key = defaultdict(set), defaultdict(set)
    for form, key in zip(forms, keys):
        by_form[form].add(key)
        by_key[key].add(form)
    assert all(len(v) == 1 for v in by_form.values()) and all(len(v) == 1 for v in by_key.values())
    # the sample has real collisions to get right (skips, dead edges, sums, swapped DARTS inputs)
    assert len(by_form) < len(cells) // 2


@pytest.mark.parametrize("n_nodes", [2, 3, 8, 64, 100])
def test_complete_dag_lengths_have_closed_forms(n_nodes):
    # skips: x+x+…+x, one x per path (2^(N−2)); linears: L_t = 2 L_(t−1) + 9, L_1 = 9
    assert complete(n_nodes, "1").canonical_form_length() == 2 ** (n_nodes - 1) - 1
    assert complete(n_nodes, "2").canonical_form_length() == 9 * (2 ** (n_nodes - 1) - 1)


def test_keys_of_dags_with_2_to_the_62_paths():
    skips = complete(64, "1")  # x counted 2^62 times
    assert skips.canonical_key() == diamonds(62).canonical_key()
    assert skips.canonical_key() != diamonds(61).canonical_key() == complete(63, "1").canonical_key()
    linear = complete(64, "2")
    longer = ArchGraph(65, {**linear.edges, (63, 64): "skip"})  # one more skip: the same function
    assert linear.canonical_key() == longer.canonical_key()
    one_skip = ArchGraph(64, {**linear.edges, (0, 63): "skip"})
    assert len({linear.canonical_key(), one_skip.canonical_key(), skips.canonical_key()}) == 3


def test_a_form_over_the_limit_is_refused_with_its_length():
    big = complete(15, "2")  # 9·(2^14 − 1) = 147,447 characters
    assert big.canonical_form_length() == 147_447 > CANONICAL_FORM_LIMIT
    with pytest.raises(ArchError, match="would be 147,447 characters long"):
        big.canonical_form()
    assert len(complete(14, "2").canonical_form()) == 73_719
    with pytest.raises(ArchError, match=r"9\.22e\+18 characters"):  # 2^63 − 1
        complete(64, "1").canonical_form()


def test_describe_says_the_form_is_too_long_and_prints_the_rest(capsys):
    assert main(["describe", "2_21_112"]) == 0
    assert "canonical_form       linear(linear(x)+linear(x))+linear(x)+x\n" in capsys.readouterr().out
    code = complete(15, "2").to_dag_code()
    assert main(["describe", code]) == 0
    out = capsys.readouterr().out
    assert "canonical_form       n/a (too long: 147,447 characters" in out
    assert "canonical_key" in out and "num_paths            8192" in out and "scores:" in out
    assert main(["describe", "--json", code]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["canonical_form"] is None and info["canonical_form_length"] == 147_447
    assert info["num_paths"] == 2**13 and info["canonical_key"] == complete(15, "2").canonical_key()


def test_describe_skips_the_per_cell_network_scores_of_cells_beyond_the_dag_spaces(capsys):
    """A 70-node cell: every path statistic and kernel score, but no network built per cell."""
    from nasplug import scorers
    from nasplug.search_spaces import MAX_DAG_NODES

    code = complete(MAX_DAG_NODES + 6, "2").to_dag_code()
    assert main(["describe", "--json", code]) == 0
    info = json.loads(capsys.readouterr().out)
    slow = [n for n in scorers.available("scorer") if scorers.is_slow(n)]
    assert slow and info["skipped_scores"] == slow and all(info["scores"][n] is None for n in slow)
    assert info["scores"]["effective_depth"] is not None and info["num_paths"] == 2 ** (MAX_DAG_NODES + 4)
    assert main(["describe", "2_21_112", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped_scores"] == []
