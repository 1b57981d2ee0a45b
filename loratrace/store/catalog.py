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
from loratrace.store import layout, promotion, readlock, schema, visibility

# 5: the spans and generations views name the served_after_fallback column
# 6: the feedback view (loratrace.feedback spans joined to the generation they are about)
# 7: writer ids in segment names (the views match covers per writer)
CATALOG_VERSION: Final = 7


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
    statements.append(feedback_view_statement())
    return statements


def generations_view_statement() -> str:
    """``generations``: one row per generation span, its promoted columns and its evaluations' pass counts.

    A generation is a span whose ``gen_ai.operation.name`` is one of ``semconv.GENERATION_OPERATIONS``: adapter
    loads and vLLM's batch parent span carry no operation, so they are not traffic.
    """
    columns = ", ".join(f"s.{c}" for c in (*schema.GENERATION_SPAN_COLUMNS, *schema.PROMOTED_TYPES))
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


FEEDBACK_GENERATION_COLUMNS: Final = promotion.copied_to("feedback")
"""The columns of the generation a feedback is about that the ``feedback`` view carries."""


def feedback_view_statement() -> str:
    """``feedback``: one row per feedback id, joined to the generation it is about.

    The target is the span named by ``loratrace.feedback.span_id`` when that is a generation, else the last
    generation of the trace. Rows are de-duplicated by ``loratrace.feedback.id`` (the earliest copy wins), so
    sending or importing the same feedback again changes nothing. ``delay_s`` is the time from the end of the
    answer to the feedback: what the completeness of recent windows is estimated from.
    """

    def attribute(name: str) -> str:
        return f"attributes['{name}']"

    def chosen(column: str) -> str:
        # column by column from one generation: a coalesce would mix a base answer's NULL adapter with another's
        return f"CASE WHEN exact.span_id IS NOT NULL THEN exact.{column} ELSE last.{column} END"

    generation = ", ".join(f"{chosen(c)} AS {c}" for c in FEEDBACK_GENERATION_COLUMNS)
    generation_columns = ", ".join(
        ("trace_id", "span_id", "start_time", "end_time_unix_nano", *FEEDBACK_GENERATION_COLUMNS)
    )
    operations = ", ".join(f"'{op}'" for op in semconv.GENERATION_OPERATIONS)
    return (
        "CREATE OR REPLACE VIEW feedback AS WITH f AS ("
        f"SELECT coalesce({attribute(semconv.FEEDBACK_ID)}, span_id) AS feedback_id, "
        f"{attribute(semconv.FEEDBACK_KIND)} AS kind, "
        f"TRY_CAST({attribute(semconv.FEEDBACK_VALUE)} AS DOUBLE) AS value, "
        f"{attribute(semconv.FEEDBACK_VALUE)} AS value_text, "
        f"lower({attribute(semconv.FEEDBACK_TRACE_ID)}) AS target_trace_id, "
        f"lower({attribute(semconv.FEEDBACK_SPAN_ID)}) AS target_span_id, "
        f"{attribute(semconv.FEEDBACK_SOURCE)} AS source, "
        "start_time AS time, start_time_unix_nano AS time_unix_nano, service_name, "
        "trace_id AS feedback_trace_id, span_id AS feedback_span_id, attributes "
        f"FROM spans WHERE name = '{semconv.FEEDBACK_SPAN}' "
        f"QUALIFY row_number() OVER (PARTITION BY coalesce({attribute(semconv.FEEDBACK_ID)}, span_id) "
        "ORDER BY start_time_unix_nano, trace_id, span_id) = 1), "
        # only the traces feedback names: a window over every generation of a large store costs tens of seconds
        f"g AS (SELECT {generation_columns}, row_number() OVER (PARTITION BY trace_id "
        "ORDER BY end_time_unix_nano DESC, span_id) AS from_last FROM spans "
        f"WHERE operation_name IN ({operations}) AND trace_id IN (SELECT target_trace_id FROM f)) "
        f"SELECT f.*, {chosen('span_id')} AS generation_span_id, {generation}, "
        f"{chosen('start_time')} AS generation_time, "
        f"(f.time_unix_nano - {chosen('end_time_unix_nano')}) / 1e9 AS delay_s "
        "FROM f LEFT JOIN g AS exact ON exact.trace_id = f.target_trace_id AND exact.span_id = f.target_span_id "
        "LEFT JOIN g AS last ON last.trace_id = f.target_trace_id AND last.from_last = 1"
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
