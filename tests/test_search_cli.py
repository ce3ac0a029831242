"""`nasplug search`: table-lookup search against the raw CSV, resume, kill -9 and resume, two worker
processes on one journal storage, diverging evaluations, user errors, and (slow) real training."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from markdown_it import MarkdownIt
from optuna.trial import TrialState

from nasplug import ArchGraph, NasplugError, search_spaces
from nasplug.cli import main
from nasplug.optuna import open_storage

ROOT = Path(__file__).resolve().parents[1]
NB201 = search_spaces.get("nb201")

OBJECTIVES = '''
import math, os, time

def slow(arch):
    time.sleep(float(os.environ.get("NASPLUG_TEST_SLEEP", "0.3")))
    with open(os.environ["NASPLUG_TEST_LOG"], "a") as fh:
        fh.write(f"{os.getpid()} {arch.canonical_key()}\\n")
    return arch.path_stats().effective_width

def together(arch):
    """slow(), but no evaluation returns before two worker processes have evaluated something
    (or two minutes passed): both workers work however loaded the machine is."""
    value = slow(arch)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with open(os.environ["NASPLUG_TEST_LOG"]) as fh:
            if len({line.split()[0] for line in fh if line.strip()}) >= 2:
                break
        time.sleep(0.05)
    return value

def diverge(arch):
    st = arch.path_stats()
    if st.num_paths <= 2:
        return float("nan")
    return float(st.num_paths)
'''


@pytest.fixture
def objectives(tmp_path, monkeypatch):
    (tmp_path / "nasplug_test_objectives.py").write_text(OBJECTIVES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("NASPLUG_TEST_LOG", str(tmp_path / "evaluations.log"))
    return tmp_path


def _cli(args, env_extra=None, **kw):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.update(env_extra or {})
    return subprocess.Popen([sys.executable, "-m", "nasplug.cli", "search", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _study(spec, name=None):
    storage = open_storage(spec)
    name = name or optuna.get_all_study_names(storage)[0]
    return optuna.load_study(storage=storage, study_name=name)


def _states_readonly(db: Path) -> list[str]:
    """Trial states read with sqlite3 in read-only mode: polling must not race the CLI's own
    creation of the schema (opening an RDBStorage would create tables too)."""
    import sqlite3

    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return [row[0] for row in con.execute("SELECT state FROM trials")]
    except sqlite3.Error:
        return []


def test_table_search_reports_true_accuracies_and_resumes(tmp_path, nb201_csv, nb201_rows, capsys):
    truth = {NB201.encode(r["ArchitectureString"]): float(r["CIFAR10TestAccuracy200Epochs"])
             for r in nb201_rows}
    out = tmp_path / "out"
    args = ["search", "--benchmark", str(nb201_csv), "--n-trials", "12", "--out", str(out), "--quiet",
            "--sampler", "random"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "keeps 6,256 of 15,625 cells" in first
    study = _study(out / "study.db")
    assert len(study.trials) == 12
    for t in study.trials:
        arch = ArchGraph.parse(t.user_attrs["nasplug:arch"])
        assert t.state == TrialState.COMPLETE
        if "nasplug:duplicate_of" not in t.user_attrs:
            assert t.value == pytest.approx(truth[NB201.encode(arch)])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"][0]["value"] == pytest.approx(max(t.value for t in study.trials))
    assert summary["n_trials"] == 12
    for name in ("summary.md", "history.png", "outcomes.png"):
        assert (out / name).stat().st_size > 0
    # every best cell's NB201 string survives in its Markdown table cell (its pipes are escaped)
    html = MarkdownIt("commonmark").enable("table").render((out / "summary.md").read_text())
    cells = [c for c in re.findall(r"<td><code>(.*?)</code></td>", html) if c.startswith("|")]
    assert cells[:len(summary["best"])] == [b["arch"] for b in summary["best"]]
    first_params = [t.params for t in study.trials]
    # The same command again: nothing to add; a larger --n-trials continues the same study.
    assert main(args) == 0
    assert "reporting only" in capsys.readouterr().out
    assert main([*args[:4], "16", *args[5:]]) == 0
    assert "resuming: 12 trials stored" in capsys.readouterr().out
    again = _study(out / "study.db")
    assert len(again.trials) == 16
    assert [t.params for t in again.trials[:12]] == first_params


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["search", "--benchmark", str(tmp_path / "missing.csv"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0]
    assert main(["search", "--objective", "x:y", "--filter", "no_such_filter", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown filter" in err[0]
    assert main(["search", "--objective", "no_such_module:f", "--out", str(tmp_path)]) == 2
    assert "cannot load objective" in capsys.readouterr().err


def test_diverging_trials_fail_with_reason_and_the_study_continues(objectives, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["search", "--objective", "nasplug_test_objectives:diverge", "--filter", "none",
                 "--sampler", "random", "--n-trials", "20", "--out", str(out), "--quiet"])
    assert code == 0
    study = _study(out / "study.db")
    assert len(study.trials) == 20
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed
    for t in study.trials:
        paths = ArchGraph.parse(t.user_attrs["nasplug:arch"]).path_stats().num_paths
        if t.state == TrialState.FAIL:
            assert paths <= 2 and t.user_attrs["nasplug:fail_reason"].startswith("diverged")
        else:
            assert t.state == TrialState.COMPLETE and t.value == paths
    assert "failed {'diverged'" in capsys.readouterr().out


def test_killed_search_resumes_from_its_storage(objectives, tmp_path):
    out = tmp_path / "out"
    args = ["--objective", "nasplug_test_objectives:slow", "--sampler", "random", "--n-trials", "10",
            "--out", str(out), "--quiet", "--no-dedupe"]
    proc = _cli(args)
    db = out / "study.db"
    deadline = time.time() + 60
    killed = False
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        states = _states_readonly(db)
        if states.count("COMPLETE") >= 3 and "RUNNING" in states:
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
    proc.wait(timeout=30)
    assert killed, proc.stderr.read()
    before = _study(db).trials
    zombie = [t for t in before if t.state == TrialState.RUNNING]
    assert len(zombie) == 1
    done_before = {t.number: t.value for t in before if t.state == TrialState.COMPLETE}

    again = _cli(args, env_extra={"NASPLUG_TEST_SLEEP": "0"})
    stdout, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    assert f"recovered 1 trial(s) whose worker had died: [{zombie[0].number}]" in stdout
    trials = _study(db).trials
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    dead = trials[zombie[0].number]
    assert dead.state == TrialState.FAIL and dead.user_attrs["nasplug:fail_reason"].startswith("worker_died")
    retry = [t for t in trials if t.user_attrs.get("nasplug:retry_of") == zombie[0].number]
    # The retry keeps whatever the dead trial had already sampled (all edges, unless it died mid-draw).
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert zombie[0].params.items() <= retry[0].params.items()
    assert {t.number: t.value for t in trials if t.number in done_before} == done_before
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 10  # the dead one does not count


def test_two_worker_processes_share_one_journal_storage(objectives, tmp_path, capsys):
    out = tmp_path / "out"
    journal = tmp_path / "journal.log"
    code = main(["search", "--objective", "nasplug_test_objectives:together", "--sampler", "random",
                 "--n-trials", "16", "--jobs", "2", "--storage", f"journal:{journal}", "--out", str(out),
                 "--quiet"])
    assert code == 0, capsys.readouterr().err
    study = _study(f"journal:{journal}")
    trials = study.trials
    # StopAtTrials counts running trials, so two workers overshoot by at most one trial.
    assert 16 <= len(trials) <= 17
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    log = (tmp_path / "evaluations.log").read_text().split("\n")
    lines = [line.split() for line in log if line]
    evaluated = [t for t in trials if t.user_attrs.get("nasplug:evaluated")]
    assert len(lines) == len(evaluated)  # every training is recorded, none lost, none extra
    assert len({pid for pid, _ in lines}) == 2  # both workers worked
    # no function trained twice, even when both workers drew it at the same moment (the second
    # waits for the first and reuses its value)
    assert len({key for _, key in lines}) == len(lines)
    assert all("nasplug:duplicate_of" in t.user_attrs for t in trials if t not in evaluated)


def test_training_search_selects_on_validation_and_tests_the_best_cells_once(tmp_path, capsys, monkeypatch):
    import nasplug.train

    splits = []
    evaluate = nasplug.train.evaluate

    def spy(model, data, split="test", **kw):
        splits.append(split)
        return evaluate(model, data, split, **kw)

    monkeypatch.setattr(nasplug.train, "evaluate", spy)
    out = tmp_path / "out"
    assert main(["search", "--n-trials", "3", "--epochs", "2", "--final-top", "2", "--final-seeds", "2",
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    study = _study(out / "study.db")
    evaluated = [t for t in study.trials if t.user_attrs.get("nasplug:evaluated")]
    summary = json.loads((out / "summary.json").read_text())
    final = summary["final"]
    # the search evaluated validation only (2 epochs per training); the test split once per final run
    assert splits.count("test") == sum(len(c["runs"]) for c in final) == 2 * len(final)
    assert splits.count("valid") == 2 * (len(evaluated) + 2 * len(final))
    for t in evaluated:
        assert 10.0 < t.value <= 100.0 and t.intermediate_values[2] == pytest.approx(t.value)
        assert not any("test" in k for k in t.user_attrs)
    best = {c["key"]: c for c in final}
    for t in evaluated:
        if t.user_attrs["nasplug:key"] in best:  # the search's own seed reproduces its value exactly
            assert best[t.user_attrs["nasplug:key"]]["runs"]["0"]["valid"] == pytest.approx(t.value, abs=1e-9)
    for c in final:
        assert set(c["runs"]) == {"0", "1"}
        assert c["test_mean"] == pytest.approx(sum(r["test"] for r in c["runs"].values()) / 2)
    comparison = summary["comparison"]
    assert comparison["n_evaluated"] == len(evaluated) and comparison["n_seeds"] == 2
    assert "each cell is trained as a CNN-DAG" in summary["objective"] and "2 epochs" in summary["objective"]
    assert "validation accuracy" in summary["objective"]
    assert "test split is used only once" in summary["objective"]
    assert "seed noise" in printed and "each run tested once" in printed
    md = (out / "summary.md").read_text()
    assert "**What was measured.**" in md and "## Final runs" in md
    # a rerun reports the stored final runs without training again
    splits.clear()
    assert main(["search", "--n-trials", "3", "--epochs", "2", "--final-top", "2", "--final-seeds", "2",
                 "--out", str(out), "--quiet"]) == 0
    assert splits == [] and json.loads((out / "summary.json").read_text())["final"] == final


# ---------------------------------------------------------------------- a study's identity
def _trial_count(db: Path) -> int:
    return len(_study(db).trials)


@pytest.mark.parametrize("change, fragment", [
    (["--objective", "nasplug_test_objectives:diverge"], "callable=nasplug_test_objectives:slow"),
    (["--direction", "minimize"], "direction=maximize"),
    (["--space", "dag:4"], "space=nb201"),
    pytest.param(["--filter", "none"], "filter=dag_box", marks=pytest.mark.slow),
    pytest.param(["--no-dedupe"], "dedupe=True", marks=pytest.mark.slow),
])
def test_a_rerun_with_other_evaluation_settings_is_refused_before_any_trial(objectives, tmp_path, capsys,
                                                                           monkeypatch, change, fragment):
    monkeypatch.setenv("NASPLUG_TEST_SLEEP", "0")
    out = tmp_path / "out"
    base = ["search", "--objective", "nasplug_test_objectives:slow", "--sampler", "random", "--n-trials", "3",
            "--out", str(out), "--quiet"]
    assert main(base) == 0
    capsys.readouterr()
    before = _trial_count(out / "study.db")
    summary = (out / "summary.md").read_text()
    args = [a for a in base if a not in ("--objective", "nasplug_test_objectives:slow")] \
        if change[0] == "--objective" else base
    code = main([*args, *change, "--n-trials", "6"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "was created with" in err[0] and fragment in err[0] and "--study-name NEW" in err[0]
    assert _trial_count(out / "study.db") == before  # no trial, no FAIL trial
    assert (out / "summary.md").read_text() == summary  # the report of the study is untouched
    # the same settings under a new study name: a new study next to the old one
    assert main([*args, *change, "--study-name", "second", "--n-trials", "2"]) == 0
    names = optuna.get_all_study_names(open_storage(out / "study.db"))
    assert sorted(names) == ["nasplug-search", "second"]


def test_identity_resolves_defaults_and_ignores_search_settings():
    from nasplug.search import SearchConfig

    base = SearchConfig()
    assert base.model == "cnn" and base.width == 16 and base.base_lr == 1.0  # digits defaults, resolved
    same = SearchConfig(model="cnn", width=16, base_lr=1.0, sampler="random", seed=7, jobs=2, n_trials=99,
                        max_tries=3, pruner="median", timeout=5)
    assert same.identity() == base.identity()
    base.check_identity(same.identity())
    for other in (SearchConfig(model="mlp"), SearchConfig(width=32), SearchConfig(epochs=3),
                  SearchConfig(init="he"), SearchConfig(base_lr=0.5), SearchConfig(dataset="cifar10")):
        with pytest.raises(NasplugError, match="was created with"):
            other.check_identity(base.identity())
    assert SearchConfig(model="mlp").key_rule == "mlp_function" and base.key_rule == "function"


def test_a_training_study_refuses_another_model(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["search", "--n-trials", "1", "--epochs", "1", "--final-top", "0", "--out", str(out), "--quiet"]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--model", "mlp"]) == 2  # the symptom: MLP and CNN values mixed
    err = capsys.readouterr().err
    assert "model=cnn" in err and "model=mlp" in err and len(_study(out / "study.db").trials) == 1
    assert main([*args, "--model", "cnn", "--width", "16"]) == 0  # the defaults, spelled out
    assert "reporting only" in capsys.readouterr().out


# ---------------------------------------------------------------------- what the user sees
def test_one_compact_line_per_trial_and_counters_that_read_true(objectives, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NASPLUG_TEST_SLEEP", "0")
    out = tmp_path / "out"
    assert main(["search", "--objective", "nasplug_test_objectives:slow", "--sampler", "random",
                 "--n-trials", "12", "--out", str(out)]) == 0
    stdout = capsys.readouterr()
    lines = [ln for ln in stdout.out.splitlines() if ln.startswith("trial ")]
    assert len(lines) == 12 and all(len(ln) < 250 for ln in lines)
    assert "finished with value" not in stdout.out + stdout.err  # not Optuna's INFO dict per trial
    study = _study(out / "study.db")
    for line, trial in zip(lines, study.trials):
        assert line.split()[1] == str(trial.number)
        kind = "duplicate" if "nasplug:duplicate_of" in trial.user_attrs else "evaluated"
        assert line.split()[2] == kind and trial.user_attrs["nasplug:arch"] in line
    tries = sum(t.user_attrs["nasplug:filter_tries"] - 1 for t in study.trials)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_rejected_proposals"] == tries and summary["n_rejected"] == summary["n_pruned"] == 0
    assert f"filter dag_box: {tries} proposals rejected before they became trials (never" in stdout.out
    assert "12 trials: " in stdout.out and "duplicates (same network" in stdout.out
