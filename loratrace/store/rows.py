"""Reading the store through DuckDB alone: a connection to the catalog and SQL results as plain rows.

Polars is not imported here, so that a command answering one small question (``loratrace query``) pays only
for DuckDB; ``readers.query`` wraps the rows in a Polars frame.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from loratrace.errors import QueryError, StoreError
from loratrace.store import layout, readlock, sandbox

_LOCK_HOLDER = re.compile(r"\(PID (\d+)\)")


def store_path(store: str | os.PathLike[str]) -> Path:
    """The store's absolute path; a folder without a catalog is refused with what to point at instead."""
    path = Path(store).resolve()
    if not (path / layout.CATALOG).is_file():
        msg = (
            f"{path} is not a loratrace store (no {layout.CATALOG}); point --store at the folder given to "
            "`loratrace collect --store` or `loratrace.instrument(store=...)`"
        )
        raise StoreError(msg)
    return path


def open_store(store: str | os.PathLike[str], *, full_engine: bool = False) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection to the store's catalog, with relative view paths resolving inside it.

    Any number of readers may open the store while a collector writes to it. Close the connection when done.
    The connection reads the store's segments and no other file (see ``sandbox.py``) unless ``full_engine``.
    """
    path = store_path(store)
    catalog = path / layout.CATALOG
    try:
        con = duckdb.connect(str(catalog), read_only=True)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        holder = _LOCK_HOLDER.search(str(exc))
        who = f" (PID {holder.group(1)})" if holder else ""
        msg = (
            f"{catalog} is held open for writing by another process{who}, and DuckDB then lets no one else read "
            "it. Close that connection (a `duckdb` shell should open it with `-readonly`, Python with "
            "`duckdb.connect(path, read_only=True)`) and run this again"
        )
        raise StoreError(msg) from exc
    confined = sandbox.is_confined(con)
    if confined and full_engine:
        # DuckDB shares one database instance between the connections of a process to the same file: an open
        # confined connection confined this one too, for as long as it is open
        con.close()
        msg = (
            f"a confined connection to {path} is open in this process, so the full engine cannot be had here "
            "until it is closed (DuckDB shares one configuration per database file and process)"
        )
        raise StoreError(msg)
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET file_search_path = ?", [str(path)])
    if not full_engine and not confined:
        sandbox.confine(con, path)
    return con


def fetch_rows(
    store: str | os.PathLike[str],
    sql: str,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
    *,
    full_engine: bool = False,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` against the store (parameters bound by DuckDB, never formatted in): column names and rows.

    Only statements that read run, over the store's files only, unless ``full_engine``.
    """
    path = store_path(store)
    con = open_store(path, full_engine=full_engine)
    try:
        if not full_engine:
            sandbox.check_reading(con, sql)
        with readlock.reading(path):  # compaction deletes no segment while this query lists and reads them
            try:
                cursor = _execute(con, sql, params)
                if cursor.description is None:
                    return [], []
                return [d[0] for d in cursor.description], cursor.fetchall()
            except duckdb.Error as exc:
                from loratrace.store.readers import explain_error

                raise QueryError(explain_error(con, exc)) from exc
    finally:
        con.close()


def stream_rows(
    store: str | os.PathLike[str],
    sql: str,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
    *,
    chunk: int = 10_000,
) -> Iterator[tuple[Any, ...]]:
    """The rows of a reading statement one at a time, fetched ``chunk`` at a time, so a result larger than memory
    can be walked (DuckDB streams it; an ``ORDER BY`` sorts out of core). The store stays open, and its segments
    undeleted (``readlock``), until the iterator is exhausted or closed."""
    path = store_path(store)
    con = open_store(path)
    try:
        sandbox.check_reading(con, sql)
        with readlock.reading(path):
            try:
                cursor = _execute(con, sql, params)
                while rows := cursor.fetchmany(chunk):
                    yield from rows
            except duckdb.Error as exc:
                from loratrace.store.readers import explain_error

                raise QueryError(explain_error(con, exc)) from exc
    finally:
        con.close()


def _execute(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | Mapping[str, Any] | None
) -> duckdb.DuckDBPyConnection:
    try:
        return con.execute(sql, params) if params is not None else con.execute(sql)
    except duckdb.IOException as exc:
        # compaction deletes a covered segment only a grace period after nobody counts it any more, but a
        # query that listed it in that very instant cannot open it: once more, with a fresh listing
        if "no such file" not in str(exc).lower():
            raise
        return con.execute(sql, params) if params is not None else con.execute(sql)
