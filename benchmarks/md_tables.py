"""Markdown output shared by the benchmark scripts (they write their tables under docs/)."""

from __future__ import annotations

import sys
from pathlib import Path


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|",
                      *("| " + " | ".join(map(str, r)) + " |" for r in rows)])


def write_markdown(path: str, lines: list[str]) -> None:
    """Write a report's lines to ``path`` (folders created) and say where on stderr."""

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")
    print(f"\nwrote {path}", file=sys.stderr)
