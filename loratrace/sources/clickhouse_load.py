"""Copy a local store's spans into an ``otel_traces`` table, row for row as the ClickHouse exporter maps OTLP.

For a first look at ClickHouse with traffic already collected, and for comparing the two engines on the same
spans. ClickHouse reads the store's Parquet segments itself (only the files a reader counts now, see
``loratrace.store.visibility``) and rebuilds each span as the exporter writes it: attributes as text in maps
(strings as they are, numbers and booleans spelled out, arrays as JSON), ``SPAN_KIND_*`` / ``STATUS_CODE_*``,
events and links as the ``Events.*`` / ``Links.*`` nested columns in their original order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from loratrace.sources.clickhouse_sql import check_table
from loratrace.store.readers import counted_files

OTEL_COLUMNS: Final = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
)


def _text_map(json_column: str) -> str:
    # the store keeps typed JSON; the exporter keeps text: a JSON string loses its quotes, anything else
    # (numbers, true / false, arrays) is already spelled as the exporter spells it
    pairs = f"JSONExtractKeysAndValuesRaw(ifNull({json_column}, '{{}}'))"
    return (
        f"mapFromArrays(arrayMap(kv -> kv.1, {pairs}), "
        f"arrayMap(kv -> if(startsWith(kv.2, '\"'), JSONExtractString(kv.2), kv.2), {pairs}))"
    )


def _segments(store: Path, table: str) -> str:
    return f"file('{store}/segments/{table}/*/*.parquet', Parquet)"


def insert_sql(store: Path, table: str) -> str:
    """``INSERT INTO table SELECT …`` from the store's counted segments (``{spans:Array(String)}`` etc. bound)."""
    columns = ", ".join(f"`{c}`" for c in OTEL_COLUMNS)
    return f"""INSERT INTO {check_table(table)} ({columns})
SELECT
    fromUnixTimestamp64Nano(s.start_time_unix_nano), s.trace_id, s.span_id, ifNull(s.parent_span_id, ''),
    ifNull(s.trace_state, ''), s.name, concat('SPAN_KIND_', s.kind), ifNull(s.service_name, ''),
    {_text_map("s.resource_attributes")}, ifNull(s.scope_name, ''), ifNull(s.scope_version, ''),
    {_text_map("s.attributes")}, toUInt64(s.duration_ns), concat('STATUS_CODE_', s.status_code),
    ifNull(s.status_message, ''),
    ifNull(e.times, []), ifNull(e.names, []), ifNull(e.attributes, []),
    ifNull(l.trace_ids, []), ifNull(l.span_ids, []), ifNull(l.states, []), ifNull(l.attributes, [])
FROM (SELECT * FROM {_segments(store, "spans")} WHERE _path IN {{spans:Array(String)}}) AS s
LEFT JOIN (
    SELECT trace_id, span_id,
        arrayMap(x -> x.2, arraySort(groupArray((event_index, fromUnixTimestamp64Nano(time_unix_nano))))) AS times,
        arrayMap(x -> x.2, arraySort(groupArray((event_index, name)))) AS names,
        arrayMap(x -> x.2, arraySort(groupArray((event_index, {_text_map("attributes")})))) AS attributes
    FROM {_segments(store, "span_events")} WHERE _path IN {{span_events:Array(String)}}
    GROUP BY trace_id, span_id
) AS e ON e.trace_id = s.trace_id AND e.span_id = s.span_id
LEFT JOIN (
    SELECT trace_id, span_id,
        arrayMap(x -> x.2, arraySort(groupArray((link_index, linked_trace_id)))) AS trace_ids,
        arrayMap(x -> x.2, arraySort(groupArray((link_index, linked_span_id)))) AS span_ids,
        arrayMap(x -> x.2, arraySort(groupArray((link_index, ifNull(linked_trace_state, ''))))) AS states,
        arrayMap(x -> x.2, arraySort(groupArray((link_index, {_text_map("attributes")})))) AS attributes
    FROM {_segments(store, "span_links")} WHERE _path IN {{span_links:Array(String)}}
    GROUP BY trace_id, span_id
) AS l ON l.trace_id = s.trace_id AND l.span_id = s.span_id
SETTINGS join_use_nulls = 1"""


def insert_params(store: Path) -> dict[str, list[str]]:
    """The counted segment paths of each table (one listing, so a compaction meanwhile double counts nothing)."""
    return {
        table: [str(p) for p in counted_files(store, table) if p.name != "_schema.parquet"] or [""]
        for table in ("spans", "span_events", "span_links")
    }
