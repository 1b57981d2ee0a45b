"""Rendering query results for ``loratrace sql`` / ``query``: an aligned table, a JSON array, or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(_plain(value), default=str)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def render(frame: pl.DataFrame, output_format: str) -> str:
    """``frame`` as ``table`` (aligned columns, NULL shown empty), ``json`` (array of objects) or ``csv``."""
    return render_result(frame.columns, frame.rows(), output_format)


def render_result(names: Sequence[str], rows: Sequence[Sequence[Any]], output_format: str) -> str:
    """Column names and rows (as DuckDB returns them) rendered like :func:`render`, without Polars."""
    if output_format == "json":
        return json.dumps([dict(zip(names, map(_plain, row), strict=True)) for row in rows], default=str) + "\n"
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow([_text(v) for v in row])
        return buffer.getvalue()
    cells = [[_text(v) for v in row] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines) + "\n"
