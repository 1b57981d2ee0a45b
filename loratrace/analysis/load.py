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
from typing import TYPE_CHECKING, TypedDict

import polars as pl

from loratrace import semconv
from loratrace.analysis._typing import Traffic
from loratrace.store import readers

if TYPE_CHECKING:
    from typing_extensions import Unpack

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

_ROW_COLUMNS = ("trace_id", "span_id", "start_time", "variant", "example_id", "dataset_version")
"""The columns that place a generation or evaluation row: its span, its time, its variant and replay example."""


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


class Window(TypedDict, total=False):
    """The keyword arguments that choose the rows of :func:`generations` and :func:`evals` (each optional).

    ``since`` and ``until`` are naive-UTC bounds on ``start_time`` (``until`` exclusive; None or absent: open);
    ``traffic`` ``production`` drops golden-set replay (rows with ``example_id``), ``replay`` keeps only it,
    ``all`` (the default) keeps both.
    """

    since: datetime | None
    until: datetime | None
    traffic: Traffic


def _in_window(frame: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    frame = _time_filter(frame, "start_time", window.get("since"), window.get("until"))
    return _traffic_filter(frame, window.get("traffic", "all"))


def _traffic_filter(frame: pl.LazyFrame, traffic: Traffic) -> pl.LazyFrame:
    if traffic == "production":
        return frame.filter(pl.col("example_id").is_null())
    if traffic == "replay":
        return frame.filter(pl.col("example_id").is_not_null())
    return frame


def generations(spans: pl.LazyFrame, **window: Unpack[Window]) -> pl.LazyFrame:
    """Generation spans of ``spans`` (a store scan or any frame with the store's columns), with the arm keys.

    Parameters
    ----------
    spans
        Rows with the ``spans`` table's columns.
    since, until, traffic
        The rows to keep: see :class:`Window`.
    """
    frame = spans.filter(pl.col("operation_name").is_in(list(semconv.GENERATION_OPERATIONS)))
    frame = _arm_keys(_in_window(frame, window))
    keep = [
        *_ROW_COLUMNS,
        *KEY_COLUMNS,
        *_GENERATION_VALUE_COLUMNS,
    ]
    return frame.select(keep)


def evals(span_events: pl.LazyFrame, **window: Unpack[Window]) -> pl.LazyFrame:
    """Evaluation results of ``span_events`` with their generation's arm keys (copied onto each event row).

    Columns ``name``, ``score``, ``passed``, ``label`` are the evaluation's; ``start_time`` is the event's time.
    ``since``, ``until`` and ``traffic`` choose the rows: see :class:`Window`.
    """
    frame = span_events.filter(pl.col("name") == semconv.GEN_AI_EVALUATION_RESULT_EVENT)
    frame = frame.rename({"time": "start_time"})
    frame = _in_window(frame, window)
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
        *_ROW_COLUMNS,
        *KEY_COLUMNS,
        pl.col("eval").alias("name"),
        "score",
        "passed",
        "label",
    )


def load_generations(store: str | os.PathLike[str], **window: Unpack[Window]) -> pl.LazyFrame:
    """:func:`generations` over a store's spans."""
    return generations(readers.scan(store, "spans"), **window)


def load_evals(store: str | os.PathLike[str], **window: Unpack[Window]) -> pl.LazyFrame:
    """:func:`evals` over a store's span events."""
    return evals(readers.scan(store, "span_events"), **window)
