"""``nasplug scorers``: list the registered scorers and filters."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("scorers", help="list the registered scorers and filters")
    p.set_defaults(func=run)


def run(args) -> int:
    from nasplug import scorers

    for kind in ("scorer", "filter"):
        print(f"{kind}s:")
        for name, description in scorers.available(kind).items():
            slow = " [slow: a network per cell]" if scorers.is_slow(name) else ""
            print(f"  {name:<28} {description}{slow}")
    return 0
