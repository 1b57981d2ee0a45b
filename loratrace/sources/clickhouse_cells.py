"""The cells of the analyses as one ClickHouse query: only the small frame of sufficient statistics comes back.

The arm keys follow ``loratrace.analysis.load`` (adapter arm: ``adapter_name`` set and ``variant`` not ``base``;
missing cohort / route read ``(none)``; quantization ``method/bits``) and each metric's value is its own
``value_sql`` (``loratrace.analysis.metrics``), translated to ClickHouse by sqlglot, so the two engines compute
the same cells from one definition. Metrics are unrolled with ``arrayJoin`` so the table is read once for all of
them; evaluation metrics read the ``Events`` arrays of the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Final

import sqlglot

from loratrace import semconv
from loratrace.analysis.load import KEY_COLUMNS, NONE_LABEL
from loratrace.analysis.metrics import Metric
from loratrace.sources import clickhouse_sql as chsql
from loratrace.store import schema

_GROUP: Final = (*KEY_COLUMNS, "metric", "window_start")


@lru_cache(maxsize=256)
def to_clickhouse(value_sql: str) -> str:
    """A metric's value expression in ClickHouse SQL (written for DuckDB / Polars; sqlglot translates)."""
    return sqlglot.transpile(value_sql, read="duckdb", write="clickhouse")[0]


def arm_keys(columns: dict[str, str]) -> dict[str, str]:
    """The cell keys over a row whose promoted columns are ``columns`` (name -> expression)."""
    is_adapter = f"({columns['adapter_name']} IS NOT NULL AND ifNull({columns['variant']}, '') != 'base')"
    method, bits = columns["model_quantization_method"], columns["model_quantization_bits"]
    suffix = f"if({bits} IS NULL, '', concat('/', toString({bits})))"
    return {
        "adapter": f"if({is_adapter}, {columns['adapter_name']}, NULL)",
        "adapter_id": f"if({is_adapter}, {columns['adapter_id']}, NULL)",
        "arm": f"if({is_adapter}, 'adapter', 'base')",
        "cohort": f"ifNull({columns['cohort']}, {chsql.literal(NONE_LABEL)})",
        "route": f"ifNull({columns['route_name']}, {chsql.literal(NONE_LABEL)})",
        "prompt_version": columns["prompt_version"],
        "quantization": f"if({method} IS NULL, NULL, concat({method}, {suffix}))",
        "base_model": f"coalesce({columns['base_model_name']}, if(NOT {is_adapter}, {columns['model']}, NULL))",
    }


def _window(time_expression: str, window: timedelta | None) -> str:
    if window is None:
        return "CAST(NULL AS Nullable(DateTime64(6, 'UTC')))"
    micros = window // timedelta(microseconds=1)
    if micros <= 0:
        msg = f"a cell window must be positive, got {window}"
        raise ValueError(msg)
    # epoch-aligned like Polars' dt.truncate for a fixed duration
    return f"fromUnixTimestamp64Micro(intDiv(toUnixTimestamp64Micro({time_expression}), {micros}) * {micros}, 'UTC')"


def _filters(*, traffic: str, example_id: str, adapters: bool, cohorts: bool) -> list[str]:
    terms = []
    if traffic == "production":
        terms.append(f"{example_id} IS NULL")
    elif traffic == "replay":
        terms.append(f"{example_id} IS NOT NULL")
    if adapters:
        terms.append("(k_arm = 'base' OR k_adapter IN {adapters:Array(String)})")
    if cohorts:
        terms.append("k_cohort IN {cohorts:Array(String)}")
    return terms


def _metric_array(metrics: Sequence[Metric], *, evals: bool) -> str:
    items = []
    for metric in metrics:
        value = f"toNullable(toFloat64({to_clickhouse(metric.value_sql)}))"
        if evals:
            value = f"if(name = {chsql.literal(metric.eval_name or '')}, {value}, NULL)"
        items.append(f"tuple({chsql.literal(metric.name)}, {value})")
    return f"arrayJoin([{', '.join(items)}])"


def _aggregate(inner: str) -> str:
    keys = ", ".join(f"k_{k} AS {k}" for k in KEY_COLUMNS)
    group = ", ".join(_GROUP)
    return (
        f"SELECT {keys}, m.1 AS metric, window_start, toInt64(count()) AS n, sum(m.2) AS sum, "
        f"sum(m.2 * m.2) AS sum_sq FROM ({inner}) WHERE m.2 IS NOT NULL GROUP BY {group}"
    )


def cells_sql(
    table: str,
    metrics: Sequence[Metric],
    *,
    window: timedelta | None,
    materialized: Sequence[str] | frozenset[str] = (),
    since: bool = False,
    until: bool = False,
    traffic: str = "all",
    adapters: bool = False,
    cohorts: bool = False,
    generations: str | None = None,
) -> str:
    """One query for the cells of ``metrics``; parameters ``since_ns``, ``until_ns``, ``adapters``, ``cohorts``.

    The result has ``loratrace.analysis.cells.CELL_COLUMNS`` (``window_start`` in UTC). ``generations`` replaces
    the ``generations`` relation (with more columns, such as the feedback counts of :func:`with_feedback_sql`).
    """
    parts = []
    promoted = chsql.promoted_columns(materialized=materialized)
    keys = arm_keys(promoted)
    keyed = ", ".join(f"{expression} AS k_{name}" for name, expression in keys.items())
    on_generations = [m for m in metrics if m.source == "generations"]
    on_evals = [m for m in metrics if m.source == "evals"]
    if on_generations:
        generations = generations or chsql.generations_sql(table, materialized=materialized, since=since, until=until)
        where = _filters(traffic=traffic, example_id="example_id", adapters=adapters, cohorts=cohorts)
        named = arm_keys({c: c for c in schema.PROMOTED_TYPES})  # the subquery's columns carry the names
        keyed_generations = ", ".join(f"{expression} AS k_{name}" for name, expression in named.items())
        inner = (
            f"SELECT {keyed_generations}, {_window('start_time', window)} AS window_start, "
            f"{_metric_array(on_generations, evals=False)} AS m FROM ({generations}) AS g"
        )
        if where:
            inner += f" WHERE {' AND '.join(where)}"
        parts.append(_aggregate(inner))
    if on_evals:
        fields = chsql.eval_fields("ev_attributes")
        where = [
            f"ev_name = {chsql.literal(semconv.GEN_AI_EVALUATION_RESULT_EVENT)}",
            *(["ev_time >= fromUnixTimestamp64Nano({since_ns:Int64})"] if since else []),
            *(["ev_time < fromUnixTimestamp64Nano({until_ns:Int64})"] if until else []),
            *_filters(traffic=traffic, example_id=promoted["example_id"], adapters=adapters, cohorts=cohorts),
        ]
        rows = (
            f"SELECT {keyed}, {_window('ev_time', window)} AS window_start, "
            + ", ".join(f"{fields[f]} AS {f}" for f in ("name", "score", "passed", "label"))
            + f" FROM {chsql.check_table(table)} "
            "ARRAY JOIN Events.Timestamp AS ev_time, Events.Name AS ev_name, Events.Attributes AS ev_attributes "
            f"WHERE {' AND '.join(where)}"
        )
        inner = f"SELECT *, {_metric_array(on_evals, evals=True)} AS m FROM ({rows})"
        parts.append(_aggregate(inner))
    if not parts:
        msg = "cells_sql(metrics=...) got no metrics"
        raise ValueError(msg)
    # join_use_nulls: standard LEFT JOINs (NULL without a match) in a generations relation that joins
    return " UNION ALL ".join(parts) + " SETTINGS cast_keep_nullable = 1, join_use_nulls = 1"


@dataclass(frozen=True)
class Scan:
    """What a selection's statement reads: the table, the promoted columns it holds itself, whether the time
    bounds ``since_ns`` / ``until_ns`` are bound, and which traffic."""

    table: str
    materialized: Sequence[str] | frozenset[str] = ()
    since: bool = False
    until: bool = False
    traffic: str = "all"


def present_sql(scan: Scan) -> str:
    """Adapters, cohorts and generation count of a selection, in one row."""
    table, materialized, since, until, traffic = scan.table, scan.materialized, scan.since, scan.until, scan.traffic
    generations = chsql.generations_sql(table, materialized=materialized, since=since, until=until)
    keys = arm_keys({c: c for c in schema.PROMOTED_TYPES})
    where = _filters(traffic=traffic, example_id="example_id", adapters=False, cohorts=False)
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    return (
        f"SELECT arraySort(groupUniqArrayIf({keys['adapter']}, {keys['adapter']} IS NOT NULL)) AS adapter, "
        f"arraySort(groupUniqArray({keys['cohort']})) AS cohort, toInt64(count()) AS rows "
        f"FROM ({generations}){condition}"
    )


def eval_names_sql(scan: Scan) -> str:
    """The evaluation names in a selection (the evaluation events' own times, as the local ``evals``)."""
    table, materialized, since, until, traffic = scan.table, scan.materialized, scan.since, scan.until, scan.traffic
    promoted = chsql.promoted_columns(materialized=materialized)
    name = chsql.eval_fields("ev_attributes")["name"]
    where = [
        f"ev_name = {chsql.literal(semconv.GEN_AI_EVALUATION_RESULT_EVENT)}",
        *(["ev_time >= fromUnixTimestamp64Nano({since_ns:Int64})"] if since else []),
        *(["ev_time < fromUnixTimestamp64Nano({until_ns:Int64})"] if until else []),
        *_filters(traffic=traffic, example_id=promoted["example_id"], adapters=False, cohorts=False),
    ]
    return (
        f"SELECT DISTINCT {name} AS name FROM {chsql.check_table(table)} "
        "ARRAY JOIN Events.Timestamp AS ev_time, Events.Name AS ev_name, Events.Attributes AS ev_attributes "
        f"WHERE {' AND '.join(where)} AND name IS NOT NULL ORDER BY name"
    )


def spike_counts_sql(
    table: str,
    metrics: Sequence[Metric],
    *,
    window: timedelta,
    materialized: Sequence[str] | frozenset[str] = (),
    since: bool = False,
    until: bool = False,
) -> str:
    """:func:`loratrace.analysis.spikes.window_ids` inside ClickHouse: per adapter × id × window, the last span's
    time and each metric's ``n:<name>`` / ``events:<name>``, from the metrics' own SQL."""
    generations = chsql.generations_sql(table, materialized=materialized, since=since, until=until)
    keys = arm_keys({c: c for c in schema.PROMOTED_TYPES})
    values = ", ".join(f"toNullable(toFloat64({to_clickhouse(m.value_sql)})) AS v{i}" for i, m in enumerate(metrics))
    counted = ", ".join(
        f"toInt64(count(v{i})) AS {chsql.quoted('n:' + m.name)}, "
        f"ifNull(sum(v{i}), 0) AS {chsql.quoted('events:' + m.name)}"
        for i, m in enumerate(metrics)
    )
    return (
        f"SELECT k_adapter AS adapter, k_adapter_id AS adapter_id, window_start, max(start_time) AS last_seen, "
        f"{counted} FROM (SELECT {keys['adapter']} AS k_adapter, {keys['adapter_id']} AS k_adapter_id, "
        f"{_window('start_time', window)} AS window_start, start_time, {values} FROM ({generations}) AS g) "
        "GROUP BY adapter, adapter_id, window_start SETTINGS cast_keep_nullable = 1"
    )


def with_feedback_sql(generations: str, feedback: str, kinds: Sequence[str]) -> str:
    """``generations`` with a ``feedback:<kind>`` column per kind, as ``loratrace.analysis.feedback.with_feedback``
    adds it: the number of that feedback on the generation, NULL where it could not have received any (replay,
    shadow traffic, a route the kind was never received on: ``{routes<i>:Array(String)}`` bound per kind)."""
    could = f"(g.example_id IS NULL AND ifNull(g.variant, '') != {chsql.literal('shadow')})"
    counts = ", ".join(f"toInt64(countIf(kind = {{kind{i}:String}})) AS c{i}" for i in range(len(kinds)))
    columns = ", ".join(
        f"if({could} AND ifNull(g.route_name, {chsql.literal(NONE_LABEL)}) IN {{routes{i}:Array(String)}}, "
        f"ifNull(c.c{i}, 0), NULL) AS {chsql.quoted('feedback:' + kind)}"
        for i, kind in enumerate(kinds)
    )
    return (
        f"SELECT g.*, {columns} FROM ({generations}) AS g LEFT JOIN (SELECT trace_id, span_id, {counts} "
        f"FROM ({feedback}) GROUP BY trace_id, span_id) AS c ON g.trace_id = c.trace_id AND g.span_id = c.span_id"
    )


def feedback_ages_sql(with_feedback: str, column: str, *, window: timedelta) -> str:
    """Per window and second of start time, the generations that could receive a kind of feedback and those that
    did, with their mean age before ``{now_us:Int64}`` (``loratrace.analysis.feedback.completeness_of_ages``)."""
    value = chsql.quoted(column)
    return (
        f"SELECT {_window('start_time', window)} AS window_start, "
        "(toFloat64({now_us:Int64}) - avg(toUnixTimestamp64Micro(start_time))) / 1e6 AS age_s, "
        f"toInt64(count()) AS generations, toInt64(countIf({value} > 0)) AS with_feedback "
        f"FROM ({with_feedback}) WHERE {value} IS NOT NULL "
        "GROUP BY window_start, toStartOfSecond(start_time) SETTINGS join_use_nulls = 1"
    )
