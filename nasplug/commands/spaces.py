"""``nasplug spaces``: list the search spaces and their sizes."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("spaces", help="list the search spaces")
    p.set_defaults(func=run)


def run(args) -> int:
    from nasplug import search_spaces

    for name, description in search_spaces.available().items():
        size = search_spaces.get(name).size
        print(f"{name:<8} {size:>10,}  {description}")
    return 0
