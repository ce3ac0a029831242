"""The re-ranking experiment ([C24] §4.3) at the largest scale these 2-core CPU machines allow.

Samples 30 NAS-Bench-201 cells (stratified by CIFAR-10 accuracy), trains each with the benchmark's
recipe and with [C24]'s init + learning rate, 3 seeds each (180 trainings of the NB201 network with
C = 8 on digits, 10 epochs, batch 64), and writes the report with its figures to docs/rerank_nb201/.
Every finished training is kept under ``--runs`` (default results/rerank-nb201-cpu): an interrupted
run resumes where it stopped. About half an hour on 2 idle cores.

Run: ``.venv/bin/python benchmarks/rerank_nb201.py [--benchmark FILE] [--runs DIR] [--parallel 2]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nasplug.ddp import LocalLauncher
from nasplug.retrain.rerank import RerankConfig, prepare, run_rerank
from nasplug.retrain.rerank_report import reading, write_report

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "rerank_nb201"
TABLE = ROOT.parent / "shared" / "data" / "nb201" / "nats_tss_test_accuracy_200ep.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default=str(TABLE), help="NAS-Bench-201 table")
    parser.add_argument("--runs", default=str(ROOT / "results" / "rerank-nb201-cpu"))
    parser.add_argument("--parallel", type=int, default=2, help="trainings at once (1 thread each)")
    args = parser.parse_args()
    config = RerankConfig(args.benchmark, cells=30, seeds=(0, 1, 2), model="nb201", width=8, epochs=10,
                          batch_size=64)
    experiment = prepare(config, device="cpu")
    analysis = run_rerank(config, experiment, LocalLauncher(workers=1, parallel=args.parallel, device="cpu",
                                                            threads=1), args.runs)
    config.benchmark = Path(args.benchmark).name  # no machine path in the committed report
    write_report(analysis, config, DOC)
    print("\n".join(f"- {line}" for line in reading(analysis, len(config.seeds))))
    print(f"wrote {DOC / 'rerank.md'}")


if __name__ == "__main__":
    main()
