"""Re-ranking NAS-Bench-201 by principled training (nasplug.retrain.rerank): the statistics on
hand-made results with known answers, the sample against the table, and ``nasplug rerank`` end to
end at a tiny scale (2 CPU workers), resumed without training again."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats

from nasplug.cli import main
from nasplug.ddp import read_result
from nasplug.retrain.rerank import RECIPE_NAMES, RerankConfig, analyze, make_specs, sample_cells
from nasplug.theory.hparams import principled_lr
from nasplug.train import TrainResult

ARCHS = [f"cell{i}" for i in range(6)]


def results_from(acc: dict[str, np.ndarray], status: dict | None = None) -> dict:
    """TrainResults with the given accuracies (%, shape (cells, seeds)) per recipe."""
    out = {}
    for r in RECIPE_NAMES:
        for i, s in itertools.product(range(acc[r].shape[0]), range(acc[r].shape[1])):
            st = (status or {}).get((i, r, s), "ok")
            out[i, r, s] = TrainResult(status=st, test_acc=acc[r][i, s] / 100)
    return out


def test_a_recipe_that_reproduces_the_benchmark_has_tau_one_and_no_flips():
    bench = np.array([94.0, 93.0, 91.5, 90.0, 85.0, 70.0])
    same = np.stack([bench, bench], axis=1)
    a = analyze(ARCHS, bench, results_from({"benchmark": same, "principled": same + 2.0}), (0, 1), 10)
    assert a.change_mean == pytest.approx(2.0) and a.change_ci == pytest.approx((2.0, 2.0))
    assert a.better == 6
    rows = {row["top_percent"]: row for row in a.taus}
    assert rows[100]["cells"] == 6 and rows[50]["cells"] == 3 and rows[20]["cells"] == 2
    for pct in (100, 50):
        assert rows[pct]["tau_benchmark"] == pytest.approx(1.0)
        assert rows[pct]["tau_principled"] == pytest.approx(1.0)
        assert rows[pct]["noise_principled"] == pytest.approx(1.0)
    assert math.isnan(rows[20]["tau_principled"])  # 2 cells: τ is ±1 by construction, not reported
    assert sum(row["pairs"] for row in a.flips) == 15
    assert all(row["flip_benchmark"] == 0 and row["noise_principled"] == 0 for row in a.flips)


def test_a_reversed_ranking_has_tau_minus_one_and_flips_every_pair():
    bench = np.array([94.0, 93.0, 91.5, 90.0, 85.0, 70.0])
    rev = np.stack([bench[::-1], bench[::-1]], axis=1)
    a = analyze(ARCHS, bench, results_from({"benchmark": rev, "principled": rev}), (0, 1), 10)
    assert a.taus[0]["tau_principled"] == pytest.approx(-1.0)
    assert all(row["flip_principled"] == 1.0 for row in a.flips)


def test_one_swapped_pair_of_four_cells():
    # by hand: 6 pairs, 5 concordant and 1 discordant -> tau = (5 - 1) / 6
    bench = np.array([4.0, 3.0, 2.0, 1.0])
    swapped = np.array([[4.0], [2.0], [3.0], [1.0]])
    a = analyze(ARCHS[:4], bench, results_from({"benchmark": swapped, "principled": swapped}), (0,), 10)
    assert a.taus[0]["tau_benchmark"] == pytest.approx(4 / 6)
    assert sum(row["flip_benchmark"] * row["pairs"] for row in a.flips) == pytest.approx(1.0)
    assert math.isnan(a.taus[0]["noise_benchmark"])  # one seed: no noise floor


def test_diverged_runs_count_as_chance_and_crashed_ones_as_missing():
    bench = np.array([90.0, 80.0, 70.0])
    acc = {"benchmark": np.full((3, 1), 50.0), "principled": np.full((3, 1), 60.0)}
    status = {(0, "principled", 0): "diverged", (1, "principled", 0): "error"}
    a = analyze(ARCHS[:3], bench, results_from(acc, status), (0,), num_classes=10)
    assert a.acc["principled"][0, 0] == 10.0 and math.isnan(a.acc["principled"][1, 0])
    assert a.diverged == {"benchmark": 0, "principled": 1} and a.missing == {"benchmark": 0, "principled": 1}
    assert a.change_mean == pytest.approx(((10 - 50) + (60 - 50)) / 2)  # the crashed cell is left out


# ---------------------------------------------------------------------- the sample
def test_the_sample_spans_the_benchmark_with_distinct_trainable_cells(nb201_csv, nb201_rows):
    config = RerankConfig(str(nb201_csv), cells=8, sample_seed=3)
    archs, bench = sample_cells(config)
    truth = {row["ArchitectureString"]: float(row["CIFAR10TestAccuracy200Epochs"]) for row in nb201_rows}
    assert [truth[a] for a in archs] == pytest.approx(bench.tolist())
    from nasplug import ArchGraph

    assert len({ArchGraph.parse(a).canonical_key() for a in archs}) == 8
    assert all(principled_lr(a, 0.1, "nb201") > 0 for a in archs)  # every cell has a path
    everything = np.array(sorted(truth.values()))
    assert bench.min() <= np.quantile(everything, 0.2) and bench.max() >= np.quantile(everything, 0.8)
    assert sample_cells(config)[0] == archs
    assert sample_cells(RerankConfig(str(nb201_csv), cells=8, sample_seed=4))[0] != archs
    uniform, _ = sample_cells(RerankConfig(str(nb201_csv), cells=8, stratify=False))
    assert len(set(uniform)) == 8


def test_the_two_recipes_differ_only_in_init_and_learning_rate(nb201_csv):
    config = RerankConfig(str(nb201_csv), cells=2, seeds=(0, 1), epochs=3, batch_size=128)
    archs, _ = sample_cells(config)
    specs = make_specs(config, archs)
    assert len(specs) == 2 * 2 * 2
    bench, principled = specs[0, "benchmark", 1].as_dict(), specs[0, "principled", 1].as_dict()
    differ = {k for k in bench if bench[k] != principled[k]}
    assert "init" in differ and differ <= {"init", "lr", "lr_rule"}
    assert bench["init"] == "torch" and bench["lr"] == pytest.approx(0.1 * 128 / 256)
    # by default the principled rates match the benchmark's in geometric mean
    rates = [specs[i, "principled", 0].lr for i in range(2)]
    assert math.exp(np.mean(np.log(rates))) == pytest.approx(0.1 * 128 / 256)
    multipliers = [principled_lr(a, 1.0, "nb201") for a in archs]
    assert rates[0] / rates[1] == pytest.approx(multipliers[0] / multipliers[1])
    given = make_specs(RerankConfig(str(nb201_csv), cells=2, principled_base_lr=0.5, batch_size=128), archs)
    assert given[0, "principled", 0].lr == pytest.approx(principled_lr(archs[0], 0.5, "nb201") * 128 / 256)


# ---------------------------------------------------------------------- end to end
def test_rerank_end_to_end_with_two_workers_and_resume(nb201_csv, tmp_path, capsys):
    out = tmp_path / "rerank"
    args = ["rerank", "--benchmark", str(nb201_csv), "--cells", "3", "--seeds", "0", "1", "--model", "cnn",
            "--width", "8", "--epochs", "1", "--batch-size", "64", "--parallel", "2", "--device", "cpu",
            "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "rerank.json").read_text())
    assert len(report["archs"]) == 3 and report["training"]["epochs"] == 1
    # recompute from the job folders: every training's result, and τ with scipy
    config = RerankConfig(str(nb201_csv), cells=3, model="cnn", width=8, epochs=1, batch_size=64)
    specs = make_specs(config, report["archs"], device="cpu")
    for (i, r, s), spec in specs.items():
        result = read_result(out / "runs" / spec.job_id())
        assert result.status == "ok"
        assert report["acc"][r][i][s] == pytest.approx(100 * result.test_acc)
    for r in RECIPE_NAMES:
        mean = np.mean(report["acc"][r], axis=1)
        tau = stats.kendalltau(mean, report["bench"]).statistic
        assert report["taus"][0][f"tau_{r}"] == pytest.approx(tau)
    text = (out / "rerank.md").read_text()
    assert "noise" in text and "## Reading" in text
    assert all((out / name).stat().st_size > 0 for name in
               ("rerank_scatter.png", "rerank_tau.png", "rerank_flips.png", "rerank_change.png"))
    capsys.readouterr()
    assert main(args) == 0  # resumed: nothing trains again
    assert "12 of 12 jobs finished earlier" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--benchmark", "missing.csv"], "missing.csv"),
    (["--cells", "1"], "--cells"),
    (["--seeds", "0", "0"], "distinct"),
    (["--principled-base-lr", "-1"], "principled-base-lr"),
    (["--model", "mlp"], "invalid choice"),
    (["--dataset", "cifar10"], "--data-root"),
    (["--workers", "3", "--batch-size", "64"], "divisible"),
])
def test_bad_rerank_input_is_one_line(args, message, nb201_csv, tmp_path, capsys):
    base = ["rerank", "--benchmark", str(nb201_csv), "--out", str(tmp_path / "o")]
    code = None
    try:
        code = main([*base, *args])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_when_every_training_fails_there_is_no_verdict_but_one_line(nb201_csv, tmp_path, capsys):
    """Networks too large to allocate: each job records its error; the command says so in one line
    (exit 2) instead of a report whose statistics are all NaN."""
    out = tmp_path / "o"
    code = main(["rerank", "--benchmark", str(nb201_csv), "--cells", "2", "--seeds", "0", "--epochs", "1",
                 "--width", "1000000000000", "--device", "cpu", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "every training failed (4 of 4)" in err and err.count("\n") == 1
    assert not (out / "rerank.md").exists()
