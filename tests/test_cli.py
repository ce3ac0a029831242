"""The ``nasplug`` command: output of the worked example, and one-line errors with exit status 2."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from nasplug import search_spaces
from nasplug.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nasplug.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_describe_json_worked_example(capsys):
    assert main(["describe", "2_21_112", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_paths"] == 4
    assert info["effective_depth"] == pytest.approx(1.25)
    assert info["effective_width"] == pytest.approx(2.4)
    assert info["depth_histogram"] == [1, 1, 2]


def test_describe_text_and_naslib_tuple(capsys):
    assert main(["describe", "(4, 3, 3, 3, 2, 3)"]) == 0
    out = capsys.readouterr().out
    assert "|avg_pool_3x3~0|+|nor_conv_1x1~0|nor_conv_1x1~1|" in out
    assert "effective_depth" in out and "scores:" in out


@pytest.mark.parametrize(
    "arch, fragment",
    [
        ("|nor_conv_3x3~0|+|bogus~0|nor_conv_3x3~1|", "unknown op 'bogus'"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~4|", "position 33"),
        ("2_3", "position 2"),
        ("", "empty"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(arch, fragment):
    proc = run_cli("describe", arch)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0]


def test_help_version_spaces_scorers():
    assert run_cli("--help").returncode == 0
    version = run_cli("--version")
    assert version.returncode == 0 and "nasplug" in version.stdout
    spaces = run_cli("spaces").stdout
    assert "15,625" in spaces and "59,049" in spaces
    assert "effective_depth" in run_cli("scorers").stdout


def test_rank_topology_whole_space(tmp_path, capsys):
    assert main(["rank", "--space", "nb201", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "keeps 6,256 of 15,625" in out
    lines = (tmp_path / "scores.csv").read_text().splitlines()
    assert len(lines) == 15_626
    assert lines[0].startswith("index,arch,ntk_lambda_min,live_param_cost")


def test_rank_recommended_aggregate(tmp_path, capsys):
    """``--aggregate recommended`` is the documented ensemble: its column equals rank_aggregate of the
    three members over the space, and it sorts the listing."""
    from nasplug import scorers
    from nasplug.ranking import rank_aggregate

    assert main(["rank", "--scorers", "effective_depth", "--filters", "", "--aggregate", "recommended",
                 "--out", str(tmp_path), "--top", "3"]) == 0
    assert "top 3 by rank_aggregate" in capsys.readouterr().out
    with (tmp_path / "scores.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    batch = search_spaces.get("nb201").batch()
    members = ("ntk_lambda_min", "effective_depth", "nngp_inverse_condition")
    values = {n: scorers.get(n).score_many(batch) for n in members}
    expected = rank_aggregate(values, dict.fromkeys(members, 1.0))
    np.testing.assert_allclose([float(r["rank_aggregate"]) for r in rows], expected, rtol=1e-12)


def test_rank_too_large_space_needs_sample():
    proc = run_cli("rank", "--space", "dag:12")
    assert proc.returncode == 2 and "--sample" in proc.stderr


def test_scorers_lists_slow_per_cell_baselines():
    from nasplug import scorers

    fast = scorers.available("scorer", include_slow=False)
    assert "effective_depth" in fast and "naswot" not in fast
    assert scorers.is_slow("naswot") and not scorers.is_slow("nngp_lambda_min")
    assert "[slow" in run_cli("scorers").stdout


def test_every_option_with_a_value_states_its_default():
    import argparse

    from nasplug.cli import build_parser

    def parsers(parser, prefix="nasplug"):
        yield prefix, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from parsers(sub, f"{prefix} {name}")

    missing = []
    for prog, parser in parsers(build_parser()):
        for action in parser._actions:
            takes_value = action.option_strings and action.nargs != 0 and not action.required
            if takes_value and "default" not in (action.help or ""):
                missing.append(f"{prog} {action.option_strings[-1]}")
    assert missing == []


def test_bad_option_values_are_one_line():
    proc = run_cli("search", "--sampler", "nope")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("nasplug search: error: argument --sampler: invalid choice")
