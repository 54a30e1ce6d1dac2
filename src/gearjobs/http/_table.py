"""Data as a text table, for clients that ask for text/plain."""

from __future__ import annotations

import json
from typing import Any

__all__ = ("NotATable", "render_table")


class NotATable(ValueError):
    """The data is not a list of flat objects, a flat object, or a table-writing object."""


def _flat(value: Any) -> bool:
    return isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("\n", " ").replace("\r", " ")
    return json.dumps(value)


def _grid(header: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(header[i]), *(len(r[i]) for r in rows)]) for i in range(len(header))]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
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
