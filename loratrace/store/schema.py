"""The store's tables: column names and Polars types of every Parquet segment, and the promoted attributes.

Promoted columns follow DESIGN.md: the attribute name without ``loratrace.``, dots as underscores, plus
``model``,
``request_model``, ``operation_name``, ``provider_name``, ``input_tokens``, ``output_tokens``, ``ttft_ms``,
``finish_reason`` and ``error_type``, which several naming schemes feed (see ``loratrace.collector.decode``).
Attribute maps are stored as JSON object text (typed values: numbers stay numbers) so that a new key never
changes a segment's schema; the catalog's views expose them as DuckDB ``MAP(VARCHAR, VARCHAR)``. JSON rather
than Parquet maps because building it is several times cheaper in the decoding loop, the collector's
bottleneck.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from loratrace import semconv

# promoted column -> (the loratrace attribute it copies, Polars type)
LORATRACE_PROMOTED: Final[dict[str, tuple[str, pl.DataType]]] = {
    "adapter_name": (semconv.ADAPTER_NAME, pl.String()),
    "adapter_id": (semconv.ADAPTER_ID, pl.String()),
    "adapter_type": (semconv.ADAPTER_TYPE, pl.String()),
    "adapter_rank": (semconv.ADAPTER_RANK, pl.Int64()),
    "adapter_alpha": (semconv.ADAPTER_ALPHA, pl.Float64()),
    "adapter_target_modules": (semconv.ADAPTER_TARGET_MODULES, pl.List(pl.String())),
    "adapter_merged": (semconv.ADAPTER_MERGED, pl.Boolean()),
    "adapter_source": (semconv.ADAPTER_SOURCE, pl.String()),
    "base_model_name": (semconv.BASE_MODEL_NAME, pl.String()),
    "model_quantization_method": (semconv.QUANTIZATION_METHOD, pl.String()),
    "model_quantization_bits": (semconv.QUANTIZATION_BITS, pl.Int64()),
    "route_name": (semconv.ROUTE_NAME, pl.String()),
    "cohort": (semconv.COHORT, pl.String()),
    "variant": (semconv.VARIANT, pl.String()),
    "fallback": (semconv.FALLBACK, pl.Boolean()),
    "fallback_reason": (semconv.FALLBACK_REASON, pl.String()),
    "served_after_fallback": (semconv.SERVED_AFTER_FALLBACK, pl.Boolean()),
    "prompt_version": (semconv.PROMPT_VERSION, pl.String()),
    "dataset_version": (semconv.DATASET_VERSION, pl.String()),
    "example_id": (semconv.EXAMPLE_ID, pl.String()),
    "schema_attempts": (semconv.SCHEMA_ATTEMPTS, pl.Int64()),
    "schema_valid": (semconv.SCHEMA_VALID, pl.Boolean()),
}

# promoted columns fed by several conventions; ``decode`` fills them
DERIVED_PROMOTED: Final[dict[str, pl.DataType]] = {
    "model": pl.String(),
    "request_model": pl.String(),
    "operation_name": pl.String(),
    "provider_name": pl.String(),
    "input_tokens": pl.Int64(),
    "output_tokens": pl.Int64(),
    "ttft_ms": pl.Float64(),
    "finish_reason": pl.String(),
    "error_type": pl.String(),
}

PROMOTED_TYPES: Final[dict[str, pl.DataType]] = {
    **{name: dtype for name, (_, dtype) in LORATRACE_PROMOTED.items()},
    **DERIVED_PROMOTED,
}

SPANS: Final[dict[str, pl.DataType]] = {
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
    **PROMOTED_TYPES,
}

# the span columns copied onto each event row, so that ``evals`` groups by adapter without a join
EVENT_SPAN_COLUMNS: Final = (
    "adapter_name",
    "adapter_id",
    "base_model_name",
    "route_name",
    "cohort",
    "variant",
    "prompt_version",
    "model",
    "dataset_version",
    "example_id",
    "model_quantization_method",
    "model_quantization_bits",
)

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

METRIC_PROMOTED: Final = ("adapter_name", "base_model_name", "route_name", "variant", "operation_name")

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
