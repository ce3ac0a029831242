"""``nasplug train ARCH``: train one architecture with its principled init and learning rate [C24]."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train one architecture (principled init + max-LR scaling)",
        description="Train ARCH (NB201 string, DAG code or NASLib tuple) on a dataset. The LR is "
        "--lr as given, or --base-lr scaled by the architecture's max-LR multiplier [C24] "
        "(default: --base-lr 0.1).",
    )
    p.add_argument("arch", help="the architecture")
    p.add_argument("--dataset", default="digits",
                   help="digits (embedded, default), cifar10, cifar100 or imagenet16-120")
    p.add_argument("--data-root", default=None, help="folder of the dataset files (not for digits)")
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn", "nb201", "nb101", "darts"],
                   help="network built around the cell (default mlp)")
    p.add_argument("--epochs", type=int, default=10)
    lr = p.add_mutually_exclusive_group()
    lr.add_argument("--lr", type=float, default=None, help="peak learning rate, used as is")
    lr.add_argument("--base-lr", type=float, default=None,
                    help="base LR, multiplied by lr_multiplier(ARCH) (default 0.1)")
    p.add_argument("--lr-offset", type=float, default=None, help="depth offset of the LR rule")
    p.add_argument("--width", type=int, default=None,
                   help="hidden width (mlp, default 256) or channels (cnn 32, nb201 16)")
    p.add_argument("--init", default="arch_aware",
                   choices=["arch_aware", "arch_aware_source", "he", "torch"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--warmup-epochs", type=float, default=0.0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0)
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
    print(f"{info['arch']}  model={info['model']} params={info['params']:,} dataset={info['dataset']} "
          f"init={info['init']} lr={result.lr:.4g} ({info['lr_rule']}) device={result.device}")
    for m in result.history:
        test = f"  test_loss {m['test_loss']:.4f}  test_acc {m['test_acc']:.4f}" if "test_acc" in m else ""
        print(f"epoch {m['epoch']:>3}  train_loss {m['train_loss']:.4f}  train_acc {m['train_acc']:.4f}"
              f"{test}  lr {m['lr']:.4g}  {m['seconds']:.1f}s")
    if not result.ok:
        print(f"status: {result.status} — {result.reason}")
        return 1
    print(f"status: ok  test_acc {result.test_acc:.4f}  ({result.seconds:.1f}s)")
    return 0
