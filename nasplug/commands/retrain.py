"""``nasplug retrain``: train the best architectures of a search (or given ones) to completion,
data-parallel over ``--workers`` processes (GPUs or CPU cores), with torchrun or Ray Train."""

from __future__ import annotations

import argparse

from nasplug.checks import float_arg, int_arg, lr_arg, seed_arg, writable_dir
from nasplug.commands import launching
from nasplug.search.config import INITS
from nasplug.theory.hparams import MODELS

#: ``nasplug.ddp.spec.RECIPES``' names (that module imports torch; tests/test_retrain.py checks they agree).
RECIPE_NAMES = ("default", "nb201")


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
    src.add_argument("--storage", default=None,
                     help="the search's Optuna storage (SQLite file, URL or journal:PATH; default: none)")
    src.add_argument("--study-name", default=None, help="study in the storage (default: its only one)")
    src.add_argument("--top", type=int_arg(1), default=5,
                     help="best distinct cells to retrain; of a multi-objective study, the Pareto front's "
                     "cells by their first objective (default 5)")
    src.add_argument("--scorer", default=None, help="training-free scorer to show beside each cell "
                     "(default: the search's recorded proxy, if any)")
    tr = p.add_argument_group("training (default: the search's settings where it trained, else the recipe's)")
    tr.add_argument("--dataset", default=None,
                    help="digits, cifar10, cifar100, imagenet16-120 (default: the search's, else digits)")
    tr.add_argument("--data-root", default=None, help="folder of the dataset files (default: none; not "
                    "needed for digits)")
    tr.add_argument("--model", default=None, choices=MODELS,
                    help="network around the cell (default: the search's where it trained; else nb201 for "
                    "NB201 cells, mlp on digits, cnn on images)")
    tr.add_argument("--recipe", default=None, choices=RECIPE_NAMES,
                    help="nb201: NAS-Bench-201's 200 epochs, batch 256, LR 0.1; default: 10 epochs, batch "
                    "64 (default: nb201 for the NB201 network, else default)")
    tr.add_argument("--epochs", type=int_arg(1), default=None, help="epochs (default: the recipe's)")
    tr.add_argument("--batch-size", type=int_arg(1), default=None,
                    help="the global batch, split over the workers (default: the recipe's)")
    lr = tr.add_mutually_exclusive_group()
    lr.add_argument("--lr", type=lr_arg(), default=None,
                    help="peak learning rate, used as is (default: the [C24] rule of --base-lr)")
    lr.add_argument("--base-lr", type=lr_arg(), default=None,
                    help="base rate > 0 scaled by the cell's [C24] multiplier and by batch / recipe batch "
                    "(default: the search's base LR where it trained, else the recipe's 0.1)")
    tr.add_argument("--init", default=None, choices=INITS,
                    help="initialization (default: the search's, else arch_aware)")
    tr.add_argument("--width", type=int_arg(1), default=None,
                    help="MLP width / CNN channels / NB201's C (default: the search's, else the model's)")
    tr.add_argument("--momentum", type=float_arg(0.0, 1.0, high_open=True), default=None,
                    help="SGD Nesterov momentum in [0, 1) (default: the recipe's 0.9)")
    tr.add_argument("--weight-decay", type=float_arg(0.0), default=None,
                    help="L2 weight decay >= 0 (default: the recipe's 5e-4)")
    tr.add_argument("--warmup-epochs", type=float_arg(0.0), default=None,
                    help="linear warm-up, in epochs (default: the recipe's 0)")
    tr.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                    help="random flip + crop (default: on for images other than digits)")
    tr.add_argument("--seed", type=seed_arg(), default=0,
                    help="seed of init, data order and augmentation (default 0)")
    launching.add_arguments(p, "results/retrain")
    p.set_defaults(func=run_command)


def run_command(args) -> int:
    from dataclasses import replace
    from pathlib import Path

    from nasplug.data import load_dataset
    from nasplug.ddp import make_spec
    from nasplug.errors import NasplugError
    from nasplug.retrain.runner import retrain
    from nasplug.retrain.select import best_of_study, from_archs, open_search, study_settings
    from nasplug.search import resolve_scorer

    # ------------------------------------------------ everything that can fail, before any work
    if bool(args.archs) == bool(args.storage):
        raise NasplugError("give architectures or --storage (a search's study), one of the two")
    writable_dir(args.out, "output folder (--out)")
    study, settings = None, {}
    if args.storage:
        study = open_search(args.storage, args.study_name)
        candidates = best_of_study(study, args.top)
        settings = study_settings(study)
    else:
        candidates = from_archs(args.archs)
    dataset = args.dataset or settings.get("dataset") or "digits"
    if args.dataset is None and dataset != "digits" and args.data_root is None:
        raise NasplugError(f"the search's dataset is {dataset}, read from disk: give its folder "
                           "(--data-root), or --dataset digits to retrain on the bundled digits")
    trained = settings.get("objective") == "train"  # the search trained: keep its network and rule
    model = args.model or (settings.get("model") if trained else None)
    same_net = trained and model == settings.get("model")
    base_lr = args.base_lr
    if base_lr is None and args.lr is None and same_net and args.recipe in (None, "default"):
        base_lr = settings.get("base_lr")
    width = args.width if args.width is not None else (settings.get("width") if same_net else None)
    init = args.init or (settings.get("init") if trained else None) or "arch_aware"
    run = launching.run_settings(args)
    specs = [make_spec(c.arch, dataset, model=model, recipe=args.recipe, data_root=args.data_root,
                       epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, base_lr=base_lr,
                       init=init, width=width, seed=args.seed, momentum=args.momentum,
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
