"""The largest spaces: dag:N up to MAX_DAG_NODES works (counts beyond float, bounded samples), beyond
it a one-line error before any work; counts in messages never overflow a float."""

from __future__ import annotations

import math

import pytest

from nasplug import ArchError, search_spaces
from nasplug.checks import format_count
from nasplug.cli import main
from nasplug.search_spaces import MAX_DAG_NODES, SAMPLE_DIGITS, SAMPLE_SIZE


def test_format_count_writes_any_size_without_a_float():
    assert format_count(59_049) == "59,049"
    assert format_count(10**15 - 1) == "999,999,999,999,999"
    assert format_count(3**2016) == "7.52e+961"  # 2016·log10(3) = 961.876
    assert format_count(10**400) == "1.00e+400" and format_count(2**62) == "4.61e+18"


def test_the_largest_dag_space_works_by_digits():
    space = search_spaces.get(f"dag:{MAX_DAG_NODES}")
    edges = MAX_DAG_NODES * (MAX_DAG_NODES - 1) // 2
    assert space.size == 3**edges and not space.enumerable
    assert space.sample_size == SAMPLE_DIGITS // edges < SAMPLE_SIZE  # 3,968 cells, not 200,000
    assert search_spaces.get("nb201").sample_size == SAMPLE_SIZE
    digits = space.sample_digits(5, rng=0)
    batch = space.batch_digits(digits)
    assert batch.roles.shape == (5, edges)
    cell = space.from_digits(digits[0])
    assert space.index_of(space.encode_digits(cell)) == space.index_of(digits[0])
    with pytest.raises(ArchError, match=r"has 7\.52e\+961 cells, too many for int64"):
        space.indices_of(digits)


@pytest.mark.parametrize("name", ["dag:1", f"dag:{MAX_DAG_NODES + 1}", "dag:100", "dag:x"])
def test_dag_spaces_outside_the_range_are_refused(name):
    with pytest.raises(ArchError, match=f"2 (to|<= N <=) {MAX_DAG_NODES}"):
        search_spaces.get(name)


def test_cli_refuses_a_too_large_dag_space_before_any_work(tmp_path, capsys):
    out = tmp_path / "search"
    code = main(["search", "--space", "dag:100", "--n-trials", "1", "--epochs", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"a DAG space has 2 to {MAX_DAG_NODES} nodes" in err
    assert not out.exists()
    assert main(["rank", "--space", "dag:100"]) == 2


def test_rank_on_a_space_beyond_float_range_asks_for_a_sample(capsys):
    assert math.log10(search_spaces.get("dag:40").size) > 308  # 3^780 = 10^372.15: float() overflows
    assert main(["rank", "--space", "dag:40"]) == 2
    err = capsys.readouterr().err
    assert "1.43e+372 cells; score a sample with --sample N" in err and err.count("\n") == 1
