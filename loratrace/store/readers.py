"""Reading a store from any process while a collector writes: DuckDB connections, SQL to Polars, scans."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from loratrace.errors import StoreError
from loratrace.store import layout, schema, visibility
from loratrace.store.rows import fetch_rows, open_store, store_path

VIEWS = (*schema.TABLES, "evals", "generations", "feedback")
_store_path = store_path  # the name loratrace.sources imports (the function moved to store.rows)
__all__ = ["VIEWS", "counted_files", "explain_error", "open_store", "query", "rows_to_frame", "scan", "scan_spans"]


def query(
    store: str | os.PathLike[str],
    sql: str,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
    *,
    full_engine: bool = False,
) -> pl.DataFrame:
    """Run ``sql`` against the store (parameters bound by DuckDB, never formatted in); result as Polars.

    Only statements that read run, over the store's files only, unless ``full_engine`` (DuckDB unconfined:
    ``COPY``, ``ATTACH``, any file the user can read or write).
    """
    names, rows = fetch_rows(store, sql, params, full_engine=full_engine)
    return rows_to_frame(names, rows) if names else pl.DataFrame()


def rows_to_frame(names: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> pl.DataFrame:
    # DuckDB's .pl() needs pyarrow; building from rows keeps loratrace free of it (results are small)
    unique = _unique_names(names)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in unique]
    return pl.DataFrame(
        {name: pl.Series(name, list(values), strict=False) for name, values in zip(unique, columns, strict=True)}
    )


def _unique_names(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name}_{count}")
    return out


def explain_error(con: duckdb.DuckDBPyConnection, exc: duckdb.Error) -> str:
    """DuckDB's message plus what exists: the views for an unknown table, the columns for a bad column."""
    message = str(exc).strip()
    lowered = message.lower()
    outdated = _outdated_catalog(con)
    if outdated:
        return f"{message}\n{outdated}"
    if "table with name" in lowered or ("does not exist" in lowered and "table" in lowered):
        return f"{message}\nTables in this store: {', '.join(VIEWS)}"
    if "column" in lowered and ("not found" in lowered or "does not have a column" in lowered):
        details: list[str] = []
        for view in VIEWS:
            if view.lower() in lowered or (len(details) == 0 and view == "spans"):
                columns = [row[0] for row in con.execute(f"DESCRIBE {view}").fetchall()]
                details.append(f"Columns of {view}: {', '.join(columns)}")
        return "\n".join([message, *details])
    return message


def _outdated_catalog(con: duckdb.DuckDBPyConnection) -> str | None:
    from loratrace.store.catalog import CATALOG_VERSION

    try:
        version = con.execute("SELECT max(version) FROM loratrace_catalog").fetchall()[0][0]
    except duckdb.Error:
        version = None
    if version == CATALOG_VERSION:
        return None
    return (
        f"This store's catalog was written by another loratrace version (catalog version {version}; this one reads "
        f"{CATALOG_VERSION}): start `loratrace collect --store DIR` on it once with this version to rebuild the "
        "catalog's views (the segments are kept as they are)."
    )


def scan(store: str | os.PathLike[str], table: str = "spans") -> pl.LazyFrame:
    """A Polars LazyFrame over one table's segments (attribute maps as JSON text columns).

    Polars reads the Parquet files directly, the ones the views count at the moment of the call: the frame is
    a snapshot of the store (call again for newer spans), valid for the compaction grace period.
    """
    if table not in schema.TABLES:
        msg = f"loratrace.store.scan(table=...) takes one of {sorted(schema.TABLES)}, got {table!r}"
        raise StoreError(msg)
    path = store_path(store)
    # the table's full schema, so segments written by an older version (fewer columns) read with nulls there
    return pl.scan_parquet(
        counted_files(path, table),
        hive_partitioning=True,
        hive_schema={"date": pl.Date()},
        missing_columns="insert",
        schema=dict(schema.TABLES[table]),
    )


def counted_files(store: Path, table: str) -> list[Path]:
    """One listing of ``table``'s segments, reduced to those a reader counts now (see ``visibility.py``).

    The list is a snapshot: its files stay on disk for the compaction grace period (5 minutes by default).
    """
    files = sorted(layout.table_dir(store, table).glob("*/*.parquet"))
    return visibility.counted(files, at_ms=visibility.now_ms())


def scan_spans(store: str | os.PathLike[str]) -> pl.LazyFrame:
    """``scan(store, "spans")``: every span as a LazyFrame."""
    return scan(store, "spans")
