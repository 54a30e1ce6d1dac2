"""Data as a text table, for clients that ask for text/plain."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

__all__ = ("NotATable", "render_table")


class NotATable(ValueError):
    """The data is not a list of flat objects, a flat object, or a table-writing object."""


def _flat(value: Any) -> bool:
    return isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values())


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Characters that would break a row or its columns (line ends, tabs, escapes): a space each."""


def _text(value: str) -> str:
    return _CONTROL.sub(" ", value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _text(value)
    return json.dumps(value)


def _width(text: str) -> int:
    """Columns `text` takes on a terminal: wide (CJK, most emoji) 2, combining marks 0."""
    if text.isascii():
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _grid(header: list[str], rows: list[list[str]]) -> str:
    header = [_text(h).upper() for h in header]
    widths = [max([_width(header[i]), *(_width(r[i]) for r in rows)]) for i in range(len(header))]
    lines = ["  ".join(_pad(h, w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(_pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def render_table(data: Any) -> str:
    """A list of flat objects (a row each), a flat object (name, value rows), or whatever an
    object's `write_table_to(out)` writes."""
    writer = getattr(data, "write_table_to", None)
    if callable(writer):
        import io

        out = io.StringIO()
        writer(out)
        return out.getvalue()
    if isinstance(data, list) and data and all(_flat(row) for row in data):
        columns: list[str] = []
        for row in data:
            columns.extend(k for k in row if k not in columns)
        return _grid(columns, [[_cell(row.get(c)) for c in columns] for row in data])
    if isinstance(data, list) and not data:
        return ""
    if _flat(data):
        return _grid(["name", "value"], [[str(k), _cell(v)] for k, v in data.items()])
    raise NotATable("this answer cannot be shown as a table; ask for application/json")
