"""``nasplug retrain`` end to end: the best cells of a table-lookup study retrained on digits with 2
data-parallel CPU workers (torchrun), results in a table and the study; bad input is one line
before any work; an interrupted or killed run leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from procs import alive, descendants

from nasplug.cli import main
from nasplug.search.attrs import ATTR_ARCH, ATTR_RETRAINED

CNN = ["--model", "cnn", "--width", "8", "--dataset", "digits"]


@pytest.fixture(scope="module")
def table_study(nb201_csv, tmp_path_factory) -> Path:
    """A 12-trial search whose values are NAS-Bench-201 CIFAR-10 lookups (no training)."""
    out = tmp_path_factory.mktemp("search")
    assert main(["search", "--benchmark", str(nb201_csv), "--n-trials", "12", "--out", str(out),
                 "--quiet"]) == 0
    return out / "study.db"


def test_retrain_the_best_cells_of_a_table_study_with_two_workers(table_study, tmp_path, capsys):
    out = tmp_path / "retrain"
    code = main(["retrain", "--storage", str(table_study), "--top", "2", *CNN, "--epochs", "2",
                 "--workers", "2", "--parallel", "2", "--device", "cpu", "--out", str(out)])
    assert code == 0, capsys.readouterr().out
    rows = json.loads((out / "retrain.json").read_text())
    # the truth: the study's two best distinct cells, read with plain Optuna
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{table_study}")
    trials = sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: -t.value)
    assert [r["trial"] for r in rows] == [trials[0].number, trials[1].number]
    assert [r["search_value"] for r in rows] == [trials[0].value, trials[1].value]
    assert [r["arch"] for r in rows] == [trials[0].user_attrs[ATTR_ARCH], trials[1].user_attrs[ATTR_ARCH]]
    for r in rows:
        result = json.loads((out / "runs" / r["job"] / "result.json").read_text())
        assert r["status"] == "ok" and r["workers"] == 2 and r["epochs"] == 2
        assert r["test_acc"] == pytest.approx(100 * result["test_acc"])
        assert r["test_acc_per_epoch"] == [round(100 * m["test_acc"], 4) for m in result["history"]]
        assert study.user_attrs[f"{ATTR_RETRAINED}:{r['job']}"]["test_acc"] == r["test_acc"]
    table = (out / "retrain.md").read_text()
    assert "\\|skip_connect" in table or "\\|nor_conv" in table  # pipes escaped in table cells
    assert (out / "retrain_curves.png").stat().st_size > 0
    # a rerun finds every job finished and trains nothing
    capsys.readouterr()
    assert main(["retrain", "--storage", str(table_study), "--top", "2", *CNN, "--epochs", "2",
                 "--workers", "2", "--device", "cpu", "--out", str(out)]) == 0
    assert "2 of 2 jobs finished earlier" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    ([], "give architectures or --storage"),
    (["2_21_112", "--storage", "x.db"], "give architectures or --storage"),
    (["--storage", "missing.db"], "no such study storage"),
    (["2_21_1x2"], "2_21_1x2"),
    (["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"], "no input→output path"),
    (["2_21_112", "--dataset", "cifar10"], "--data-root"),
    (["2_21_112", "--dataset", "cifar10", "--data-root", "nowhere"], "does not exist"),
    (["2_21_112", "--batch-size", "63", "--workers", "2"], "divisible"),
    (["2_21_112", "--epochs", "0"], "epochs"),
    (["2_21_112", "--recipe", "imagenet"], "unknown recipe"),
    (["2_21_112", "--workers", "0"], "workers"),
])
def test_bad_input_is_one_line_before_any_work(args, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["retrain", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasplug retrain: error:") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_a_missing_study_name_lists_the_ones_there(table_study, tmp_path, capsys):
    assert main(["retrain", "--storage", str(table_study), "--study-name", "nope", "--out",
                 str(tmp_path / "o")]) == 2
    assert "no study 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------------- no orphan processes
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_or_killed_retrain_leaves_no_process_behind(sig, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "nasplug.cli", "retrain", "2_21_112", *CNN, "--epochs", "200",
           "--workers", "2", "--device", "cpu", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tree: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 600
        while not list(out.glob("runs/*/checkpoint.pt")):  # the workers are training
            assert proc.poll() is None and time.monotonic() < deadline, "retrain ended before training"
            time.sleep(0.1)
        tree = descendants(proc.pid)
        assert len(tree) >= 3  # the torchrun agent and its 2 workers
        os.kill(proc.pid, sig)
        proc.wait(120)
        while alive(tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert alive(tree) == []
    finally:  # never leave the test's own processes behind, whatever failed
        for pid in alive(tree):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
