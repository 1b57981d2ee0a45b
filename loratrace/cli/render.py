"""What the CLI prints: query results and analysis rows (an aligned table, a JSON array, or CSV), and a store's
status."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

    from loratrace.store.status import StoreStatus


def plain(value: Any) -> Any:
    """``value`` with dates as ISO text, at any depth: what ``json.dumps`` takes."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(plain(value), default=str)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def render(frame: pl.DataFrame, output_format: str) -> str:
    """``frame`` as ``table`` (aligned columns, NULL shown empty), ``json`` (array of objects) or ``csv``."""
    return render_result(frame.columns, frame.rows(), output_format)


def render_result(names: Sequence[str], rows: Sequence[Sequence[Any]], output_format: str) -> str:
    """Column names and rows (as DuckDB returns them) rendered like :func:`render`, without Polars."""
    if output_format == "json":
        return json.dumps([dict(zip(names, map(plain, row), strict=True)) for row in rows], default=str) + "\n"
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


def render_status(status: StoreStatus) -> str:
    """The status as lines a person reads."""
    newest = status.newest_span.isoformat(sep=" ", timespec="seconds") if status.newest_span else "none yet"
    lines = [
        f"store        {status.store}",
        f"size         {status.size_bytes / 1e6:.1f} MB in {status.segments} segments",
        f"spans        {status.spans}",
        f"newest span  {newest} UTC" if status.newest_span else f"newest span  {newest}",
    ]
    collector = status.collector
    if collector is None:
        lines.append("collector    not running (start one: loratrace collect --store " + status.store + ")")
        return "\n".join(lines) + "\n"
    receivers = ", ".join(
        f"{name} {collector[key]}" for name, key in (("OTLP/HTTP", "http"), ("OTLP/gRPC", "grpc")) if collector[key]
    )
    lines.append(f"collector    pid {collector['pid']}, {receivers}, since {collector['started']}")
    if status.collector_error:
        lines.append(f"             {status.collector_error}")
    health = collector.get("health")
    if health:
        for key in (
            "accepted_spans",
            "rejected_spans",
            "spans_written",
            "duplicate_spans_dropped",
            "metric_points_written",
            "wal_backlog_bytes",
            "decode_errors",
        ):
            if key in health:
                lines.append(f"  {key:<26} {health[key]}")
    return "\n".join(lines) + "\n"


def render_rows(frame: pl.DataFrame, output_format: str) -> str:
    """Analysis rows: floats rounded and lists joined for the table; untouched for JSON and CSV."""
    import polars as pl

    if output_format == "table":
        frame = frame.with_columns(
            [pl.col(c).round_sig_figs(4) for c, t in frame.schema.items() if t == pl.Float64]
            + [pl.col(c).list.join(",") for c, t in frame.schema.items() if isinstance(t, pl.List)]
            # sha256:<12 hex> is unique in practice and keeps the table readable; JSON and CSV keep the whole id
            + [pl.col(c).str.slice(0, 19) for c in frame.columns if c == "adapter_id"]
        )
    return render(frame, output_format)


def render_tables(tables: dict[str, pl.DataFrame], output_format: str) -> str:
    """Several named tables: one JSON object of them, or the tables one after the other under their names; CSV
    holds one table only (``ValueError`` otherwise)."""
    if output_format == "json":
        payload = {
            name: [{k: plain(v) for k, v in row.items()} for row in t.iter_rows(named=True)]
            for name, t in tables.items()
        }
        return json.dumps(payload, default=str) + "\n"
    if output_format == "csv" and len(tables) > 1:
        msg = f"csv holds one table: pass --view with one of {', '.join(tables)}"
        raise ValueError(msg)
    parts = []
    for index, (name, table) in enumerate(tables.items()):
        if output_format == "table" and len(tables) > 1:
            parts.append(f"{'' if index == 0 else chr(10)}{name}\n")
        parts.append(render_rows(table, output_format))
    return "".join(parts)
