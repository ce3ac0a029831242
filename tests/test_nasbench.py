"""NAS-Bench-201 loaders and rank metrics.

The official-format path is tested on a small dict built here in the layout ``nas_201_api``
expects (``meta_archs``, ``arch2infos`` with ``less``/``full`` ArchResults state dicts, and
``evaluated_indexes``), with hand-chosen per-seed accuracies so the expected 200-epoch seed means are
known by hand. Metrics are checked against scipy, brute-force pair counts and small hand cases.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from math import comb

import numpy as np
import pytest
from scipy import stats

from nasplug import search_spaces
from nasplug.errors import DataError, NasplugError
from nasplug.nasbench import NB201_SIZE, load_benchmark
from nasplug.nasbench.analysis import filter_stats, random_search, score_guided_search
from nasplug.nasbench.metrics import (
    bootstrap_ci,
    filter_point,
    kendall_tau,
    pessimistic_rank,
    prefilter_curve,
    rank_quality,
    spearman_rho,
    top_k_precision,
)

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
]
# Final-epoch test accuracy per (arch, dataset) and seed, 200-epoch schedule. Arch 3 is listed in
# meta_archs but not evaluated, as in partial benchmark files.
FULL = {
    0: {"cifar10": [93.0, 94.0], "cifar10-valid": [90.0, 92.0], "cifar100": [70.0, 71.0, 75.0],
        "ImageNet16-120": [44.0]},
    1: {"cifar10": [85.5], "cifar10-valid": [84.0], "cifar100": [52.0, 54.0], "ImageNet16-120": [26.0, 27.0]},
    2: {"cifar10": [10.0, 10.0], "cifar10-valid": [10.0], "cifar100": [1.0], "ImageNet16-120": [0.83]},
}
EVAL_SETS = {"cifar10": ["ori-test"], "cifar10-valid": ["x-valid", "ori-test"],
             "cifar100": ["x-valid", "x-test", "ori-test"],
             "ImageNet16-120": ["x-valid", "x-test", "ori-test"]}


def _results_count(arch: str, dataset: str, seed: int, final: float, epochs: int) -> dict:
    """A ResultsCount state dict whose accuracies rise linearly to ``final`` at the last epoch.

    Each eval set gets a distinct offset (x-valid = final − 1, others = final) so a loader that
    reads the wrong set or the wrong epoch gives a different number.
    """
    curve = {e: final * (e + 1) / epochs for e in range(epochs)}
    accs, losses, times = {}, {}, {}
    for name in EVAL_SETS[dataset]:
        shift = -1.0 if name == "x-valid" else 0.0
        for e in range(epochs):
            accs[f"{name}@{e}"] = curve[e] + shift
            losses[f"{name}@{e}"] = 1.0 / (e + 1)
            times[f"{name}@{e}"] = 0.5
    return {
        "name": dataset, "net_state_dict": {"w": [0.0] * 4}, "train_acc1es": dict(curve),
        "train_acc5es": None, "train_losses": {e: 1.0 for e in range(epochs)},
        "train_times": {e: 1.0 for e in range(epochs)},
        "arch_config": {"arch_str": arch, "channel": 16, "num_cells": 5, "class_num": 10},
        "params": 0.1, "flop": 10.0, "seed": seed, "epochs": epochs, "latency": [0.01],
        "eval_names": list(EVAL_SETS[dataset]), "eval_acc1es": accs, "eval_times": times,
        "eval_losses": losses,
    }


def _arch_results(index: int, arch: str, per_dataset: dict, epochs: int, offset: float = 0.0) -> dict:
    seeds = (777, 888, 999)
    all_results, dataset_seed = {}, {}
    for dataset, finals in per_dataset.items():
        dataset_seed[dataset] = list(seeds[: len(finals)])
        for seed, final in zip(seeds, finals):
            all_results[(dataset, seed)] = _results_count(arch, dataset, seed, final + offset, epochs)
    return {"arch_index": index, "arch_str": arch, "all_results": all_results,
            "dataset_seed": dataset_seed, "clear_net_done": False}


def official_dict() -> dict:
    """A small NAS-Bench-201 file in the official layout. The 12-epoch ('less') results are
    20 points lower, so reading them instead of the 200-epoch ones is detected."""
    return {
        "meta_archs": list(ARCHS),
        "arch2infos": {
            i: {"less": _arch_results(i, ARCHS[i], FULL[i], 12, offset=-20.0),
                "full": _arch_results(i, ARCHS[i], FULL[i], 200)}
            for i in FULL
        },
        "evaluated_indexes": set(FULL),
    }


# ---------------------------------------------------------------------- official format
def test_official_dict_gives_200_epoch_seed_means():
    table = load_benchmark(official_dict())
    assert list(table.indices) == [0, 1, 2]
    assert table.archs == ARCHS[:3]
    assert set(table.datasets) == {"cifar10", "cifar10-valid", "cifar100", "ImageNet16-120"}
    np.testing.assert_allclose(table.column("cifar10"), [93.5, 85.5, 10.0])
    np.testing.assert_allclose(table.column("cifar100"), [72.0, 53.0, 1.0])
    np.testing.assert_allclose(table.column("in16"), [44.0, 26.5, 0.83])
    # cifar10-valid: validation accuracy is the x-valid set (1 point below the test curve here)
    np.testing.assert_allclose(table.column("cifar10-valid", "valid_accuracy"), [90.0, 83.0, 9.0])
    np.testing.assert_allclose(table.column("cifar100", "valid_accuracy"), [71.0, 52.0, 0.0])
    assert ("cifar10", "valid_accuracy") not in table.values  # no x-valid when training on train+valid
    with pytest.raises(DataError, match="no valid_accuracy for cifar10"):
        table.column("cifar10", "valid_accuracy")
    nb201 = search_spaces.get("nb201")
    assert list(table.space_indices(nb201)) == [nb201.encode(a) for a in ARCHS[:3]]


def test_official_pth_file_and_dataset_subset(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "NAS-Bench-201-mini.pth"
    torch.save(official_dict(), path)
    table = load_benchmark(path, datasets=["c100"])
    assert table.datasets == ["cifar100"]
    np.testing.assert_allclose(table.column("cifar100"), [72.0, 53.0, 1.0])
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated.pth: cannot read"):
        load_benchmark(truncated)


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d.pop("arch2infos"), "missing key(s) arch2infos"),
    (lambda d: d.update(evaluated_indexes=set()), "no evaluated architectures"),
    (lambda d: d["arch2infos"][1].pop("full"), "not in the NAS-Bench-201 format"),
    (lambda d: d.update(meta_archs=[ARCHS[0], "|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                    ARCHS[2], ARCHS[3]]), "row 1 has an arch string"),
])
def test_official_dict_errors(mutate, fragment):
    data = official_dict()
    mutate(data)
    with pytest.raises(DataError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        load_benchmark(data)


# ---------------------------------------------------------------------- compact table
def test_compact_csv_round_trip_and_cli_convert(tmp_path):
    table = load_benchmark(official_dict())
    path = table.write(tmp_path / "mini.csv")
    back = load_benchmark(path)
    assert list(back.indices) == list(table.indices) and back.archs == table.archs
    assert back.values.keys() == table.values.keys()
    for key, v in table.values.items():
        np.testing.assert_array_equal(back.values[key], v)
    lines = path.read_text().splitlines()
    assert lines[0] == "index,arch,dataset,test_accuracy,valid_accuracy"
    assert len(lines) == 1 + 3 * 4  # 3 cells x 4 datasets, long layout
    torch = pytest.importorskip("torch")
    pth = tmp_path / "mini.pth"
    torch.save(official_dict(), pth)
    proc = subprocess.run([sys.executable, "-m", "nasplug.cli", "bench", "convert", str(pth), "-o",
                           str(tmp_path / "conv.csv"), "--no-progress"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "conv.csv").read_text() == path.read_text()


def test_compact_parquet_round_trip(tmp_path):
    pytest.importorskip("pyarrow")
    table = load_benchmark(official_dict())
    back = load_benchmark(table.write(tmp_path / "mini.parquet"))
    for key, v in table.values.items():
        np.testing.assert_array_equal(back.values[key], v)


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed: import raises
    with pytest.raises(NasplugError, match=r"pyarrow.*nasplug\[parquet\]"):
        load_benchmark(official_dict()).write(tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_official_file_without_nas_bench_201_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nas_201_api", None)
    with pytest.raises(NasplugError, match=r"nas_201_api.*nasplug\[nb201\]"):
        load_benchmark(official_dict())


@pytest.mark.parametrize("edit, fragment", [
    (lambda ls: ls[:-1] + [ls[-1][: len(ls[-1]) // 3]], "fields, expected"),
    (lambda ls: ls[:5], "has no row for"),
    (lambda ls: ls + [ls[1]], "appears twice"),
    (lambda ls: [ls[0]] + [ls[1].replace(",cifar10,", ",cifar10,").rsplit(",", 2)[0] + ",oops,"]
     + ls[2:], "'oops' is not a number"),
    # an 'arch' column makes it a table of cells (docs/nasbench.md), whose rows must fit the header
    (lambda ls: ["idx,arch,dataset,test_accuracy"] + ls[1:], "different number of fields"),
    (lambda ls: ["idx,cell,dataset,test_accuracy,valid_accuracy"] + ls[1:], "unrecognised columns"),
    (lambda ls: [x.replace("|nor_conv_3x3~0|+", "|nor_conv_9x9~0|+") for x in ls], "not a nb201 cell"),
])
def test_bad_compact_tables(tmp_path, edit, fragment):
    path = load_benchmark(official_dict()).write(tmp_path / "good.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    with pytest.raises(DataError, match="bad.csv") as err:
        load_benchmark(bad)
    assert fragment in str(err.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_benchmark(tmp_path / "absent.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        load_benchmark(tmp_path / "empty.csv")
    with pytest.raises(DataError, match="unknown dataset 'cifar11'"):
        load_benchmark(official_dict()).column("cifar11")


# ---------------------------------------------------------------------- the CSV export
def test_csv_export_loads_and_maps_by_string(nb201_csv, nb201_rows):
    table = load_benchmark(nb201_csv)
    assert len(table) == NB201_SIZE and list(table.indices) == list(range(NB201_SIZE))
    # published optima of NAS-Bench-201 (200 epochs, mean over seeds)
    assert np.nanmax(table.column("cifar10")) == pytest.approx(94.37, abs=0.005)
    assert np.nanmax(table.column("cifar100")) == pytest.approx(73.51, abs=0.005)
    assert np.nanmax(table.column("ImageNet16-120")) == pytest.approx(47.31, abs=0.005)
    space = search_spaces.get("nb201")
    mapped = table.space_indices(space)
    expected = np.array([space.encode(r["ArchitectureString"]) for r in nb201_rows])
    np.testing.assert_array_equal(mapped, expected)
    assert sorted(mapped) == list(range(NB201_SIZE))  # a bijection onto our space
    # aligned lookup by our space index returns the row of that arch string
    rng = np.random.default_rng(0)
    for i in rng.integers(0, NB201_SIZE, size=20):
        row = nb201_rows[int(np.flatnonzero(expected == i)[0])]
        got = table.aligned(space, np.array([i]), "cifar100")[0]
        assert got == pytest.approx(float(row["CIFAR100TestAccuracy200Epochs"]))


def test_compact_table_of_the_export_round_trips(nb201_csv, tmp_path):
    # (how fast it loads is measured by benchmarks, not asserted here: a loaded machine is slow)
    table = load_benchmark(nb201_csv)
    path = table.write(tmp_path / "nb201.csv")
    back = load_benchmark(path)
    np.testing.assert_array_equal(back.column("cifar10"), table.column("cifar10"))
    np.testing.assert_array_equal(back.indices, table.indices)
    assert back.archs == table.archs


@pytest.mark.parametrize("edit, fragment", [
    (lambda ls: ls[:-10], "15,615 data rows, expected 15,625"),
    (lambda ls: [ls[0].replace("CIFAR100TestAccuracy200Epochs", "C100")] + ls[1:],
     "missing column(s) CIFAR100TestAccuracy200Epochs"),
    (lambda ls: ls[:3] + ["x" + ls[3]] + ls[4:], "line 4, column CIFAR10TestAccuracy200Epochs"),
    (lambda ls: ls[:3] + ["150" + ls[3][ls[3].index(","):]] + ls[4:], "not an accuracy in [0, 100]"),
    (lambda ls: ls[:2] + [ls[2].replace("avg_pool_3x3~1", "avg_pool_3x3~3", 1)] + ls[3:], "row 1"),
])
def test_bad_csv_exports(nb201_csv, tmp_path, edit, fragment):
    bad = tmp_path / "bad_export.csv"
    bad.write_text("\n".join(edit(nb201_csv.read_text().splitlines())) + "\n")
    with pytest.raises(DataError, match="bad_export.csv") as err:
        load_benchmark(bad)
    assert fragment in str(err.value)


def test_cli_bad_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "junk.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    proc = subprocess.run([sys.executable, "-m", "nasplug.cli", "bench", "info", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "junk.csv: unrecognised columns" in lines[0]


# ---------------------------------------------------------------------- metrics
def _tau_b_brute(x, y) -> float:
    conc = disc = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            tx += 1
        elif dy == 0:
            ty += 1
        elif dx == dy:
            conc += 1
        else:
            disc += 1
    return (conc - disc) / math.sqrt((conc + disc + tx) * (conc + disc + ty))


def test_kendall_and_spearman_hand_cases():
    # one swapped pair out of 6: τ = (5 − 1)/6; ρ = 1 − 6·Σd²/(n(n²−1)) = 1 − 12/60
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # a tie in x: 5 concordant pairs, τ-b = 5 / sqrt(5 · 6)
    assert kendall_tau([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30))
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # NaN pairs are dropped, constant inputs give NaN
    assert kendall_tau([1, 2, np.nan, 3], [1, 2, 5, 3]) == pytest.approx(1.0)
    assert math.isnan(spearman_rho([1, 1, 1], [1, 2, 3]))


def test_kendall_and_spearman_match_scipy_and_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(5):
        x = rng.integers(0, 6, size=40).astype(float)  # many ties, like topology scores
        y = rng.normal(size=40).round(1)
        assert kendall_tau(x, y) == pytest.approx(_tau_b_brute(x, y))
        assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)
        assert spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
        rx, ry = stats.rankdata(x), stats.rankdata(y)
        assert spearman_rho(x, y) == pytest.approx(np.corrcoef(rx, ry)[0, 1])


def test_bootstrap_interval_covers_the_population_value():
    """Draw 400 cells from a population with ρ ≈ 0.6 many times: the 95 % interval of a sample covers
    the population's ρ in about 95 % of draws; a perfect ranking has the degenerate interval [1, 1]."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(20_000)
    y = x + 1.2 * rng.standard_normal(20_000)
    population = spearman_rho(x, y)
    covered = 0
    for _ in range(60):
        i = rng.choice(len(x), 400, replace=False)
        lo, hi = bootstrap_ci(x[i], y[i], 300, rng)
        covered += lo <= population <= hi
    assert 50 <= covered <= 60
    assert bootstrap_ci(x[:50], x[:50], 50, rng) == (1.0, 1.0)
    lo, hi = bootstrap_ci(x[:300], y[:300], 40, rng, kendall=True)
    assert lo < kendall_tau(x[:300], y[:300]) < hi


def test_top_k_precision_and_pessimistic_rank_by_hand():
    scores = np.array([4.0, 3.0, 2.0, 1.0])
    truth = np.array([1.0, 4.0, 3.0, 2.0])
    assert top_k_precision(scores, truth, 2) == 0.5  # {0, 1} vs {1, 2}
    assert top_k_precision(scores, truth, 4) == 1.0
    assert top_k_precision(-scores, truth, 1) == 0.0
    assert list(pessimistic_rank(np.array([3.0, 1.0, 3.0, 2.0]))) == [2, 4, 2, 3]


def test_prefilter_curve_by_hand():
    scores = np.array([5.0, 4.0, 4.0, 1.0])
    truth = np.array([10.0, 40.0, 30.0, 20.0])
    c = prefilter_curve(scores, truth, 1)
    # thresholds keep 4, 3 or 1 cells; the true best (index 1) is in the tied group of rank 3
    np.testing.assert_allclose(c.pruned, [0.0, 0.25, 0.75])
    np.testing.assert_allclose(c.kept, [1.0, 1.0, 0.0])
    assert c.max_pruned_keeping(1.0) == 0.25
    c2 = prefilter_curve(scores, truth, 2)  # top-2 = indices 1, 2: both in the tie group
    np.testing.assert_allclose(c2.kept, [1.0, 1.0, 0.0])
    assert filter_point(np.array([False, True, False, True]), truth, 2) == (0.5, 0.5)
    q = rank_quality(scores, truth, ks=(1, "50%"))
    assert q.max_pruned == {"1": 0.25, "50%": 0.25} and q.precision["1"] == 0.0


def test_filter_stats_by_hand():
    truth = np.array([90.0, 80.0, 70.0, np.nan, 60.0])
    fs = filter_stats("box", np.array([True, False, True, True, False]), truth, ks=(1, 2))
    assert (fs.n, fs.kept) == (4, 2)
    assert fs.kept_mean == 80.0 and fs.removed_mean == 70.0 and fs.kept_best == 90.0
    assert fs.top_kept == {"1": 1.0, "2": 0.5}


def _expected_max(values: np.ndarray, k: int) -> float:
    """E[max of k distinct uniform draws] = Σ_i v_(i) C(i−1, k−1) / C(n, k) (v ascending)."""
    v = np.sort(values)
    n = len(v)
    return sum(v[i] * comb(i, k - 1) for i in range(n)) / comb(n, k)


def test_random_search_matches_closed_form():
    truth = np.random.default_rng(3).uniform(50, 95, size=30)
    res = random_search(truth, (1, 3, 10, 30), seeds=20_000, rng=1)
    for k, mean in zip(res.budgets, res.mean):
        assert mean == pytest.approx(_expected_max(truth, k), abs=0.15)
    assert res.hit_optimum[-1] == 1.0 and res.std[-1] == pytest.approx(0.0, abs=1e-9)  # K = n sees every cell
    keep = truth < np.median(truth)
    inside = random_search(truth, (3,), keep=keep, seeds=20_000, rng=2)
    assert inside.mean[0] == pytest.approx(_expected_max(truth[keep], 3), abs=0.15)


def test_score_guided_search_with_perfect_and_constant_scores():
    truth = np.random.default_rng(4).uniform(50, 95, size=25)
    perfect = score_guided_search(truth, truth, (5,), seeds=20_000, rng=0)
    assert perfect.mean[0] == pytest.approx(_expected_max(truth, 5), abs=0.15)
    blind = score_guided_search(np.zeros(25), truth, (5,), seeds=20_000, rng=0)
    assert blind.mean[0] == pytest.approx(truth.mean(), abs=0.3)  # ties broken at random
