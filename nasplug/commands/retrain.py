"""``nasplug retrain``: train the best architectures of a search (or given ones) to completion,
data-parallel over ``--workers`` processes (GPUs or CPU cores), with torchrun or Ray Train."""

from __future__ import annotations

import argparse

from nasplug.commands import launching


def add_parser(sub) -> None:
    p = sub.add_parser(
        "retrain",
        help="train the best architectures of a search to completion (data-parallel, torchrun or Ray)",
        description="Retrain ARCH... or the --top best cells of a search's study (--storage), each with "
        "its principled init and learning rate [C24] and NAS-Bench-201's recipe for NB201 cells "
        "(SGD, Nesterov 0.9, weight decay 5e-4, cosine from 0.1, batch 256, 200 epochs), on --workers "
        "data-parallel processes. Results go to OUT/retrain.md/json and the study's user attributes; "
        "a rerun trains only what is missing and resumes interrupted jobs from their checkpoints.",
    )
    p.add_argument("archs", nargs="*", metavar="ARCH", help="architectures (NB201 string, DAG code, tuple)")
    src = p.add_argument_group("from a search")
    src.add_argument("--storage", help="the search's Optuna storage (SQLite file, URL or journal:PATH)")
    src.add_argument("--study-name", help="study in the storage (default: its only one)")
    src.add_argument("--top", type=int, default=5, help="best distinct cells to retrain (default 5)")
    src.add_argument("--scorer", help="training-free scorer to show beside each cell (default: the "
                     "search's recorded proxy, if any)")
    tr = p.add_argument_group("training (default: the recipe's)")
    tr.add_argument("--dataset", help="digits, cifar10, cifar100, imagenet16-120 (default: the search's)")
    tr.add_argument("--data-root", help="folder of the dataset files (not for digits)")
    tr.add_argument("--model", choices=["mlp", "cnn", "nb201"],
                    help="network around the cell (default: the search's; nb201 for NB201 cells)")
    tr.add_argument("--recipe", help="nb201 (default for the NB201 network) or default")
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--batch-size", type=int, help="the global batch (split over the workers)")
    lr = tr.add_mutually_exclusive_group()
    lr.add_argument("--lr", type=float, help="peak learning rate, used as is")
    lr.add_argument("--base-lr", type=float, help="base rate scaled by the cell's [C24] multiplier and "
                    "by batch / recipe batch (default: the recipe's 0.1)")
    tr.add_argument("--init", default="arch_aware",
                    choices=["arch_aware", "arch_aware_source", "he", "torch"])
    tr.add_argument("--width", type=int, help="MLP width / CNN channels / NB201's C")
    tr.add_argument("--momentum", type=float)
    tr.add_argument("--weight-decay", type=float)
    tr.add_argument("--warmup-epochs", type=float)
    tr.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                    help="random flip + crop (default: on for images other than digits)")
    tr.add_argument("--seed", type=int, default=0)
    launching.add_arguments(p, "results/retrain")
    p.set_defaults(func=run_command)


def run_command(args) -> int:
    from dataclasses import replace
    from pathlib import Path

    from nasplug.data import load_dataset
    from nasplug.ddp import make_spec
    from nasplug.ddp.launch import stop_on_sigterm
    from nasplug.errors import NasplugError
    from nasplug.retrain.runner import retrain
    from nasplug.retrain.select import best_of_study, from_archs, open_search, study_settings
    from nasplug.search import resolve_scorer

    # ------------------------------------------------ everything that can fail, before any work
    if bool(args.archs) == bool(args.storage):
        raise NasplugError("give architectures or --storage (a search's study), one of the two")
    study, settings = None, {}
    if args.storage:
        study = open_search(args.storage, args.study_name)
        candidates = best_of_study(study, args.top)
        settings = study_settings(study)
    else:
        candidates = from_archs(args.archs)
    dataset = args.dataset or settings.get("dataset") or "digits"
    model = args.model or (settings.get("model") if settings.get("objective") == "train" else None)
    run = launching.run_settings(args)
    specs = [make_spec(c.arch, dataset, model=model, recipe=args.recipe, data_root=args.data_root,
                       epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, base_lr=args.base_lr,
                       init=args.init, width=args.width, seed=args.seed, momentum=args.momentum,
                       weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs,
                       augment=args.augment, **run) for c in candidates]
    for spec in specs:
        spec.per_worker_batch(args.workers)
    load_dataset(dataset, args.data_root)  # a missing or unreadable dataset stops here
    if args.scorer:
        scorer = resolve_scorer(args.scorer)
        candidates = [replace(c, proxy=float(scorer.score(c.arch))) for c in candidates]
    launcher = launching.launcher(args)

    # ------------------------------------------------ the work
    source = f"study {study.study_name}" if study is not None else "the command line"
    print(f"retraining {len(candidates)} architecture(s) from {source} on {dataset} "
          f"({specs[0].model}, recipe {specs[0].recipe}, {specs[0].epochs} epochs, global batch "
          f"{specs[0].batch_size}) with {args.workers} worker(s) each, launcher {args.launcher}")
    with stop_on_sigterm():
        records = retrain(candidates, specs, launcher, args.out, study=study)
    print()
    for r in records:
        acc = f"{r['test_acc']:.2f}%" if r["test_acc"] is not None else "–"
        print(f"{acc:>8}  {r['status']:<8}  {r['arch']}")
    out = Path(args.out)
    print(f"\nwrote {out / 'retrain.md'}, retrain.json, retrain_curves.png; job folders in {out / 'runs'}")
    if study is not None:
        print(f"recorded in study {study.study_name!r} (user attributes nasplug:retrained:<job>)")
    return 0 if all(r["status"] == "ok" for r in records) else 1
