"""The store's tables: column names and Polars types of every Parquet segment, and the promoted attributes.

Promoted columns, their types and the attributes that feed them come from the one table of promotion rules,
``loratrace.store.promotion``.
Attribute maps are stored as JSON object text (typed values: numbers stay numbers) so that a new key never
changes a segment's schema; the catalog's views expose them as DuckDB ``MAP(VARCHAR, VARCHAR)``. JSON rather
than Parquet maps because building it is several times cheaper in the decoding loop, the collector's
bottleneck.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from loratrace.store import promotion

PROMOTED_TYPES: Final[dict[str, pl.DataType]] = promotion.PROMOTED_TYPES
"""Promoted column -> Polars type, from the promotion table (``loratrace.store.promotion``)."""

SPAN_COLUMNS: Final[dict[str, pl.DataType]] = {
    "trace_id": pl.String(),
    "span_id": pl.String(),
    "parent_span_id": pl.String(),
    "trace_state": pl.String(),
    "name": pl.String(),
    "kind": pl.String(),
    "service_name": pl.String(),
    "scope_name": pl.String(),
    "scope_version": pl.String(),
    "start_time_unix_nano": pl.Int64(),
    "end_time_unix_nano": pl.Int64(),
    "duration_ns": pl.Int64(),
    "start_time": pl.Datetime("us"),
    "status_code": pl.String(),
    "status_message": pl.String(),
    "resource_attributes": pl.String(),
    "attributes": pl.String(),
}
"""The span columns every span has, whatever its attributes."""

SPANS: Final[dict[str, pl.DataType]] = {**SPAN_COLUMNS, **PROMOTED_TYPES}

EVENT_SPAN_COLUMNS: Final = promotion.copied_to("span_events")
"""The promoted span columns copied onto each event row, so that ``evals`` groups by adapter without a join."""

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
"""The span columns the ``generations`` relation keeps beside every promoted column (DuckDB and ClickHouse)."""

SPAN_EVENTS: Final[dict[str, pl.DataType]] = {
    "trace_id": pl.String(),
    "span_id": pl.String(),
    "event_index": pl.Int64(),
    "time_unix_nano": pl.Int64(),
    "time": pl.Datetime("us"),
    "name": pl.String(),
    "attributes": pl.String(),
    "eval_name": pl.String(),
    "eval_score": pl.Float64(),
    "eval_label": pl.String(),
    "eval_passed": pl.Boolean(),
    "eval_explanation": pl.String(),
    "service_name": pl.String(),
    **{name: PROMOTED_TYPES[name] for name in EVENT_SPAN_COLUMNS},
}

SPAN_LINKS: Final[dict[str, pl.DataType]] = {
    "trace_id": pl.String(),
    "span_id": pl.String(),
    "link_index": pl.Int64(),
    "start_time": pl.Datetime("us"),
    "linked_trace_id": pl.String(),
    "linked_span_id": pl.String(),
    "linked_trace_state": pl.String(),
    "attributes": pl.String(),
}

METRIC_PROMOTED: Final = promotion.copied_to("metrics")
"""The promoted columns of metric data points (from their attributes: metrics carry only low-cardinality labels)."""

METRICS: Final[dict[str, pl.DataType]] = {
    "name": pl.String(),
    "description": pl.String(),
    "unit": pl.String(),
    "type": pl.String(),
    "service_name": pl.String(),
    "scope_name": pl.String(),
    "resource_attributes": pl.String(),
    "time_unix_nano": pl.Int64(),
    "start_time_unix_nano": pl.Int64(),
    "time": pl.Datetime("us"),
    "attributes": pl.String(),
    "count": pl.Int64(),
    "sum": pl.Float64(),
    "min": pl.Float64(),
    "max": pl.Float64(),
    "bucket_counts": pl.List(pl.Int64()),
    "explicit_bounds": pl.List(pl.Float64()),
    "value": pl.Float64(),
    "is_monotonic": pl.Boolean(),
    "aggregation_temporality": pl.String(),
    **{name: PROMOTED_TYPES[name] for name in METRIC_PROMOTED},
}

TABLES: Final[dict[str, dict[str, pl.DataType]]] = {
    "spans": SPANS,
    "span_events": SPAN_EVENTS,
    "span_links": SPAN_LINKS,
    "metrics": METRICS,
}
"""Physical tables, one folder of Parquet segments each. ``evals`` is a view over ``span_events``."""

MAP_COLUMNS: Final = ("attributes", "resource_attributes")
"""JSON text columns that the views expose as ``MAP(VARCHAR, VARCHAR)``."""

SORT_COLUMN: Final[dict[str, str]] = {"spans": "trace_id", "span_events": "trace_id", "span_links": "trace_id"}
"""Rows of a segment are written in this column's order: a lookup of one trace skips all but one row group."""
ROW_GROUP_ROWS: Final = 16_384
"""Rows per Parquet row group: small enough that a sorted segment's min/max statistics narrow a lookup."""

TIME_COLUMN: Final[dict[str, str]] = {
    "spans": "start_time",
    "span_events": "time",
    "span_links": "start_time",
    "metrics": "time",
}
"""The column whose UTC date names a row's ``date=YYYY-MM-DD`` partition."""


def empty_frame(table: str) -> pl.DataFrame:
    """No rows, ``table``'s exact columns and types (what a schema segment holds)."""
    return pl.DataFrame(schema=TABLES[table])
