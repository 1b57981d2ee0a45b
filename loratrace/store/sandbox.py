"""Confining a reader's DuckDB connection to the store: it may read the segments and nothing else.

DuckDB is a full engine: from a query, ``COPY … TO`` writes (and with ``OVERWRITE`` empties) folders,
``ATTACH … (READ_WRITE)`` changes other databases, ``read_text('/etc/shadow')`` reads any file the user can.
A read tool must not hand that out by default, so reader connections switch off DuckDB's external access
except for the store's segment folder (``allowed_directories``) and run only statements that read (``SELECT``
in all its forms, ``EXPLAIN``; so no ``SET``, ``PRAGMA``, ``ATTACH``, ``COPY``, ``INSTALL`` / ``LOAD``).

``lock_configuration`` is not used: DuckDB shares one database instance, and that lock, between every connection
of a process to the same file, so it would also stop the next reader from setting its own session's
``file_search_path`` (the views' relative paths then resolve nowhere). It is not needed either: DuckDB refuses to
enable external access again, or to widen the allowed directories, while the database is open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import duckdb

from loratrace.errors import QueryError
from loratrace.store import layout

READING_STATEMENTS: Final = frozenset((duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN))


def confine(con: duckdb.DuckDBPyConnection, store: Path) -> None:
    """Let ``con`` reach the store's segments only (views name them relative to the store)."""
    segments = store / layout.SEGMENTS
    con.execute("SET allowed_directories = ?", [[f"{segments}/", f"{layout.SEGMENTS}/"]])
    con.execute("SET enable_external_access = false")


def is_confined(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con``'s database instance was confined (by another connection of this process)."""
    return not con.execute("SELECT current_setting('enable_external_access')").fetchall()[0][0]


def check_reading(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise QueryError unless every statement of ``sql`` only reads."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(str(exc).strip()) from exc
    for statement in statements:
        if statement.type not in READING_STATEMENTS:
            kind = statement.type.name
            msg = (
                f"{kind} statements are not run over a store: queries here only read it (SELECT, EXPLAIN). "
                "For DuckDB's full engine (COPY, ATTACH, files outside the store) pass --full-engine "
                "(or full_engine=True)"
            )
            raise QueryError(msg)
