"""The DuckDB catalog: a small database file holding only views over the Parquet segments.

The collector never keeps it open; it is (re)built into a temporary file and renamed into place, so readers in
other processes always open a complete catalog. View paths are relative to the store folder: DuckDB
resolves them
against ``file_search_path`` (``open_store`` sets it) or the working directory (the plain ``duckdb`` shell
started inside the store), so a moved or copied store keeps working.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import duckdb

from loratrace import semconv
from loratrace.store import layout, readlock, schema, visibility

# 5: the spans and generations views name the served_after_fallback column
CATALOG_VERSION: Final = 5


_FILE_COLUMN: Final = "_loratrace_file"


def _source(table: str) -> str:
    # union_by_name: segments written by older versions (fewer columns) still read; new keys live in the maps
    glob = f"{layout.SEGMENTS}/{table}/*/*.parquet"
    return f"read_parquet('{glob}', union_by_name = true, hive_partitioning = true, filename = '{_FILE_COLUMN}')"


def _counted(table: str) -> str:
    # compaction leaves its inputs in place next to the merged segment; the rule in visibility.py decides, from
    # the file names alone, which of them count, so no listing ever sees a span twice
    glob = f"{layout.SEGMENTS}/{table}/*/*.parquet"
    hidden = visibility.hidden_names_sql(glob)
    return (
        f"NOT list_contains({hidden}, parse_filename({_FILE_COLUMN})) AND NOT {visibility.inactive_sql(_FILE_COLUMN)}"
    )


def _maps(table: str) -> str:
    present = [c for c in schema.MAP_COLUMNS if c in schema.TABLES[table]]
    excluded = ", ".join([*present, _FILE_COLUMN])
    converted = ", ".join(f"CAST(CAST({c} AS JSON) AS MAP(VARCHAR, VARCHAR)) AS {c}, {c} AS {c}_json" for c in present)
    return f"* EXCLUDE ({excluded}), {converted}"


def view_statements() -> list[str]:
    """The ``CREATE VIEW`` statements of the catalog."""
    statements = [
        f"CREATE OR REPLACE VIEW {table} AS SELECT {_maps(table)} FROM {_source(table)} WHERE {_counted(table)}"
        for table in schema.TABLES
    ]
    span_columns = ", ".join(schema.EVENT_SPAN_COLUMNS)
    statements.append(
        "CREATE OR REPLACE VIEW evals AS SELECT trace_id, span_id, time, time_unix_nano, eval_name AS name, "
        "eval_score AS score, eval_label AS label, eval_passed AS passed, eval_explanation AS explanation, "
        f"service_name, {span_columns}, date FROM span_events "
        f"WHERE name = '{semconv.GEN_AI_EVALUATION_RESULT_EVENT}'"
    )
    statements.append(generations_view_statement())
    return statements


GENERATION_SPAN_COLUMNS: Final = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "service_name",
    "start_time_unix_nano",
    "end_time_unix_nano",
    "duration_ns",
    "start_time",
    "status_code",
    "status_message",
)
"""The span columns the ``generations`` view keeps beside every promoted column."""


def generations_view_statement() -> str:
    """``generations``: one row per generation span, its promoted columns and its evaluations' pass counts.

    A generation is a span whose ``gen_ai.operation.name`` is one of ``semconv.GENERATION_OPERATIONS``: adapter
    loads and vLLM's batch parent span carry no operation, so they are not traffic.
    """
    columns = ", ".join(f"s.{c}" for c in (*GENERATION_SPAN_COLUMNS, *schema.PROMOTED_TYPES))
    operations = ", ".join(f"'{op}'" for op in semconv.GENERATION_OPERATIONS)
    return (
        f"CREATE OR REPLACE VIEW generations AS SELECT {columns}, "
        "coalesce(e.evals, 0) AS evals, coalesce(e.evals_passed, 0) AS evals_passed, "
        "coalesce(e.evals_failed, 0) AS evals_failed, s.date "
        "FROM spans AS s LEFT JOIN (SELECT trace_id, span_id, count(*) AS evals, "
        "count(*) FILTER (WHERE passed) AS evals_passed, count(*) FILTER (WHERE NOT passed) AS evals_failed "
        "FROM evals GROUP BY trace_id, span_id) AS e ON s.trace_id = e.trace_id AND s.span_id = e.span_id "
        f"WHERE s.operation_name IN ({operations})"
    )


STORAGE_VERSION = "v1.0.0"


def build_catalog(store: Path) -> Path:
    """Write ``STORE/catalog.duckdb`` afresh (atomically); the store's schema segments must exist."""
    target = store / layout.CATALOG
    tmp = store / f".{layout.CATALOG}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    # The oldest storage format that holds views, so DuckDB shells and drivers older than this library
    # (the duckdb CLI on PyPI, distro packages) open the catalog too.
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH ? AS catalog (STORAGE_VERSION '{STORAGE_VERSION}')", [str(tmp)])
        con.execute("USE catalog")
        con.execute("SET file_search_path = ?", [str(store)])
        for statement in view_statements():
            con.execute(statement)
        con.execute("CREATE OR REPLACE TABLE loratrace_catalog AS SELECT ? AS version", [CATALOG_VERSION])
        con.execute("CHECKPOINT catalog")
        con.execute("USE memory")
        con.execute("DETACH catalog")
    finally:
        con.close()
    Path(f"{tmp}.wal").unlink(missing_ok=True)
    os.replace(tmp, target)
    layout.fsync_dir(store)
    return target


def ensure_store(store: str | os.PathLike[str]) -> Path:
    """Create the store layout and catalog when missing; returns the store's absolute path."""
    from loratrace.store.segments import ensure_schema_segments, remove_stale_temporaries

    path = Path(store).resolve()
    path.mkdir(parents=True, exist_ok=True)
    (path / layout.STATE).mkdir(exist_ok=True)
    (path / layout.STATE / readlock.LOCK).touch(exist_ok=True)  # before any reader or deletion needs it
    remove_stale_temporaries(path)
    ensure_schema_segments(path)
    if not _catalog_current(path / layout.CATALOG, path):
        build_catalog(path)
    return path


def _catalog_current(catalog: Path, store: Path) -> bool:
    if not catalog.exists():
        return False
    try:
        con = duckdb.connect(str(catalog), read_only=True)
    except duckdb.Error:
        return False
    try:
        con.execute("SET file_search_path = ?", [str(store)])
        row = con.execute("SELECT max(version) FROM loratrace_catalog").fetchall()
        return bool(row) and row[0][0] == CATALOG_VERSION
    except duckdb.Error:
        return False
    finally:
        con.close()
