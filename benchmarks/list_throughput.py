"""Parsing + scoring lists of cells end to end, against the [C22] authors' per-string functions.

A user holding a benchmark table has cells as *strings* (or specs), not as nasplug's space indices.
This script times, in one process on the same inputs:

* NB201, all 15,625 cell strings: the [C22] authors' ``effective_depth_width_201(arch_str)``
  (VITA-Group/architecture_convergence, ``nas-without-training/search.py``, MIT licence) called per
  string, against nasplug's batched path (``as_batch(strings)`` → one dynamic programme giving d̄
  and m̄), nasplug's per-cell path (``ArchGraph.parse`` + ``path_stats`` per string) and scoring from
  the space index; the values are checked equal to the authors' for every cell, and so is the
  number of cells in their box (``pre_is_bad``'s NB201 ranges);
* 10^5 NB101 cells (``{"matrix", "ops"}`` specs) and 10^5 DARTS genotypes (DARTS's printed
  strings), batched vs per cell; for DARTS also the authors' ``effective_depth_width`` on the
  normal cell as ``pre_is_bad`` builds it (their convention differs from nasplug's faithful DAG:
  no preprocessing, a separable conv counts once; so only the time is compared).

The authors' code is never copied into this repository: the script reads ``search.py`` at run time
from a local git snapshot of their repository (``--c22-repo``, a bare or normal git directory, at the
pinned commit), keeps only the four numpy functions it needs (``search.py`` parses arguments and
loads data sets at import time, so it cannot be imported), and runs them unchanged.

Run: ``.venv/bin/python benchmarks/list_throughput.py --c22-repo PATH/TO/architecture_convergence.git``
(or set ``NASPLUG_C22_REPO``). Prints a table and writes docs/list_throughput.md.
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nasplug import ArchGraph, search_spaces
from nasplug.graph import as_batch, darts, nb101
from nasplug.scorers.topology import BoxFilter, topology_arrays

DOC = Path(__file__).resolve().parents[1] / "docs" / "list_throughput.md"
C22_COMMIT = "f752b06aea8708f6ba5ebf1c8d8a88e99d2a27d3"
C22_FILE = "nas-without-training/search.py"
C22_FUNCTIONS = ("edge2value", "find_all_paths", "effective_depth_width", "effective_depth_width_201")
C22_BOX_NB201 = ((0.99, 2.51), (0.99, 3.01))  # search.py: ranges = [0.99, 2.51, 0.99, 3.01]


def load_c22(repo: str, commit: str = C22_COMMIT) -> dict[str, Callable]:
    """The authors' functions, read from ``repo`` at ``commit`` and executed in a fresh namespace."""
    try:
        source = subprocess.run(["git", f"--git-dir={repo}", "show", f"{commit}:{C22_FILE}"], check=True,
                                capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or err
        sys.exit(f"list_throughput: cannot read {C22_FILE} at {commit[:8]} from {repo}: {detail}")
    tree = ast.parse(source)
    keep = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in C22_FUNCTIONS]
    missing = set(C22_FUNCTIONS) - {node.name for node in keep}
    if missing:
        sys.exit(f"list_throughput: {C22_FILE} has no {', '.join(sorted(missing))}")
    namespace: dict = {"np": np}
    exec(compile(ast.Module(body=keep, type_ignores=[]), f"{repo}:{C22_FILE}", "exec"), namespace)  # noqa: S102
    return {name: namespace[name] for name in C22_FUNCTIONS}


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def paired(baseline: Callable[[], object], ours: Callable[[], object],
           repeats: int) -> tuple[float, float, float, object, object]:
    """Time the two back to back ``repeats`` times: median times, the median of the per-pair
    ratios (robust to the load of a shared machine changing between pairs), and the results."""
    pairs = []
    for _ in range(repeats):
        t_base, v_base = timed(baseline)
        t_ours, v_ours = timed(ours)
        pairs.append((t_base, t_ours))
    base, mine = np.array(pairs).T
    return float(np.median(base)), float(np.median(mine)), float(np.median(base / mine)), v_base, v_ours


def scaled(fn: Callable[[list], object], items: list, subset: int) -> float:
    """Time ``fn`` on the first ``subset`` items once and scale to all of them."""
    start = time.perf_counter()
    fn(items[:subset])
    return (time.perf_counter() - start) * len(items) / subset


# ---------------------------------------------------------------------- NB201
def nb201_rows(c22: dict, repeats: int) -> tuple[list[list[str]], dict]:
    space = search_spaces.get("nb201")
    strings = [a.to_nb201() for a in space]
    f201 = c22["effective_depth_width_201"]

    def theirs():
        return np.array([f201(s) for s in strings], dtype=np.float64)

    def ours():
        stats = topology_arrays(as_batch(strings))
        return np.stack([stats["effective_depth"], stats["effective_width"]], axis=1)

    def index():
        stats = topology_arrays(space.batch())
        return np.stack([stats["effective_depth"], stats["effective_width"]], axis=1)

    t_theirs, t_ours, ratio, v_theirs, v_ours = paired(theirs, ours, repeats)
    _, t_index, ratio_index, _, _ = paired(theirs, index, repeats)
    t_cell = scaled(lambda xs: [ArchGraph.parse(s).path_stats() for s in xs], strings, 1563)
    if not np.allclose(v_theirs, v_ours, rtol=0, atol=1e-12):
        bad = int(np.flatnonzero(~np.isclose(v_theirs, v_ours).all(axis=1))[0])
        sys.exit(f"list_throughput: (d̄, m̄) differ from the authors' on {strings[bad]}: "
                 f"{v_theirs[bad]} vs {v_ours[bad]}")

    (lo_d, hi_d), (lo_m, hi_m) = C22_BOX_NB201

    def theirs_box():  # pre_is_bad's NB201 branch, written out (it reads a global args object)
        return sum(not (d < lo_d or d > hi_d or w < lo_m or w > hi_m) for d, w in (f201(s) for s in strings))

    box = BoxFilter(*C22_BOX_NB201)
    t_box_theirs, t_box_ours, ratio_box, kept_theirs, kept = paired(
        theirs_box, lambda: int(box.keep_many(strings).sum()), repeats)
    if kept != kept_theirs:
        sys.exit(f"list_throughput: box keeps {kept} cells, the authors' {kept_theirs}")
    n = len(strings)
    rows = [
        ["NB201 (d̄, m̄) of 15,625 strings", "[C22] `effective_depth_width_201` per string",
         f"{t_theirs:.3f}", "batched: `as_batch(strings)` + path DP", f"{t_ours:.3f}",
         f"**{ratio:.1f}×**"],
        ["", "", "", "per cell: `ArchGraph.parse` + `path_stats` (1/10 of cells, scaled)", f"{t_cell:.3f}",
         f"{t_theirs / t_cell:.2f}×"],
        ["", "", "", "from the space index: `space.batch()` + path DP", f"{t_index:.3f}",
         f"{ratio_index:.1f}×"],
        [f"NB201 box filter (keeps {kept:,} of {n:,})", "[C22] `pre_is_bad` rule per string",
         f"{t_box_theirs:.3f}", "`BoxFilter.keep_many(strings)`", f"{t_box_ours:.3f}",
         f"**{ratio_box:.1f}×**"],
    ]
    return rows, {"ratio": ratio, "kept": kept, "n": n}


# ---------------------------------------------------------------------- NB101, DARTS
def sample_nb101(n: int, seed: int) -> list[dict]:
    """``n`` valid NB101 specs (raw 7×7 matrices, edges with probability 1/2, as NASLib samples)."""
    rng = np.random.default_rng(seed)
    names = list(nb101.VERTEX_OPS)
    out = []
    while len(out) < n:
        mats = np.triu(rng.random((2 * n, 7, 7)) < 0.5, 1).astype(np.int64)
        ops = rng.integers(0, 3, size=(2 * n, 5))
        _, valid = nb101.batch_arrays(mats, ops)
        for b in np.flatnonzero(valid)[: n - len(out)]:
            out.append({"matrix": mats[b].tolist(), "ops": ["input", *(names[i] for i in ops[b]), "output"]})
    return out


def sample_darts(n: int, seed: int) -> list[str]:
    """``n`` uniformly random NB301 genotypes as DARTS prints them."""
    rng = np.random.default_rng(seed)
    ops = rng.integers(0, len(darts.OPS), size=(n, 2, 8))
    inputs = np.floor(rng.random((n, 2, 8)) * (2 + np.arange(8) // 2)).astype(np.int64)
    cells = [[[(darts.OPS[o], int(i)) for o, i in zip(ops[b, c], inputs[b, c])] for c in (0, 1)]
             for b in range(n)]
    return [str(darts.Genotype(normal, [2, 3, 4, 5], reduce, [2, 3, 4, 5])) for normal, reduce in cells]


def c22_darts_affinity(c22: dict, genotype: str) -> np.ndarray:
    """``pre_is_bad``'s 7×7 affinity of a genotype's normal cell, as its ``nds_darts`` branch builds it."""
    aff = np.ones((7, 7)) * -1
    np.fill_diagonal(aff, 0)
    aff[2:6, -1] = 0
    for k, (op, node) in enumerate(darts.parse_genotype(genotype).normal):
        aff[node, 2 + k // 2] = c22["edge2value"](op)
    return aff


def large_rows(c22: dict, n: int, subset: int) -> list[list[str]]:
    rows = []
    specs = sample_nb101(n, 0)
    t_batch, _ = timed(lambda: topology_arrays(as_batch(specs)))
    t_cell = scaled(lambda xs: [ArchGraph.parse(s).path_stats() for s in xs], specs, subset)
    per_cell = f"per cell: `ArchGraph.parse` + `path_stats` (1/{n // subset} of cells, scaled)"
    rows.append([f"NB101 (d̄, m̄) of {n:,} specs", per_cell, f"{t_cell:.2f}",
                 "batched: `as_batch(specs)` + path DP", f"{t_batch:.2f}", f"**{t_cell / t_batch:.1f}×**"])
    genotypes = sample_darts(n, 1)
    t_batch, _ = timed(lambda: topology_arrays(as_batch(genotypes)))
    t_cell = scaled(lambda xs: [ArchGraph.parse(g).path_stats() for g in xs], genotypes, subset)
    t_c22 = scaled(lambda xs: [c22["effective_depth_width"](c22_darts_affinity(c22, g)) for g in xs],
                   genotypes, subset)
    rows.append([f"DARTS (d̄, m̄) of {n:,} genotype strings (pair DAG)", per_cell, f"{t_cell:.2f}",
                 "batched: `as_batch(genotypes)` + path DP", f"{t_batch:.2f}",
                 f"**{t_cell / t_batch:.1f}×**"])
    rows.append(["", f"[C22] `effective_depth_width` of the normal cell, their convention "
                 f"(1/{n // subset}, scaled)", f"{t_c22:.2f}", "", "", f"{t_c22 / t_batch:.1f}×"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--c22-repo", default=os.environ.get("NASPLUG_C22_REPO"),
                        help="git directory of a snapshot of VITA-Group/architecture_convergence "
                        "(default: $NASPLUG_C22_REPO)")
    parser.add_argument("--cells", type=int, default=100_000, help="NB101 / DARTS cells (default 10^5)")
    parser.add_argument("--repeats", type=int, default=7,
                        help="back-to-back timing pairs of the NB201 rows (default 7)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write the doc")
    args = parser.parse_args(argv)
    if not args.c22_repo:
        parser.error("give --c22-repo (a git snapshot of VITA-Group/architecture_convergence) or set "
                     "NASPLUG_C22_REPO")
    c22 = load_c22(args.c22_repo)
    rows, nb201 = nb201_rows(c22, args.repeats)
    rows += large_rows(c22, args.cells, max(1, args.cells // 100))
    table = "\n".join(["| task | baseline | baseline (s) | nasplug | nasplug (s) | speed-up |",
                       "| --- | --- | ---: | --- | ---: | ---: |",
                       *("| " + " | ".join(r) + " |" for r in rows)])
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
               f"Python {platform.python_version()}, numpy {np.__version__}; load average at the end "
               f"{os.getloadavg()[0]:.1f} (a shared machine: the absolute times vary from run to run)")
    text = "\n".join([
        "# Scoring lists of cells",
        "",
        "Generated by `benchmarks/list_throughput.py` (timings are machine-dependent, the ratios less so;",
        "every ratio is measured in one process on the same inputs). *batched*: cells read from their",
        "own text form straight into arrays (`nasplug.graph.as_batch`), then one dynamic programme. NB201",
        f"rows: {args.repeats} back-to-back pairs (baseline, then nasplug); times are medians and the",
        "speed-up is the median of the per-pair ratios, which a changing machine load disturbs least;",
        f"the {args.cells:,}-cell lists: one run each. The [C22] functions",
        f"are the authors' own (`{C22_FILE}` at `{C22_COMMIT[:8]}`), read at run time from a snapshot of",
        "their repository and run unchanged; on NB201 their (d̄, m̄) equal ours on every one of the",
        f"{nb201['n']:,} cells, and their box keeps the same {nb201['kept']:,} cells.",
        "",
        f"Machine: {machine}.",
        "",
        table,
        "",
        "The DARTS row of the authors' function is only a time reference: it reads the normal cell alone,",
        "without the preprocessing convs, counts a separable conv once and writes two pairs with the same",
        "input into one matrix entry; nasplug's pair DAG counts what the network computes",
        "(docs/nasbench.md).",
        "",
    ])
    print(table)
    print(f"\nNB201 strings, batched vs the authors' per-string code: {nb201['ratio']:.1f}x")
    if not args.no_write:
        DOC.write_text(text)
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
