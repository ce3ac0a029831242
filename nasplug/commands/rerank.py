"""``nasplug rerank``: re-rank NAS-Bench-201 cells by training them with the benchmark's recipe and
with architecture-aware init + learning rate ([C24] §4.3); a resumable report with plots."""

from __future__ import annotations

import sys

from nasplug.checks import int_arg, lr_arg, seed_arg, writable_dir
from nasplug.commands import launching


def add_parser(sub) -> None:
    p = sub.add_parser(
        "rerank",
        help="re-rank NAS-Bench-201 by principled training ([C24] §4.3): resumable report + plots",
        description="Sample --cells cells of a NAS-Bench-201 table, train each with the benchmark's recipe "
        "(PyTorch init, LR 0.1) and with [C24]'s init and per-cell LR (everything else equal), under "
        "--seeds, and report the accuracy change, Kendall τ against the benchmark within its top-K %% "
        "next to the seed-vs-seed noise floor, and pairwise order flips. Every finished training is kept "
        "under OUT/runs: rerunning the command trains only what is missing.",
    )
    p.add_argument("--benchmark", required=True, metavar="FILE", help="NAS-Bench-201 table (any format "
                   "`nasplug bench` reads)")
    p.add_argument("--bench-dataset", default="cifar10",
                   help="the benchmark column ranked against: cifar10 (default), cifar100, ImageNet16-120")
    p.add_argument("--cells", type=int_arg(2), default=24, help="cells to sample, at least 2 (default 24)")
    p.add_argument("--uniform", action="store_true",
                   help="sample uniformly instead of one cell per benchmark-accuracy bin")
    p.add_argument("--sample-seed", type=seed_arg(), default=0, help="seed of the cell sample (default 0)")
    p.add_argument("--seeds", type=seed_arg(), nargs="+", default=[0, 1],
                   help="training seeds; two or more also give the seed-vs-seed noise floor (default 0 1)")
    tr = p.add_argument_group("training (NAS-Bench-201's recipe unless overridden)")
    tr.add_argument("--dataset", default="digits", help="digits (default), cifar10, cifar100, imagenet16-120")
    tr.add_argument("--data-root", default=None,
                    help="folder of the dataset files (default: none; not needed for digits)")
    tr.add_argument("--model", default="nb201", choices=["nb201", "cnn"], help="network (default nb201)")
    tr.add_argument("--width", type=int_arg(1), default=None, help="NB201's C / CNN channels (default 16)")
    tr.add_argument("--epochs", type=int_arg(1), default=None, help="epochs (default 200)")
    tr.add_argument("--batch-size", type=int_arg(1), default=None,
                    help="global batch (default 256; LR scaled linearly)")
    tr.add_argument("--lr", type=lr_arg(), default=0.1,
                    help="the benchmark recipe's LR at batch 256 (default NAS-Bench-201's 0.1)")
    tr.add_argument("--principled-base-lr", type=lr_arg(), default=None,
                    help="base LR of the [C24] rule at batch 256, tuned on the base network (default: "
                    "matched so the sample's geometric-mean principled LR equals --lr)")
    launching.add_arguments(p, "results/rerank")
    p.set_defaults(func=run_command)


def run_command(args) -> int:
    from pathlib import Path

    from nasplug.retrain.rerank import RerankConfig, prepare, run_rerank
    from nasplug.retrain.rerank_report import reading, write_report

    writable_dir(args.out, "output folder (--out)")
    config = RerankConfig(
        benchmark=args.benchmark, bench_dataset=args.bench_dataset, cells=args.cells,
        stratify=not args.uniform, sample_seed=args.sample_seed, seeds=tuple(args.seeds),
        dataset=args.dataset, data_root=args.data_root, model=args.model, width=args.width,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        principled_base_lr=args.principled_base_lr,
    )
    experiment = prepare(config, **launching.run_settings(args))  # every user error before any work
    for spec in experiment.jobs.values():
        spec.per_worker_batch(args.workers)
    launcher = launching.launcher(args)
    analysis = run_rerank(config, experiment, launcher, args.out)
    write_report(analysis, config, args.out)
    out = Path(args.out)
    print()
    for line in reading(analysis, len(config.seeds)):
        print(f"- {line}")
    print(f"\nwrote {out / 'rerank.md'}, rerank.json and figures; trainings kept in {out / 'runs'}")
    crashed = sum(analysis.missing.values())
    if crashed:
        print(f"{crashed} training(s) failed (not diverged: see their log.txt under {out / 'runs'}); "
              "rerun the command to retry them", file=sys.stderr)
    return 1 if crashed else 0
