"""Bad input, by kind, on every command and library entry point: one line naming the argument and
its allowed range, exit status 2, nothing written. Also outputs checked before any work, complete
NB201 strings, encodings that say when they do not apply, closed pipes, and spaces beyond 2^63."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nasplug import ArchError, ArchGraph, NasplugError, search_spaces
from nasplug.cli import main

ROOT = Path(__file__).resolve().parents[1]


def one_line_exit_2(argv, capsys) -> str:
    """Run the CLI in-process; the error must be one line on stderr with exit status 2."""
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


# ---------------------------------------------------------------------- numbers and choices, CLI
@pytest.mark.parametrize("argv, fragment", [
    (["train", "2_21_112", "--epochs", "0"], "--epochs: value must be an integer >= 1, got 0"),
    (["train", "2_21_112", "--width", "0"], "--width: value must be an integer >= 1, got 0"),
    (["train", "2_21_112", "--width", "-5"], "--width: value must be an integer >= 1, got -5"),
    (["train", "2_21_112", "--batch-size", "0"], "--batch-size: value must be an integer >= 1"),
    (["train", "2_21_112", "--weight-decay", "-1"], "--weight-decay: value must be a number >= 0"),
    (["train", "2_21_112", "--momentum", "1"], "--momentum: value must be a number in [0, 1)"),
    (["train", "2_21_112", "--lr", "0"], "--lr: value must be a number in (0, "),
    (["train", "2_21_112", "--base-lr", "nan"], "--base-lr: value must be a number in (0, "),
    (["train", "2_21_112", "--warmup-epochs", "-0.5"], "--warmup-epochs: value must be a number >= 0"),
    (["train", "2_21_112", "--device", "tpu"], "--device: device must be auto, cpu, cuda, cuda:N or mps"),
    (["train", "2_21_112", "--epochs", "two"], "--epochs: expected an integer, got 'two'"),
    (["train", "2_21_112", "--model", "rnn"], "--model: invalid choice: 'rnn'"),
    (["search", "--n-trials", "0"], "--n-trials: value must be an integer >= 1"),
    (["search", "--epochs", "0"], "--epochs: value must be an integer >= 1"),
    (["search", "--width", "0"], "--width: value must be an integer >= 1"),
    (["search", "--jobs", "0"], "--jobs: value must be an integer >= 1"),
    (["search", "--timeout", "0"], "--timeout: value must be a number > 0"),
    (["search", "--heartbeat", "0"], "--heartbeat: value must be an integer >= 1"),
    (["search", "--max-tries", "0"], "--max-tries: value must be an integer >= 1"),
    (["search", "--final-seeds", "0"], "--final-seeds: value must be an integer >= 1"),
    (["search", "--final-top", "-1"], "--final-top: value must be an integer >= 0"),
    (["search", "--base-lr", "-0.1"], "--base-lr: value must be a number in (0, "),
    (["search", "--device", "gpu"], "--device: device must be auto"),
    (["search", "--top", "0"], "--top: value must be an integer >= 1"),
    (["rank", "--search-seeds", "0"], "--search-seeds: value must be an integer >= 1"),
    (["rank", "--sample", "0"], "--sample: value must be an integer >= 1"),
    (["rank", "--top", "-1"], "--top: value must be an integer >= 0"),
    # numbers too large for what consumes them: float32 optimizers, 64-bit seeds, processes
    (["train", "2_21_112", "--lr", "1e300"], "--lr: value must be a number in (0, 3.40282e+38]"),
    (["search", "--base-lr", "1e300"], "--base-lr: value must be a number in (0, 3.40282e+38]"),
    (["retrain", "2_21_112", "--lr", "1e39"], "--lr: value must be a number in (0, 3.40282e+38]"),
    (["train", "2_21_112", "--seed", "99999999999999999999999"],
     "--seed: value must be an integer in [0, 4294967295]"),
    (["search", "--seed", "-1"], "--seed: value must be an integer in [0, 4294967295]"),
    (["rerank", "--benchmark", "x.csv", "--seeds", "0", "4294967296"],
     "--seeds: value must be an integer in"),
    (["train", "2_21_112", "--warmup-epochs", "1e9", "--epochs", "1"],
     "warmup_epochs must be a number in [0, 1]"),
    (["search", "--jobs", "100000"], "jobs must be at most"),
    (["search", "--study-name", " "], "the study name is empty"),
    (["rank", "--aggregate", "effective_depth:0", "--sample", "5"], "must be finite and non-zero"),
    (["rank", "--aggregate", "effective_depth:nan", "--sample", "5"], "must be finite and non-zero"),
])
def test_bad_numbers_and_choices_are_one_line_naming_the_option(argv, fragment, capsys):
    assert fragment in one_line_exit_2(argv, capsys)


@pytest.mark.parametrize("argv, fragment", [
    (["rank", "--scorers", "dag_box"], "'dag_box' is a filter, not a scorer"),
    (["rank", "--filters", "num_paths"], "'num_paths' is a scorer, not a filter"),
    (["search", "--sampler", "cmaes"], "CMA-ES would sample at random"),
    (["search", "--filter", "effective_depth"], "'effective_depth' is a scorer, not a filter"),
    (["search", "--direction", "minimize"], "--direction is for --objective only"),
])
def test_wrong_kind_of_name_is_one_line(argv, fragment, capsys, tmp_path):
    assert fragment in one_line_exit_2([*argv, "--out", str(tmp_path / "o")] if argv[0] == "search"
                                       else argv, capsys)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------- the same checks, library
def test_library_entry_points_check_their_arguments():
    from nasplug.data import load_digits
    from nasplug.models import build_cnn, build_mlp, build_nb201
    from nasplug.nasbench.analysis import random_search, score_guided_search
    from nasplug.ranking import score_space
    from nasplug.search import SearchConfig
    from nasplug.train import resolve_device, train, train_arch

    digits = load_digits()
    net = build_mlp("2", 64, 8, 10)
    cases = [
        (lambda: build_mlp("2_21_112", 64, 0, 10), "width must be an integer >= 1, got 0"),
        (lambda: build_mlp("2_21_112", 64, -5, 10), "width must be an integer >= 1, got -5"),
        (lambda: build_cnn("2_21_112", 1, 0, 10), "channels must be an integer >= 1"),
        (lambda: build_cnn("2_21_112", 1, 8, 10, kernel_size=2), "kernel_size must be odd"),
        (lambda: build_nb201((4, 3, 3, 3, 2, 3), C=0), "C must be an integer >= 1"),
        (lambda: train_arch("2_21_112", digits, epochs=0), "epochs must be an integer >= 1, got 0"),
        (lambda: train_arch("2_21_112", digits, width=0), "width must be an integer >= 1, got 0"),
        (lambda: train_arch("2_21_112", digits, base_lr=0.0), "base_lr must be a number > 0"),
        (lambda: train_arch("2_21_112", digits, model="rnn"), "model must be one of mlp, cnn, nb201"),
        (lambda: train(net, digits, batch_size=0), "batch_size must be an integer >= 1"),
        (lambda: train(net, digits, weight_decay=-1), "weight_decay must be a number >= 0"),
        (lambda: train(net, digits, momentum=1.5), "momentum must be a number in [0, 1)"),
        (lambda: resolve_device("tpu"), "device must be auto, cpu, cuda, cuda:N or mps"),
        (lambda: load_digits(valid_fraction=1.0), "valid_fraction must be a number in [0, 1)"),
        (lambda: digits.split("dev"), "split must be one of train, valid, test"),
        (lambda: SearchConfig(n_trials=0), "n_trials must be an integer >= 1, got 0"),
        (lambda: SearchConfig(width=0), "width must be an integer >= 1, got 0"),
        (lambda: SearchConfig(sampler="cmaes"), "CMA-ES would sample at random"),
        (lambda: SearchConfig(device="tpu"), "device must be auto"),
        (lambda: SearchConfig(timeout=-1), "timeout must be a number > 0"),
        (lambda: SearchConfig(seed=2**64), "seed must be an integer in [0, 4294967295]"),
        (lambda: SearchConfig(objective="table", benchmark="no/such.csv"), "no such file"),
        (lambda: train(net, digits, lr=1e300), "lr must be a number in (0, 3.40282e+38]"),
        (lambda: train(net, digits, epochs=2, warmup_epochs=3), "warmup_epochs must be a number in [0, 2]"),
        (lambda: random_search(np.arange(10.0), [1], seeds=0), "seeds must be an integer >= 1, got 0"),
        (lambda: score_guided_search(np.arange(10.0), np.arange(10.0), [0]), "samples must be an integer"),
        (lambda: score_space(search_spaces.get("nb201"), ["num_paths"], sample=0), "sample must be"),
    ]
    for call, fragment in cases:
        with pytest.raises(NasplugError) as info:
            call()
        assert fragment in str(info.value), (fragment, str(info.value))


def test_train_epochs_zero_never_reports_nan_as_ok(capsys):
    # the symptom: `train --epochs 0` printed "status: ok, test_acc nan" with exit 0
    assert "--epochs" in one_line_exit_2(["train", "2_21_112", "--epochs", "0"], capsys)


def test_search_with_zero_epochs_fails_before_any_trial(tmp_path, capsys):
    # the symptom: every trial failed as "diverged"; now nothing starts and nothing is written
    one_line_exit_2(["search", "--epochs", "0", "--out", str(tmp_path / "o")], capsys)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------- outputs, checked first
@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


def test_search_checks_out_and_storage_before_any_work(a_file, tmp_path, capsys):
    custom = ["search", "--objective", "math:fabs", "--n-trials", "1", "--quiet"]
    msg = one_line_exit_2([*custom, "--out", str(a_file / "x")], capsys)
    assert "output folder (--out)" in msg and "is a file, not a folder" in msg
    # --storage elsewhere: the bad --out is still found before the study is created
    db = tmp_path / "elsewhere.db"
    one_line_exit_2([*custom, "--storage", str(db), "--out", str(a_file / "x")], capsys)
    assert not db.exists()
    assert "journal file" in one_line_exit_2([*custom, "--storage", f"journal:{a_file}/j.log",
                                              "--out", str(tmp_path / "o")], capsys)
    assert "storage file" in one_line_exit_2([*custom, "--storage", str(a_file / "s.db"),
                                              "--out", str(tmp_path / "o")], capsys)
    for memory in ("sqlite://", "sqlite:///:memory:"):
        assert "in-memory database" in one_line_exit_2([*custom, "--storage", memory,
                                                        "--out", str(tmp_path / "o")], capsys)
    assert "exists and is not a folder" in one_line_exit_2([*custom, "--out", str(a_file)], capsys)
    # a journal: file that is not a journal is refused before Optuna appends a record to it
    text = tmp_path / "notes.txt"
    text.write_text("hi\n")
    assert "is not an Optuna journal" in one_line_exit_2([*custom, "--storage", f"journal:{text}",
                                                          "--out", str(tmp_path / "o")], capsys)
    assert text.read_text() == "hi\n"


def test_rank_and_bench_check_outputs_before_any_work(a_file, nb201_csv, tmp_path, capsys):
    assert "is a file, not a folder" in one_line_exit_2(["rank", "--out", str(a_file / "r")], capsys)
    msg = one_line_exit_2(["bench", "convert", str(nb201_csv), "-o", str(a_file / "t.csv")], capsys)
    assert "table file" in msg and "is a file, not a folder" in msg
    assert ".csv or .parquet" in one_line_exit_2(["bench", "convert", str(nb201_csv), "-o",
                                                  str(tmp_path / "t.txt")], capsys)
    assert not (tmp_path / "t.txt").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_where_nothing_can_be_created_is_refused_even_for_root(capsys):
    """Permission bits say yes to root, and /proc takes no new file: only trying tells."""
    from nasplug.checks import writable_dir, writable_file

    with pytest.raises(NasplugError, match="cannot be created: /proc is not writable"):
        writable_dir("/proc/nasplug-out")
    with pytest.raises(NasplugError, match="cannot be created: /proc is not writable"):
        writable_file("/proc/nasplug-table.csv")
    for argv in (["search", "--n-trials", "1"], ["retrain", "2_21_112"], ["rank", "--space", "nb201"]):
        assert "cannot be created" in one_line_exit_2([*argv, "--out", "/proc/nasplug-out"], capsys)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_this_machine_lacks_is_refused_before_the_study_is_created(tmp_path, capsys):
    out = tmp_path / "o"
    assert "CUDA is not available" in one_line_exit_2(["search", "--device", "cuda", "--n-trials", "1",
                                                       "--out", str(out)], capsys)
    assert not out.exists()


def test_out_of_memory_is_one_line(capsys):
    """A network too large to allocate: one line naming what to shrink, not torch's traceback."""
    # 64 x 10^12 float32 weights: 256 TB, beyond any machine's address space (no overcommit luck)
    msg = one_line_exit_2(["train", "2_21_112", "--width", "1000000000000", "--epochs", "1"], capsys)
    assert "out of memory" in msg and "smaller network" in msg


def test_unwritable_folder_is_refused(tmp_path):
    from nasplug.checks import writable_dir, writable_file

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: nothing to test here
            pytest.skip("running as root")
        with pytest.raises(NasplugError, match="not writable"):
            writable_dir(locked / "sub", "output folder")
        with pytest.raises(NasplugError, match="not writable"):
            writable_file(locked / "t.csv", "table file")
    finally:
        locked.chmod(0o700)


# ---------------------------------------------------------------------- encodings
@pytest.mark.parametrize("text, fragment", [
    ("|nor_conv_3x3~0|+|skip_connect~0|+|skip_connect~0|none~1|skip_connect~2|",
     "no token for source node 1"),
    ("|nor_conv_3x3~0|+|skip_connect~1|+|skip_connect~0|none~1|skip_connect~2|",
     "no token for source node 0"),
    ("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~2|", "no token for source nodes 0, 1"),
])
def test_incomplete_nb201_strings_are_errors_not_silent_none_edges(text, fragment, capsys):
    with pytest.raises(ArchError, match=fragment):
        ArchGraph.parse(text)
    assert fragment in one_line_exit_2(["describe", text], capsys)


def test_extra_groups_make_a_larger_cell_and_describe_says_so(capsys):
    five = ("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|"
            "+|none~0|none~1|none~2|skip_connect~3|")
    arch = ArchGraph.parse(five)
    assert arch.n_nodes == 5 and arch.to_nb201() == five  # the notation of a general DAG cell
    assert arch not in search_spaces.get("nb201")
    assert main(["describe", five]) == 0
    out = capsys.readouterr().out
    assert "nb201                n/a (not a NAS-Bench-201 cell: 5 nodes, NAS-Bench-201 cells have 4)" in out
    assert f"notation             {five}" in out


def test_describe_prints_nb201_only_for_nb201_cells(capsys):
    from nasplug.commands.describe import encodings

    info = encodings(ArchGraph.parse("2_21_112"))
    assert info["nb201"] is None and info["naslib"] is None and info["dag_code"] == "2_21_112"
    assert main(["describe", "2_21_112"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("nb201"))
    assert "linear" not in line.split("(")[0] and "op linear not in NAS-Bench-201's vocabulary" in line
    info = encodings(ArchGraph.parse("(4, 3, 3, 3, 2, 3)"))
    assert info["naslib"] == [4, 3, 3, 3, 2, 3] and info["dag_code"] is None
    assert ArchGraph.parse(info["nb201"]) == ArchGraph.parse((4, 3, 3, 3, 2, 3))


# ---------------------------------------------------------------------- pipes
def test_closed_pipe_ends_quietly():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "nasplug.cli", "rank", "--top", "15625", "--scorers",
                             "num_paths", "--filters", ""], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=ROOT)
    proc.stdout.readline()  # what `| head -1` does: read a line, then close the pipe
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err


# ---------------------------------------------------------------------- spaces beyond 2^63 cells
@pytest.mark.parametrize("filter_name", ["dag_box", "none", *(pytest.param(f, marks=pytest.mark.slow)
                                                               for f in ("dag_box_authors", "top_fraction"))])
def test_spaces_beyond_int64_search_and_rank_with_every_filter(filter_name, tmp_path, capsys):
    space = search_spaces.get("dag:10")
    assert space.size > 2**63
    code = main(["search", "--space", "dag:10", "--objective", "nasplug_width_objective:width",
                 "--n-trials", "3", "--filter", filter_name, "--out", str(tmp_path / "t"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    code = main(["rank", "--space", "dag:10", "--sample", "300", "--scorers", "num_paths",
                 "--filters", "" if filter_name == "none" else filter_name, "--out", str(tmp_path / "r")])
    assert code == 0
    rows = (tmp_path / "r" / "scores.csv").read_text().splitlines()[1:]
    assert len(rows) == 300  # 300 distinct draws in 3^45 cells
    for row in rows[:20]:  # the printed index is the cell's exact index
        index, arch = row.split(",")[:2]
        assert space.encode(arch) == int(index) and int(index) < space.size


@pytest.fixture(autouse=True)
def width_objective(tmp_path, monkeypatch):
    (tmp_path / "nasplug_width_objective.py").write_text(
        "def width(arch):\n    return arch.path_stats().effective_width\n")
    monkeypatch.syspath_prepend(str(tmp_path))
