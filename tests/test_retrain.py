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
from nasplug.commands.retrain import RECIPE_NAMES
from nasplug.ddp.jobs import read_spec
from nasplug.ddp.spec import RECIPES
from nasplug.optuna.runner import CONFIG_ATTR
from nasplug.retrain.select import best_of_study
from nasplug.search.attrs import ATTR_ARCH, ATTR_RETRAINED
from nasplug.search.config import SearchConfig
from nasplug.theory.hparams import principled_lr

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


def test_the_command_offers_exactly_the_recipes():
    assert sorted(RECIPE_NAMES) == sorted(RECIPES)


def test_a_training_search_is_retrained_with_its_network_width_init_and_base_lr(tmp_path, capsys):
    """The search trained CNN-DAGs of width 12 with base LR 0.5: the retraining keeps all of it
    (the [C24] rate of each cell), unless the command line says otherwise."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    config = SearchConfig(model="cnn", width=12, base_lr=0.5, init="he")
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.set_user_attr(CONFIG_ATTR, config.identity())
    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    study.add_trial(optuna.create_trial(value=90.0, user_attrs={ATTR_ARCH: arch}))
    for extra, width, base, init in [([], 12, 0.5, "he"),
                                     (["--base-lr", "0.2", "--width", "8"], 8, 0.2, "he"),
                                     (["--model", "mlp"], None, 0.1, "he")]:
        out = tmp_path / f"out{len(extra)}{extra[:1]}"
        assert main(["retrain", "--storage", str(tmp_path / "study.db"), "--epochs", "1", "--device", "cpu",
                     "--out", str(out), *extra]) == 0, capsys.readouterr()
        [folder] = (out / "runs").iterdir()
        spec = read_spec(folder)
        model = "mlp" if "--model" in extra else "cnn"
        assert (spec.model, spec.width, spec.init) == (model, width, init)
        assert spec.lr == pytest.approx(principled_lr(arch, base, model))


def test_a_multi_objective_study_is_retrained_from_its_pareto_front(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"])
    cells = ["2_21_112", "2_22_222", "1_11_111", "2_21_111"]
    for cell, values in zip(cells, [(90.0, 5.0), (95.0, 9.0), (80.0, 1.0), (85.0, 9.5)]):  # last: dominated
        study.add_trial(optuna.create_trial(values=list(values), user_attrs={ATTR_ARCH: cell}))
    picked = best_of_study(study, 5)
    assert [c.value for c in picked] == [95.0, 90.0, 80.0]
    assert [c.trial for c in picked] == [1, 0, 2]


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
    (["2_21_112", "--recipe", "imagenet"], "invalid choice: 'imagenet'"),
    (["2_21_112", "--base-lr", "0"], "--base-lr"),
    (["2_21_112", "--momentum", "1"], "--momentum"),
    (["2_21_112", "--workers", "0"], "workers"),
    (["2_21_112", "--workers", "10000", "--batch-size", "10000", "--device", "cpu"],
     "processes on this machine"),
])
def test_bad_input_is_one_line_before_any_work(args, message, tmp_path, capsys):
    out = tmp_path / "out"
    try:
        code = main(["retrain", *args, "--out", str(out)])
    except SystemExit as stop:  # argparse's own errors (types, choices)
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("nasplug retrain: error:") and message in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("form", ["{}", "sqlite:///{}", "journal:{}"])
def test_a_missing_storage_file_is_refused_and_never_created(form, tmp_path, capsys):
    missing = tmp_path / "missing.db"
    assert main(["retrain", "--storage", form.format(missing), "--out", str(tmp_path / "o")]) == 2
    assert "no such study storage" in capsys.readouterr().err
    assert not missing.exists()


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
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tree: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 600
        while not list(out.glob("runs/*/checkpoint.pt")):  # the workers are training
            assert proc.poll() is None and time.monotonic() < deadline, "retrain ended before training"
            time.sleep(0.1)
        tree = descendants(proc.pid)
        assert len(tree) >= 3  # the torchrun agent and its 2 workers
        os.kill(proc.pid, sig)
        _, stderr = proc.communicate(timeout=120)
        if sig == signal.SIGTERM:  # handled like Ctrl-C: one line, the agents' shutdown noise in the log
            assert proc.returncode == 130 and "Traceback" not in stderr, stderr
            assert stderr.strip().splitlines()[-1].startswith("nasplug retrain: interrupted")
        while alive(tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert alive(tree) == []
    finally:  # never leave the test's own processes behind, whatever failed
        for pid in alive(tree):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
