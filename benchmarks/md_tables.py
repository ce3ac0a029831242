"""Markdown output shared by the benchmark scripts (they write their tables under docs/)."""

from __future__ import annotations


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|",
                      *("| " + " | ".join(map(str, r)) + " |" for r in rows)])
