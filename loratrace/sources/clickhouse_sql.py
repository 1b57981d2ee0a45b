"""ClickHouse SQL for the store's relations over the OpenTelemetry Collector exporter's ``otel_traces`` table.

The exporter writes every attribute as text into ``SpanAttributes`` (``Map(LowCardinality(String), String)``:
numbers and booleans in their decimal / ``true`` spelling, arrays as JSON). The relations here give ClickHouse
the columns of the local store's views (``spans``, ``span_events``, ``evals``, ``generations``) by rendering the
one table of promotion rules (``loratrace.store.promotion``: column <- the attributes that feed it, first
present wins) as SQL, so a column or alias added there reaches ClickHouse with no second copy. Tables built
from ``collector-config/clickhouse/otel_traces_loratrace.sql`` hold the promoted columns MATERIALIZED from the
same expressions; the relations then read those columns instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from loratrace import semconv
from loratrace.store import promotion, schema

SPAN_ATTRIBUTES: Final = "SpanAttributes"
_IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def check_table(table: str) -> str:
    """``table`` (``name`` or ``database.name``) when it is a plain identifier; it is spliced into SQL."""
    if not _IDENTIFIER.match(table):
        msg = f"a ClickHouse table is a plain name or database.name (letters, digits, _), got {table!r}"
        raise ValueError(msg)
    return table


def literal(text: str) -> str:
    """A ClickHouse string literal (for names fixed in loratrace's code, never for user input)."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def quoted(name: str) -> str:
    """A ClickHouse identifier for a column name fixed in loratrace's code (``n:error_rate``)."""
    escaped = name.replace("\\", "\\\\").replace("`", "\\`")
    return f"`{escaped}`"


def attribute(name: str, *, map_column: str = SPAN_ATTRIBUTES) -> str:
    """An attribute's text, NULL when the span does not carry it (a map lookup alone gives '' then)."""
    key = literal(name)
    return f"if(mapContains({map_column}, {key}), {map_column}[{key}], NULL)"


def _typed(kind: promotion.Kind, text: str) -> str:
    if kind == "int":  # the collector's rule: int(float(value)), so "3.0" is 3
        return f"CAST(toFloat64OrNull({text}) AS Nullable(Int64))"
    if kind == "float":
        return f"toFloat64OrNull({text})"
    if kind == "bool":
        return f"multiIf(lower({text}) = 'true', true, lower({text}) = 'false', false, NULL)"
    return text


def promoted_expression(column: str, *, map_column: str = SPAN_ATTRIBUTES, status_column: str = "StatusCode") -> str:
    """The ClickHouse expression of one promoted column, from its rule in the promotion table.

    Array columns (``adapter_target_modules``) are ``Array(String)``, empty when absent: ClickHouse has no
    nullable arrays.
    """
    rule = promotion.BY_COLUMN[column]
    names = rule.sources
    texts = [attribute(name, map_column=map_column) for name in names]
    if rule.kind == "string_list":
        return f"JSONExtract(ifNull({texts[0]}, '[]'), 'Array(String)')"
    parts = [
        f"nullIf(JSONExtractString(ifNull({t}, '[]'), 1), '')" if name in rule.array_sources else _typed(rule.kind, t)
        for name, t in zip(names, texts, strict=True)
    ]
    expression = parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"
    if rule.scale != 1.0:  # e.g. seconds on the wire, milliseconds in the column
        expression = f"{expression} * {rule.scale!r}"
    if rule.exception_fallback:  # a failed span without the attribute still names its exception
        exception = (
            "nullIf(arrayFirst(a -> mapContains(a, 'exception.type'), "
            "arrayFilter((a, n) -> n = 'exception', Events.Attributes, Events.Name))['exception.type'], '')"
        )
        expression = f"coalesce({expression}, if({_status(status_column)} = 'ERROR', {exception}, NULL))"
    return expression


def _kind(column: str) -> str:
    # the exporter spells kinds SPAN_KIND_SERVER (older releases) or Server; the store spells SERVER (a plain
    # replace, not a regular expression: this runs on every row of every analysis)
    return f"replaceOne(upper({column}), 'SPAN_KIND_', '')"


def _status(column: str) -> str:
    return f"replaceOne(upper({column}), 'STATUS_CODE_', '')"


def clickhouse_type(column: str) -> str:
    """The ClickHouse type of a promoted column.

    Text columns are ``LowCardinality`` (adapter names, cohorts, routes, versions: a few thousand values at most)
    except the per-request ones: the cells group by eight of them.
    """
    rule = promotion.BY_COLUMN[column]
    if rule.kind == "string" and not rule.per_request:
        return "LowCardinality(Nullable(String))"
    return _CLICKHOUSE_TYPES[rule.kind]


_CLICKHOUSE_TYPES: Final[dict[promotion.Kind, str]] = {
    "string": "Nullable(String)",
    "int": "Nullable(Int64)",
    "float": "Nullable(Float64)",
    "bool": "Nullable(Bool)",
    "string_list": "Array(String)",
}


def span_columns() -> dict[str, str]:
    """The store's plain span columns as expressions over an ``otel_traces`` row."""
    return {
        "trace_id": "TraceId",
        "span_id": "SpanId",
        "parent_span_id": "nullIf(ParentSpanId, '')",
        "trace_state": "nullIf(TraceState, '')",
        "name": "SpanName",
        "kind": _kind("SpanKind"),
        "service_name": "nullIf(ServiceName, '')",
        "scope_name": "nullIf(ScopeName, '')",
        "scope_version": "nullIf(ScopeVersion, '')",
        "start_time_unix_nano": "toUnixTimestamp64Nano(Timestamp)",
        "end_time_unix_nano": "toUnixTimestamp64Nano(Timestamp) + toInt64(Duration)",
        "duration_ns": "toInt64(Duration)",
        "start_time": "toDateTime64(Timestamp, 6, 'UTC')",
        "status_code": _status("StatusCode"),
        "status_message": "nullIf(StatusMessage, '')",
        "resource_attributes": "ResourceAttributes",
        "attributes": "SpanAttributes",
        "date": "toDate(Timestamp)",
    }


def promoted_columns(*, materialized: Iterable[str] = ()) -> dict[str, str]:
    """Every promoted column's expression; a column the table already materializes is read as it is."""
    present = set(materialized)
    return {column: column if column in present else promoted_expression(column) for column in schema.PROMOTED_TYPES}


def time_filter(*, since: bool, until: bool) -> str:
    """``WHERE`` terms on ``Timestamp`` (the partition key) with bound parameters ``since_ns`` / ``until_ns``."""
    terms = ["1"]
    if since:
        terms.append("Timestamp >= fromUnixTimestamp64Nano({since_ns:Int64})")
    if until:
        terms.append("Timestamp < fromUnixTimestamp64Nano({until_ns:Int64})")
    return " AND ".join(terms)


def _select(columns: dict[str, str]) -> str:
    return ", ".join(f"{expression} AS {name}" for name, expression in columns.items())


def spans_sql(table: str, *, materialized: Iterable[str] = (), since: bool = False, until: bool = False) -> str:
    """The ``spans`` relation: the store's span columns and every promoted column."""
    columns = {**span_columns(), **promoted_columns(materialized=materialized)}
    return f"SELECT {_select(columns)} FROM {check_table(table)} WHERE {time_filter(since=since, until=until)}"


_EVAL_ATTRIBUTES: Final = {
    "name": semconv.GEN_AI_EVALUATION_NAME,
    "score": semconv.GEN_AI_EVALUATION_SCORE_VALUE,
    "label": semconv.GEN_AI_EVALUATION_SCORE_LABEL,
    "explanation": semconv.GEN_AI_EVALUATION_EXPLANATION,
}


def eval_fields(event_attributes: str) -> dict[str, str]:
    """An evaluation event's fields from its attribute map (the collector's ``_add_events`` rule)."""
    text = {key: attribute(name, map_column=event_attributes) for key, name in _EVAL_ATTRIBUTES.items()}
    passed = attribute(semconv.EVALUATION_PASSED, map_column=event_attributes)
    return {
        "name": text["name"],
        "score": f"toFloat64OrNull({text['score']})",
        "label": text["label"],
        "passed": f"multiIf(lower({passed}) = 'true', true, lower({passed}) = 'false', false, NULL)",
        "explanation": text["explanation"],
    }


def span_events_sql(
    table: str,
    *,
    materialized: Iterable[str] = (),
    since: bool = False,
    until: bool = False,
    evaluations_only: bool = False,
) -> str:
    """The ``span_events`` relation: one row per event, with the store's eval columns and span columns."""
    promoted = promoted_columns(materialized=materialized)
    fields = eval_fields("ev_attributes")
    is_eval = f"ev_name = {literal(semconv.GEN_AI_EVALUATION_RESULT_EVENT)}"
    columns = {
        "trace_id": "TraceId",
        "span_id": "SpanId",
        "event_index": "toInt64(ev_index - 1)",
        "time_unix_nano": "toUnixTimestamp64Nano(ev_time)",
        "time": "toDateTime64(ev_time, 6, 'UTC')",
        "name": "ev_name",
        "attributes": "ev_attributes",
        **{f"eval_{key}": f"if({is_eval}, {expression}, NULL)" for key, expression in fields.items()},
        "service_name": "nullIf(ServiceName, '')",
        **{column: promoted[column] for column in schema.EVENT_SPAN_COLUMNS},
        "date": "toDate(ev_time)",
    }
    return (
        f"SELECT {_select(columns)} FROM {check_table(table)} "
        "ARRAY JOIN Events.Timestamp AS ev_time, Events.Name AS ev_name, Events.Attributes AS ev_attributes, "
        "arrayEnumerate(Events.Name) AS ev_index "
        f"WHERE {time_filter(since=since, until=until)}{f' AND {is_eval}' if evaluations_only else ''}"
    )


def evals_sql(table: str, *, materialized: Iterable[str] = (), since: bool = False, until: bool = False) -> str:
    """The ``evals`` relation: one row per ``gen_ai.evaluation.result`` event (the store's ``evals`` view)."""
    span_cols = ", ".join(schema.EVENT_SPAN_COLUMNS)
    events = span_events_sql(table, materialized=materialized, since=since, until=until, evaluations_only=True)
    return (
        "SELECT trace_id, span_id, time, time_unix_nano, eval_name AS name, eval_score AS score, "
        "eval_label AS label, eval_passed AS passed, eval_explanation AS explanation, service_name, "
        f"{span_cols}, date FROM ({events})"
    )


def generations_sql(
    table: str, *, materialized: Iterable[str] = (), since: bool = False, until: bool = False, eval_arrays: bool = False
) -> str:
    """The ``generations`` relation: generation spans, promoted columns, their evaluations' pass counts.

    ``eval_arrays`` adds ``_eval_name`` / ``_eval_score`` / ``_eval_passed`` / ``_eval_label`` (one element per
    evaluation event), which the cells query unrolls for evaluation metrics without reading the table twice.
    """
    spans = span_columns()
    promoted = promoted_columns(materialized=materialized)
    operation = promoted["operation_name"]
    operations = ", ".join(literal(op) for op in semconv.GENERATION_OPERATIONS)
    is_eval = f"n = {literal(semconv.GEN_AI_EVALUATION_RESULT_EVENT)}"
    passed = eval_fields("a")["passed"]
    arrays = "Events.Name, Events.Attributes"
    columns = {
        **{name: spans[name] for name in schema.GENERATION_SPAN_COLUMNS},
        **promoted,
        "evals": f"toInt64(arrayCount(n -> {is_eval}, Events.Name))",
        **{
            f"evals_{outcome}": f"toInt64(arrayCount((n, a) -> {is_eval} AND {passed} = {value}, {arrays}))"
            for outcome, value in (("passed", "true"), ("failed", "false"))
        },
        "date": spans["date"],
    }
    if eval_arrays:
        fields = eval_fields("a")
        for key in ("name", "score", "passed", "label"):
            columns[f"_eval_{key}"] = (
                f"arrayMap(a -> {fields[key]}, arrayFilter((a, n) -> {is_eval}, Events.Attributes, Events.Name))"
            )
    where = time_filter(since=since, until=until)
    return f"SELECT {_select(columns)} FROM {check_table(table)} WHERE {where} AND {operation} IN ({operations})"


_EXPORTER_COLUMNS: Final = """    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),"""
"""The columns the exporter writes, in its order."""


def materialized_ddl(table: str = "otel_traces", *, ttl_days: int = 30) -> str:
    """``CREATE TABLE`` of ``otel_traces`` with loratrace's promoted columns MATERIALIZED, adapter first in order.

    The columns the exporter writes are those of its own schema, unchanged, so the exporter inserts into this
    table as into its own (``create_schema: false``). ``collector-config/clickhouse/otel_traces_loratrace.sql``
    is this text; a test keeps them equal.
    """
    promoted = "\n".join(
        f"    {column} {clickhouse_type(column)} MATERIALIZED {promoted_expression(column)},"
        for column in schema.PROMOTED_TYPES
    )
    return f"""-- The OpenTelemetry Collector ClickHouse exporter's otel_traces table, plus loratrace's promoted columns
-- MATERIALIZED from SpanAttributes (computed once at insert) and adapter / cohort leading the ORDER BY, so the
-- cells of an analysis read a few narrow columns of the adapters asked for instead of every attribute map.
-- Generated by loratrace.sources.clickhouse_sql.materialized_ddl(); the exporter needs create_schema: false.
CREATE TABLE IF NOT EXISTS {check_table(table)} (
{_EXPORTER_COLUMNS}
{promoted}
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree()
PARTITION BY toDate(Timestamp)
ORDER BY (ifNull(adapter_name, ''), ifNull(cohort, ''), toStartOfHour(Timestamp), ServiceName, SpanName)
TTL toDateTime(Timestamp) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;
"""


def exporter_ddl(table: str = "otel_traces", *, ttl_days: int = 30) -> str:
    """The OpenTelemetry Collector ClickHouse exporter's own ``otel_traces`` table, as it creates it.

    ``collector-config/clickhouse/otel_traces.sql`` is this text; a test keeps them equal.
    """
    return f"""-- The OpenTelemetry Collector ClickHouse exporter's otel_traces table, as the exporter creates it
-- (exporter/clickhouseexporter/internal/sql_templates/traces_table.sql, MergeTree, 30-day TTL). loratrace reads
-- adapter, cohort and tokens from SpanAttributes; otel_traces_loratrace.sql is the faster variant.
CREATE TABLE IF NOT EXISTS {check_table(table)} (
{_EXPORTER_COLUMNS}
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree()
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
TTL toDateTime(Timestamp) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;
"""
