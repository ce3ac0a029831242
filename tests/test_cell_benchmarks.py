"""Benchmarks of NB101 / NB301 cells: the loaders (official NB101 record file written byte by byte here,
NASLib's pickles and zero-cost JSON, generic tables), ``nasplug rank --benchmark`` on the shared
samples checked against independent computations, one-line errors, and the HTML report."""

from __future__ import annotations

import base64
import csv
import json
import pickle
import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
from scipy import stats

from nasplug import ArchGraph
from nasplug.cli import main
from nasplug.errors import DataError
from nasplug.graph import darts
from nasplug.nasbench import load_benchmark

C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"


# ---------------------------------------------------------------------- the official NB101 records
def masked(data: bytes) -> int:
    """TFRecord's masked CRC-32C, written out here (TensorFlow's crc32c.h)."""
    import google_crc32c

    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def double(field: int, value: float) -> bytes:
    return varint(field << 3 | 1) + struct.pack("<d", value)


def model_metrics(params: int, final: tuple[float, float, float, float]) -> bytes:
    """``nasbench.ModelMetrics`` encoded by hand from its .proto (field numbers, wire types)."""
    def evaluation(epoch, train, valid, test, seconds):
        body = (double(1, epoch) + double(2, seconds) + double(3, train) + double(4, valid) + double(5, test)
                + varint(6 << 3 | 2) + varint(4) + b"ckpt")
        return varint(1 << 3 | 2) + varint(len(body)) + body

    train, valid, test, seconds = final
    return (evaluation(0.0, 0.1, 0.1, 0.1, 0.0) + evaluation(54.0, 0.8, 0.8, 0.8, seconds / 2)
            + evaluation(108.0, train, valid, test, seconds) + varint(2 << 3 | 0) + varint(params)
            + double(3, seconds + 5))


def record(payload: bytes) -> bytes:
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", masked(length)) + payload + struct.pack("<I", masked(payload))


def nb101_record(module_hash, epochs, matrix, ops, params, final) -> bytes:
    adjacency = "".join(str(v) for row in matrix for v in row)
    payload = json.dumps([module_hash, epochs, adjacency, ",".join(ops),
                          base64.b64encode(model_metrics(params, final)).decode()])
    return record(payload.encode())


CELL_A = ([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", C3, "output"])
CELL_B = ([[0, 1], [0, 0]], ["input", "output"])


@pytest.fixture()
def nb101_file(tmp_path):
    pytest.importorskip("google_crc32c")
    runs = [nb101_record("a" * 32, 108, *CELL_A, 1_000_000, (1.0, 0.90, 0.89, 100.0)),
            nb101_record("a" * 32, 108, *CELL_A, 1_000_000, (1.0, 0.92, 0.91, 110.0)),
            nb101_record("a" * 32, 36, *CELL_A, 1_000_000, (0.5, 0.50, 0.50, 10.0)),  # another budget
            nb101_record("b" * 32, 108, *CELL_B, 882_570, (0.9, 0.83, 0.84, 50.0))]
    path = tmp_path / "nasbench_only108.tfrecord"
    path.write_bytes(b"".join(runs))
    return path


def test_crc32c_check_value():
    import google_crc32c

    assert google_crc32c.value(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_official_nb101_records_give_repeat_means(nb101_file):
    table = load_benchmark(nb101_file)
    assert table.benchmark == "nb101" and len(table) == 2
    a = table.archs.index(str(ArchGraph.from_nb101(*CELL_A)))
    b = table.archs.index(str(ArchGraph.from_nb101(*CELL_B)))
    np.testing.assert_allclose(table.column("cifar10", "valid_accuracy")[[a, b]], [91.0, 83.0])
    np.testing.assert_allclose(table.column("cifar10", "test_accuracy")[[a, b]], [90.0, 84.0])
    np.testing.assert_allclose(table.column("cifar10", "training_time")[[a, b]], [105.0, 50.0])
    np.testing.assert_array_equal(table.column("cifar10", "params")[[a, b]], [1_000_000, 882_570])
    assert table.default_metric == "test_accuracy"


def test_bad_record_files(nb101_file, tmp_path):
    data = nb101_file.read_bytes()
    cases = {"truncated.tfrecord": (data[:-7], "truncated"),
             "flipped.tfrecord": (data[:40] + bytes([data[40] ^ 1]) + data[41:], "CRC mismatch"),
             "foreign.tfrecord": (record(b'{"not": "nasbench"}'), "not a NAS-Bench-101 record")}
    for name, (content, fragment) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(DataError, match=fragment):
            load_benchmark(path)


# ---------------------------------------------------------------------- NASLib's files
def test_naslib_nb101_pickle(tmp_path):
    runs = [{"final_test_accuracy": t, "final_validation_accuracy": v, "final_train_accuracy": 1.0,
             "final_training_time": 10.0} for t, v in ((0.9, 0.8), (0.92, 0.84), (0.94, 0.86))]
    data = {"h1": ({"module_adjacency": np.array(CELL_A[0]), "module_operations": CELL_A[1],
                    "trainable_parameters": 123}, {108: runs})}
    path = tmp_path / "nasbench_only108.pkl"
    path.write_bytes(pickle.dumps(data))
    table = load_benchmark(path)
    assert table.benchmark == "nb101" and table.archs == [str(ArchGraph.from_nb101(*CELL_A))]
    np.testing.assert_allclose(table.column("cifar10")[0], 92.0)
    np.testing.assert_allclose(table.column("cifar10", "valid_accuracy")[0], 500 / 6)


def test_naslib_nb301_pickle_and_zero_cost_json(tmp_path):
    compact = ((((0, 3), (1, 3), (0, 2), (1, 5), (2, 4), (0, 0), (3, 1), (4, 6))),
               ((0, 0), (1, 0), (2, 2), (1, 0), (0, 1), (2, 2), (2, 2), (1, 1)))
    path = tmp_path / "nb301_full_training.pickle"
    path.write_bytes(pickle.dumps({compact: {"val_accuracies": [50.0, 93.5], "runtime": 7.0}}))
    table = load_benchmark(path)
    expected = str(ArchGraph.parse(compact).to_darts())
    assert table.benchmark == "nb301" and table.archs == [expected]
    assert table.column("cifar10", "valid_accuracy")[0] == 93.5
    zc = {"nasbench301": {"cifar10": {str([list(c) for c in compact]): {
        "val_accuracy": 93.0, "params": 1.5, "synflow": 12.0, "flops": 200.0}}}}
    path = tmp_path / "zc_nasbench301.json"
    path.write_text(json.dumps(zc))
    table = load_benchmark(path)
    assert table.archs == [expected] and table.column("cifar10", "valid_accuracy")[0] == 93.0
    assert table.column("cifar10", "synflow")[0] == 12.0
    # the later file layout: {dataset: {key: {proxy: {"score", "time"}}}}
    later = {"cifar10": {str(compact): {"id": 3, "val_accuracy": 92.0,
                                        "synflow": {"score": 4.0, "time": 1.0}}}}
    path.write_text(json.dumps(later))
    assert load_benchmark(path).column("cifar10", "synflow")[0] == 4.0


def test_generic_tables_of_cells(tmp_path):
    rows = [{"arch": "2_21_112", "acc": 1.0},
            {"arch": "|nor_conv_3x3~0|+|none~0|skip_connect~1|", "acc": 2.0}]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(rows))
    table = load_benchmark(path)
    assert table.benchmark == "cells" and table.datasets == ["unspecified"]
    assert table.labelled(["cifar10"]).column("cifar10", "acc").tolist() == [1.0, 2.0]
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"normal": [json.dumps(darts.parse_genotype(darts.genotype(
        [("skip_connect", 0)] * 8, [("skip_connect", 1)] * 8)).normal)] * 2,
        "reduce": [json.dumps([["sep_conv_3x3", 0]] * 8)] * 2, "dataset": ["cifar10", "cifar100"],
        "val_accuracy": [90.0, 70.0]})
    frame.to_parquet(tmp_path / "t.parquet")
    table = load_benchmark(tmp_path / "t.parquet")
    assert table.benchmark == "nb301" and table.datasets == ["cifar10", "cifar100"]
    assert np.isnan(table.column("cifar10", "valid_accuracy")[1])


@pytest.mark.parametrize("rows, fragment", [
    ([["matrix", "ops", "acc"], ["[[0, 1], [1, 0]]", '["input", "output"]', "1"]],
     "row 0: the NB101 matrix must be strictly upper triangular"),
    ([["matrix", "ops", "acc"], ["[[0, 1], [0, 0]]", '["input", "output"]', "x"]], "row 0, column acc: 'x'"),
    ([["matrix", "ops", "acc"], ["[[0, 1], [0, 0]]", '["input", "conv5x5", "output"]', "1"]], "2×2 matrix"),
    ([["normal", "reduce", "acc"], ["[]", "[]", "1"]], "row 0: the normal cell has 0"),
    ([["normal", "reduce", "acc"], ['[["sep_conv_3x3", 4]]' , "[]", "1"]], "the normal cell has 1"),
    ([["foo", "acc"], ["1", "2"]], "unrecognised columns"),
    ([["arch", "acc"], ["2_21_112", "1"], ["|nor_conv_9x9~0|", "2"]], "row 1: unknown op"),
])
def test_bad_tables_are_one_line_cli_errors(tmp_path, rows, fragment):
    path = tmp_path / "bad.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    proc = subprocess.run([sys.executable, "-m", "nasplug.cli", "rank", "--benchmark", str(path), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and fragment in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- rank --benchmark
def report_row(report: str, name: str) -> list[str]:
    return next(line for line in report.splitlines() if line.startswith(f"| `{name}`")).split("|")


def rank_sample(path, out, scorers: str) -> int:
    return main(["rank", "--benchmark", str(path), "--dataset", "c10", "--scorers", scorers, "--filters",
                 "dag_box", "--out", str(out), "--search-seeds", "50", "--no-progress"])


@pytest.mark.parametrize("which", ["nb101", "nb301"])
def test_rank_on_the_shared_samples(which, nb101_rows, nb301_rows, nb101_csv, nb301_csv, tmp_path, capsys):
    rows, path = (nb101_rows, nb101_csv) if which == "nb101" else (nb301_rows, nb301_csv)
    out = tmp_path / "rep"
    code = rank_sample(path, out, "effective_depth,num_paths")
    assert code == 0
    assert f"scored 250 cells of {which}" in capsys.readouterr().out
    for name in ("report.md", "report.html", "scores.csv", "scatter_C10.png", "dmap_C10.png",
                 "prefilter_C10.png"):
        assert (out / name).stat().st_size > 0, name
    # ρ of d̄ vs the recorded accuracy, from the raw rows through per-cell ArchGraphs
    if which == "nb101":
        archs = [ArchGraph.from_nb101(json.loads(r["matrix"]), json.loads(r["ops"])) for r in rows]
    else:
        archs = [ArchGraph.from_darts({"normal": json.loads(r["normal"]), "reduce": json.loads(r["reduce"])})
                 for r in rows]
    acc = np.array([float(r["val_accuracy"]) for r in rows])
    rho = stats.spearmanr([a.path_stats().effective_depth for a in archs], acc).statistic
    report = (out / "report.md").read_text()
    assert report_row(report, "effective_depth")[2].strip() == f"{rho:.3f}"
    with (out / "scores.csv").open() as fh:
        lines = list(csv.DictReader(fh))
    assert [float(x["cifar10_valid_accuracy"]) for x in lines] == pytest.approx(acc.tolist())


@pytest.mark.slow
@pytest.mark.parametrize("which", ["nb101", "nb301"])
def test_rank_num_params_baseline_on_the_samples(which, nb101_rows, nb301_rows, nb101_csv, nb301_csv,
                                                 tmp_path):
    rows, path = (nb101_rows, nb101_csv) if which == "nb101" else (nb301_rows, nb301_csv)
    assert rank_sample(path, tmp_path, "num_params,flops") == 0
    with (tmp_path / "scores.csv").open() as fh:
        lines = list(csv.DictReader(fh))
    params = np.array([float(x["num_params"]) for x in lines])
    recorded = np.array([round(float(r["params_m"]) * 1e6) for r in rows])
    if which == "nb101":  # the network the benchmark trained: the recorded counts
        np.testing.assert_array_equal(params, recorded)
    else:  # NB301's training network: NASLib's count + the affine BN parameters of the cell ops
        assert (params > recorded).all() and stats.spearmanr(params, recorded).statistic > 0.999


# ---------------------------------------------------------------------- the HTML report
class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_html_report_is_rendered_markdown(tmp_path):
    from nasplug.markup import markdown_to_html

    page = _Page()
    page.feed(markdown_to_html("# Title <x>\n\nSome **bold** and `code` with <script>alert(1)</script>.\n\n"
                               "| a | b |\n| --- | --- |\n| `x` | 1 |\n\n![plot](p.png)\n", "a <title>"))
    tags = [t for t, _ in page.tags]
    assert {"table", "th", "td", "strong", "code", "img", "h1", "title"} <= set(tags)
    assert "script" not in tags  # raw HTML is escaped, not passed through
    text = "".join(page.text)
    assert "**" not in text and "`" not in text and "a <title>" in text
    assert ("img", {"src": "p.png", "alt": "plot"}) in page.tags


def test_html_report_in_a_headless_browser(nb101_csv, tmp_path):
    """Chromium renders the report (skipped without it: `apt-get install chromium`); the screenshot
    is a real page, not a blank one, and the images load."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed")
    out = tmp_path / "rep"
    assert main(["rank", "--benchmark", str(nb101_csv), "--dataset", "c10", "--scorers", "effective_depth",
                 "--out", str(out), "--search-seeds", "20", "--no-progress"]) == 0
    shot = tmp_path / "shot.png"
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          (out / "report.html").as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "<table>" in dom and "**" not in dom
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=1200,1600",
                    (out / "report.html").as_uri()], capture_output=True, timeout=120, check=True)
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[0] >= 1000 and pixels[..., :3].std() > 0.05
