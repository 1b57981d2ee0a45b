"""The analyses' inputs from a store: generation rows and evaluation rows as LazyFrames, with the arm keys.

Every analysis reads the same two relations, so what counts as a generation, which arm a row belongs to and how
cohorts and routes are spelled when missing are decided here once:

* a generation is a span whose ``operation_name`` is one of ``semconv.GENERATION_OPERATIONS`` (the ``generations``
  view applies the same rule in SQL);
* the *adapter* arm holds generations an adapter served (``adapter_name`` set and ``variant`` not ``base``); the
  *base* arm holds the rest, i.e. the base model;
* a missing cohort or route reads ``(none)``.
"""

from __future__ import annotations

import os
from datetime import datetime

import polars as pl

from loratrace import semconv
from loratrace.analysis._typing import Traffic
from loratrace.store import readers

NONE_LABEL = "(none)"
KEY_COLUMNS = ("adapter", "adapter_id", "arm", "cohort", "route", "prompt_version", "quantization", "base_model")
"""The columns every cell is keyed by (besides ``metric`` and ``window_start``)."""

_GENERATION_VALUE_COLUMNS = (
    "error_type",
    "status_code",
    "finish_reason",
    "fallback",
    "schema_attempts",
    "schema_valid",
    "duration_ns",
    "ttft_ms",
    "output_tokens",
    "input_tokens",
)


_IS_ADAPTER = f"adapter_name IS NOT NULL AND coalesce(variant, '') <> '{semconv.VARIANT_BASE}'"
KEY_SQL: dict[str, str] = {
    "arm": f"CASE WHEN {_IS_ADAPTER} THEN 'adapter' ELSE 'base' END",
    "adapter": f"CASE WHEN {_IS_ADAPTER} THEN adapter_name END",
    "adapter_id": f"CASE WHEN {_IS_ADAPTER} THEN adapter_id END",
    "cohort": f"coalesce(cohort, '{NONE_LABEL}')",
    "route": f"coalesce(route_name, '{NONE_LABEL}')",
    "prompt_version": "prompt_version",
    "quantization": "CASE WHEN model_quantization_method IS NOT NULL "
    "THEN concat_ws('/', model_quantization_method, CAST(model_quantization_bits AS VARCHAR)) END",
    "base_model": f"coalesce(base_model_name, CASE WHEN NOT ({_IS_ADAPTER}) THEN model END)",
}
"""The arm keys as SQL over the store's columns: evaluated by Polars here and by the database for store cells."""


def _arm_keys(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.with_columns(pl.sql_expr(sql).alias(name) for name, sql in KEY_SQL.items())


def _time_filter(frame: pl.LazyFrame, column: str, since: datetime | None, until: datetime | None) -> pl.LazyFrame:
    if since is not None:
        frame = frame.filter(pl.col(column) >= since)
    if until is not None:
        frame = frame.filter(pl.col(column) < until)
    return frame


def _traffic_filter(frame: pl.LazyFrame, traffic: Traffic) -> pl.LazyFrame:
    if traffic == "production":
        return frame.filter(pl.col("example_id").is_null())
    if traffic == "replay":
        return frame.filter(pl.col("example_id").is_not_null())
    return frame


def generations(
    spans: pl.LazyFrame,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    traffic: Traffic = "all",
) -> pl.LazyFrame:
    """Generation spans of ``spans`` (a store scan or any frame with the store's columns), with the arm keys.

    Parameters
    ----------
    spans
        Rows with the ``spans`` table's columns.
    since, until
        Naive-UTC bounds on ``start_time`` (``until`` exclusive).
    traffic
        ``production`` drops golden-set replay (rows with ``example_id``), ``replay`` keeps only it.
    """
    frame = spans.filter(pl.col("operation_name").is_in(list(semconv.GENERATION_OPERATIONS)))
    frame = _traffic_filter(_time_filter(frame, "start_time", since, until), traffic)
    frame = _arm_keys(frame)
    keep = [
        "trace_id",
        "span_id",
        "start_time",
        "variant",
        "example_id",
        "dataset_version",
        *KEY_COLUMNS,
        *_GENERATION_VALUE_COLUMNS,
    ]
    return frame.select(keep)


def evals(
    span_events: pl.LazyFrame,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    traffic: Traffic = "all",
) -> pl.LazyFrame:
    """Evaluation results of ``span_events`` with their generation's arm keys (copied onto each event row).

    Columns ``name``, ``score``, ``passed``, ``label`` are the evaluation's; ``start_time`` is the event's time.
    """
    frame = span_events.filter(pl.col("name") == semconv.GEN_AI_EVALUATION_RESULT_EVENT)
    frame = frame.rename({"time": "start_time"})
    frame = _traffic_filter(_time_filter(frame, "start_time", since, until), traffic)
    frame = frame.select(
        "trace_id",
        "span_id",
        "start_time",
        "adapter_name",
        "adapter_id",
        "variant",
        "cohort",
        "route_name",
        "prompt_version",
        "model",
        "base_model_name",
        "dataset_version",
        "example_id",
        "model_quantization_method",
        "model_quantization_bits",
        pl.col("eval_name").alias("eval"),
        pl.col("eval_score").alias("score"),
        pl.col("eval_passed").alias("passed"),
        pl.col("eval_label").alias("label"),
    )
    frame = _arm_keys(frame)
    return frame.select(
        "trace_id",
        "span_id",
        "start_time",
        "variant",
        "example_id",
        "dataset_version",
        *KEY_COLUMNS,
        pl.col("eval").alias("name"),
        "score",
        "passed",
        "label",
    )


def load_generations(
    store: str | os.PathLike[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    traffic: Traffic = "all",
) -> pl.LazyFrame:
    """:func:`generations` over a store's spans."""
    return generations(readers.scan(store, "spans"), since=since, until=until, traffic=traffic)


def load_evals(
    store: str | os.PathLike[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    traffic: Traffic = "all",
) -> pl.LazyFrame:
    """:func:`evals` over a store's span events."""
    return evals(readers.scan(store, "span_events"), since=since, until=until, traffic=traffic)
