"""Markdown reports as standalone HTML pages: Markdown rendered by ``markdown-it-py`` (CommonMark plus
tables; raw HTML in the text is escaped, not passed through) inside a ``jinja2`` template with an
autoescaped title and a small stylesheet. Reports are written once, as Markdown, and the HTML page is
its rendering, so the two never disagree.
"""

from __future__ import annotations

from functools import lru_cache

import jinja2
from markdown_it import MarkdownIt

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; padding: 0 1em;
       color: #1d1d1f; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0 1.4em; font-size: 0.92em; }
th, td { border: 1px solid #c8c8cc; padding: 3px 8px; }
th { background: #f0f0f3; }
td { text-align: right; }
td:first-child { text-align: left; }
code { background: #f3f3f6; padding: 0 3px; border-radius: 3px; font-size: 0.95em; }
img { max-width: 100%; border: 1px solid #e0e0e4; margin: 0.5em 0; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
</style>
</head>
<body>
{{ body | safe }}
</body>
</html>
"""


def table_cell(text: str) -> str:
    """Text for a cell of a Markdown table: ``|`` escaped, so NB201 strings (full of pipes) stay in
    their cell instead of splitting the row."""
    return str(text).replace("|", "\\|")


@lru_cache(maxsize=1)
def _renderers() -> tuple[MarkdownIt, jinja2.Template]:
    markdown = MarkdownIt("commonmark", {"html": False}).enable("table")
    template = jinja2.Environment(autoescape=True).from_string(PAGE)
    return markdown, template


def markdown_to_html(markdown: str, title: str) -> str:
    """A standalone HTML page of a Markdown document (images keep their relative paths)."""
    md, template = _renderers()
    return template.render(title=title, body=md.render(markdown))
