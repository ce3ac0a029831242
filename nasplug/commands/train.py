"""``nasplug train ARCH``: train one architecture with its principled init and learning rate [C24]."""

from __future__ import annotations

import json

from nasplug.checks import device_arg, float_arg, int_arg, lr_arg, seed_arg
from nasplug.theory.hparams import DEFAULT_BASE_LR, DEFAULT_WIDTH, MODELS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train one architecture (principled init + max-LR scaling)",
        description="Train ARCH (NB201 string, DAG code or NASLib tuple) on a dataset with its "
        "architecture-aware init [C24]. The LR is --lr as given, or --base-lr scaled by the "
        "architecture's max-LR multiplier [C24]. Each epoch is evaluated on the validation split "
        "(digits has one; other datasets are evaluated on test each epoch), then the test split "
        "once at the end.",
    )
    p.add_argument("arch", help="the architecture")
    p.add_argument("--dataset", default="digits",
                   help="digits (embedded: 1,079 train / 359 validation / 359 test 8x8 images; "
                   "default), cifar10, cifar100 or imagenet16-120 (from --data-root)")
    p.add_argument("--data-root", default=None,
                   help="folder of the dataset files (default: none; digits is embedded)")
    p.add_argument("--model", default="mlp", choices=MODELS,
                   help="network built around the cell: mlp (the theory MLP-DAG: convs become linear "
                   "layers, pooling the identity), cnn (conv edges, 3x3 stem, global pooling) or "
                   "nb201 (the NAS-Bench-201 macro network) (default %(default)s)")
    p.add_argument("--epochs", type=int_arg(1), default=10,
                   help="training epochs, >= 1 (default %(default)s)")
    lr = p.add_mutually_exclusive_group()
    lr.add_argument("--lr", type=lr_arg(), default=None,
                    help="peak learning rate, > 0, used as is (default: --base-lr x multiplier)")
    lr.add_argument("--base-lr", type=lr_arg(), default=None,
                    help="base LR, > 0, multiplied by lr_multiplier(ARCH) [C24] (default per model: "
                    + ", ".join(f"{m} {v:g}" for m, v in DEFAULT_BASE_LR.items()) + ")")
    p.add_argument("--lr-offset", type=float_arg(0.0), default=None,
                   help="depth offset of the LR rule, >= 0 (default: the model family's, 3 for "
                   "mlp/cnn, 1 for nb201)")
    p.add_argument("--width", type=int_arg(1), default=None,
                   help="hidden width (mlp), channels (cnn; nb201's and darts' C) or stem channels "
                   "(nb101), >= 1 (default "
                   + ", ".join(f"{m} {v}" for m, v in DEFAULT_WIDTH.items()) + ")")
    p.add_argument("--init", default="arch_aware", choices=["arch_aware", "arch_aware_source", "he", "torch"],
                   help="weight init: arch_aware (Var W = 2 / (in-degree x fan_in) [C24]), "
                   "arch_aware_source, he or torch (default %(default)s)")
    p.add_argument("--batch-size", type=int_arg(1), default=64, help="examples per SGD step, >= 1 "
                   "(default %(default)s)")
    p.add_argument("--momentum", type=float_arg(0.0, 1.0, high_open=True), default=0.9,
                   help="SGD (Nesterov) momentum in [0, 1) (default %(default)s)")
    p.add_argument("--weight-decay", type=float_arg(0.0), default=5e-4,
                   help="L2 weight decay, >= 0 (default %(default)s)")
    p.add_argument("--warmup-epochs", type=float_arg(0.0), default=0.0,
                   help="linear LR warm-up in epochs, >= 0, then cosine decay (default %(default)s)")
    p.add_argument("--device", type=device_arg(), default="auto",
                   help="auto (CUDA when available), cpu, cuda, cuda:N or mps (default %(default)s)")
    p.add_argument("--seed", type=seed_arg(), default=0, help="seed of the init, shuffling and augmentation "
                   "(default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from nasplug.train import train_arch

    result = train_arch(
        args.arch, args.dataset, model=args.model, data_root=args.data_root, epochs=args.epochs,
        lr=args.lr, base_lr=args.base_lr, lr_offset=args.lr_offset, width=args.width, init=args.init,
        seed=args.seed, batch_size=args.batch_size, momentum=args.momentum,
        weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs, device=args.device,
        progress=not args.no_progress and not args.json,
    )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0 if result.ok else 1
    info = result.info
    note = ""
    if args.model == "nb201" and info.get("nodes", 4) != 4:
        note = f"  (a {info['nodes']}-node cell; NAS-Bench-201's cells have 4 nodes)"
    print(f"{info['arch']}  model={info['model']} width={info['width']} params={info['params']:,} "
          f"dataset={info['dataset']} init={info['init']} lr={result.lr:.4g} ({info['lr_rule']}) "
          f"device={result.device}{note}")
    for m in result.history:
        evals = "".join(f"  {k} {m[k]:.4f}" for k in ("valid_loss", "valid_acc", "test_loss", "test_acc")
                        if k in m)
        print(f"epoch {m['epoch']:>3}  train_loss {m['train_loss']:.4f}  train_acc {m['train_acc']:.4f}"
              f"{evals}  lr {m['lr']:.4g}  {m['seconds']:.1f}s")
    if not result.ok:
        print(f"status: {result.status} — {result.reason}")
        return 1
    valid = f"valid_acc {result.valid_acc:.4f}  " if info["monitor"] == "valid" else ""
    print(f"status: ok  {valid}test_acc {result.test_acc:.4f} (test split, once, after training)  "
          f"({result.seconds:.1f}s)")
    return 0
