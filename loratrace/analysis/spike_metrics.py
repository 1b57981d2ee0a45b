"""The rates a spike check watches, each defined once as a SQL expression over the ``generations`` view's columns.

The same text is evaluated locally through :func:`polars.sql_expr` and can be sent to ClickHouse as SQL. A value
is 1 when the generation is an event of the metric, 0 when it is not, NULL when the generation does not count
for the metric (a schema retry is only defined for generations that asked for structured output).
"""

from __future__ import annotations

from typing import Final

SPIKE_METRICS: Final[dict[str, str]] = {
    "error_rate": "CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END",
    "timeout_rate": "CASE WHEN lower(coalesce(error_type, '')) LIKE '%timeout%' THEN 1 ELSE 0 END",
    "fallback_rate": "CASE WHEN coalesce(fallback, false) THEN 1 ELSE 0 END",
    "schema_retry_rate": "CASE WHEN schema_attempts IS NULL THEN NULL WHEN schema_attempts > 1 THEN 1 ELSE 0 END",
}
"""metric name -> SQL expression over one ``generations`` row (1 event, 0 no event, NULL not counted)."""

DEFAULT_SPIKE_METRICS: Final = tuple(SPIKE_METRICS)
