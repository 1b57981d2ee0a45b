"""The filter of the store-side adapter analyses (latency, cost): a window's generation spans, optionally one
adapter (with the base model) and one cohort, as SQL text and its bound parameters."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from loratrace import semconv


class _Window(TypedDict):
    since: datetime | None
    until: datetime | None


class GenerationSelection(_Window, total=False):
    """The keyword arguments of a store-side analysis: the window (both ends required, None for open) and,
    optionally, one adapter (with the base model) and one cohort."""

    adapter: str | None
    cohort: str | None


GENERATIONS_WHERE = """list_contains($operations, operation_name)
  AND start_time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
  AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
  AND ($adapter::VARCHAR IS NULL OR adapter_name IS NULL OR adapter_name = $adapter::VARCHAR)
  AND ($cohort::VARCHAR IS NULL OR cohort = $cohort::VARCHAR)"""
"""The ``WHERE`` condition over ``spans`` that :func:`generation_params` binds."""


def generation_params(
    *, since: datetime | None, until: datetime | None, adapter: str | None, cohort: str | None
) -> dict[str, Any]:
    """The parameters of :data:`GENERATIONS_WHERE`: the window in store time, the adapter and the cohort."""
    from loratrace.analysis.timespec import to_store_time

    return {
        "operations": list(semconv.GENERATION_OPERATIONS),
        "since": to_store_time(since) if since is not None else None,
        "until": to_store_time(until) if until is not None else None,
        "adapter": adapter,
        "cohort": cohort,
    }
