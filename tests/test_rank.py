"""``nasplug rank --benchmark``: report files, numbers checked against independent computations."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from nasplug import ArchGraph, search_spaces
from nasplug.cli import main
from nasplug.errors import NasplugError
from nasplug.nasbench.metrics import spearman_rho
from nasplug.ranking import rank_aggregate, score_space, select_rank_ensemble
from nasplug.scorers.ensemble import aggregate_ranks, normalized_ranks, rank_table
from nasplug.search import resolve_scorer


def test_rank_report_files_and_numbers(nb201_csv, nb201_rows, tmp_path, capsys):
    out = tmp_path / "rep"
    code = main(["rank", "--space", "nb201", "--scorers", "effective_depth,num_paths",
                 "--filters", "dag_box,dag_box_authors", "--benchmark", str(nb201_csv),
                 "--dataset", "c100", "--out", str(out), "--search-seeds", "200", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "keeps 6,256 of 15,625" in printed and "keeps 8,226 of 15,625" in printed
    for name in ("report.md", "report.html", "scores.csv", "scatter_C100.png", "dmap_C100.png",
                 "prefilter_C100.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "dmap_C100.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # ρ of d̄ vs CIFAR-100 from the raw CSV rows and ArchGraph path statistics (independent of the
    # space mapping, the batched scorer and the loader)
    acc = np.array([float(r["CIFAR100TestAccuracy200Epochs"]) for r in nb201_rows])
    dbar = np.array([ArchGraph.parse(r["ArchitectureString"]).path_stats().effective_depth
                     for r in nb201_rows])
    rho = stats.spearmanr(dbar, acc).statistic
    report = (out / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| `effective_depth`"))
    assert row.split("|")[2].strip() == f"{rho:.3f}"
    assert "| `dag_box` | 6,256 (40.0 %)" in report and "| `dag_box_authors` | 8,226 (52.6 %)" in report

    # scores.csv: the accuracy column belongs to the arch string of the same line
    by_arch = {r["ArchitectureString"]: float(r["CIFAR100TestAccuracy200Epochs"]) for r in nb201_rows}
    with (out / "scores.csv").open() as fh:
        lines = list(csv.DictReader(fh))
    assert len(lines) == 15_625
    for line in lines[::997]:
        assert float(line["cifar100_test_accuracy"]) == pytest.approx(by_arch[line["arch"]])


def test_rank_benchmark_errors_are_one_line(nb201_csv, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "nasplug.cli", "rank", *args],
                              capture_output=True, text=True, timeout=120)

    cases = [
        (["--benchmark", str(nb201_csv), "--dataset", "cifar10-valid", "--out", str(tmp_path)],
         "no test_accuracy for cifar10-valid"),
        (["--benchmark", str(nb201_csv)], "give --out DIR"),
        (["--benchmark", str(tmp_path / "none.csv"), "--out", str(tmp_path)], "none.csv: no such file"),
        (["--benchmark", str(nb201_csv), "--dataset", "mnist", "--out", str(tmp_path)], "unknown dataset"),
    ]
    for args, fragment in cases:
        proc = run(*args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and fragment in lines[0], (args, proc.stderr)


def test_rank_aggregate_by_hand():
    a = np.array([3.0, 1.0, 2.0, 2.0])
    b = np.array([10.0, 40.0, 30.0, 20.0])
    # normalized average ranks: a -> [4, 1, 2.5, 2.5]/4, b (lower is better) -> [4, 1, 2, 3]/4
    agg = rank_aggregate({"a": a, "b": b}, {"a": 1.0, "b": 3.0}, {"a": True, "b": False})
    expected = (np.array([4, 1, 2.5, 2.5]) + 3 * np.array([4, 1, 2, 3])) / 4 / 4
    np.testing.assert_allclose(agg, expected)
    np.testing.assert_allclose(normalized_ranks(np.array([np.nan, 1.0])), [0.5, 1.0])
    # a negative weight reverses a scorer
    np.testing.assert_allclose(rank_aggregate({"a": a}, {"a": -1.0}), normalized_ranks(-a))
    logagg = rank_aggregate({"a": a, "b": b}, {"a": 1.0, "b": 1.0}, {"b": False}, mode="log")
    np.testing.assert_allclose(logagg, (np.log([4, 1, 2.5, 2.5]) + np.log([4, 1, 2, 3]) - 2 * np.log(4)) / 2)


def test_select_rank_ensemble_recovers_a_planted_combination():
    """The truth is the rank-mean of a and reversed b; c is noise. The greedy search finds exactly a and
    −b with equal weights and leaves c out."""
    rng = np.random.default_rng(0)
    a, b, c = rng.standard_normal((3, 500))
    table = rank_table({"a": a, "b": b, "c": c})
    truth = aggregate_ranks(table, {"a": 1.0, "b": -1.0})
    chosen = select_rank_ensemble(table, truth, spearman_rho, modes=("mean",))
    assert set(chosen.weights) == {"a", "b"} and chosen.mode == "mean"
    assert chosen.weights["b"] / chosen.weights["a"] == -1.0 and chosen.value == pytest.approx(1.0)
    np.testing.assert_allclose(table["-a"], normalized_ranks(-a))
    with pytest.raises(NasplugError, match="nothing to select"):
        select_rank_ensemble(table, truth, lambda score, t: float("nan"))
    with pytest.raises(NasplugError, match="no ranks"):
        aggregate_ranks({"a": table["a"]}, {"a": -1.0})


def test_rank_ensemble_scorer_equals_the_aggregate_over_its_space():
    """Fitted on NB201, the registered rank_ensemble scores every cell exactly as rank_aggregate of its
    members over the whole space (searchsorted mid-ranks vs scipy's average ranks), one cell at a
    time as in a batch, and it is top_fraction's default scorer."""
    from nasplug import scorers

    space = search_spaces.get("nb201")
    batch = space.batch()
    members = {"live_param_cost": 1.0, "effective_depth": 0.5, "num_paths": -2.0}
    ens = scorers.get("rank_ensemble", members=members, mode="log")
    values = {n: scorers.get(n).score_many(batch) for n in members}
    np.testing.assert_allclose(ens.score_many(batch), rank_aggregate(values, members, mode="log"), rtol=1e-12)
    cells = [space.decode(i) for i in (0, 4321, 15_624)]
    np.testing.assert_allclose([ens.score(c) for c in cells], ens.score_many(batch)[[0, 4321, 15_624]])
    default = scorers.get("rank_ensemble")
    assert set(default.members) == {"ntk_lambda_min", "effective_depth", "nngp_inverse_condition"}
    keep = scorers.get("top_fraction").keep_many(batch)
    score = default.score_many(batch)
    assert 0.1 <= keep.mean() < 0.11 and score[keep].min() > score[~keep].max()
    # fitted on the space it is resolved for, not on NB201
    dag = search_spaces.get("dag:4").batch()
    expected = rank_aggregate({n: scorers.get(n).score_many(dag) for n in default.members},
                              {n: w for n, (_, w) in default.members.items()})
    np.testing.assert_allclose(resolve_scorer("rank_ensemble", "dag:4").score_many(dag), expected, rtol=1e-12)


@pytest.mark.parametrize("params, message", [
    ({"members": {}}, "at least one member"), ({"members": {"dag_box": 1.0}}, "not a scorer"),
    ({"members": {"naswot": 1.0}}, "too slow"), ({"members": {"num_paths": 0.0}}, "non-zero"),
    ({"mode": "median"}, "aggregation mode"),
])
def test_rank_ensemble_bad_parameters(params, message):
    from nasplug import scorers

    with pytest.raises(NasplugError, match=message):
        scorers.get("rank_ensemble", **params)


def test_score_space_chunks_agree_with_one_batch():
    space = search_spaces.get("nb201")
    whole = score_space(space, ["effective_depth", "num_paths"], ["dag_box"], chunk=10**6)
    parts = score_space(space, ["effective_depth", "num_paths"], ["dag_box"], chunk=1000)
    for name in whole.scores:
        np.testing.assert_array_equal(whole.scores[name], parts.scores[name])
    np.testing.assert_array_equal(whole.keep["dag_box"], parts.keep["dag_box"])
