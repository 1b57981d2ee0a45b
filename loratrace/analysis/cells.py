"""Stage one of every analysis: generation and evaluation rows → *cells* of sufficient statistics.

A cell is one adapter (name and id) or the base model × cohort × route × prompt version × quantization × metric ×
window, holding ``n`` (rows that count for the metric), ``sum`` (the successes of a rate) and ``sum_sq``. Cells are
additive, so windows merge by summing and an engine that holds the spans (DuckDB, ClickHouse) can compute them where
the data is; the statistics in ``drift`` and the alerts only ever see cells.

*Paired* cells hold the same inputs answered by the base model and by an adapter (golden-set replay, one
``example_id`` per input): per adapter × cohort × route × metric the number of pairs, the sums of both arms and of
their differences, and the discordant pairs of a rate (``base_only``: pairs whose value is 1 in the base answer
and 0 in the adapter's; ``adapter_only``: the reverse).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TypeVar

import polars as pl

from loratrace.analysis.load import KEY_COLUMNS
from loratrace.analysis.metrics import Metric

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)
CELL_COLUMNS = (*KEY_COLUMNS, "metric", "window_start", "n", "sum", "sum_sq")
PAIRED_KEYS = ("adapter", "adapter_id", "cohort", "route", "metric")
PAIRED_COLUMNS = (*PAIRED_KEYS, "n", "sum_base", "sum_adapter", "sum_diff", "sum_diff_sq", "base_only", "adapter_only")


def _window(window: timedelta | None) -> pl.Expr:
    if window is None:
        return pl.lit(None, dtype=pl.Datetime("us")).alias("window_start")
    return pl.col("start_time").dt.truncate(window).alias("window_start")


def _value(metric: Metric) -> pl.Expr:
    value = metric.expr()
    if metric.source == "evals":
        value = pl.when(pl.col("name") == metric.eval_name).then(value)
    return value


def _aggregate(frame: pl.LazyFrame, metrics: Sequence[Metric], window: timedelta | None) -> pl.LazyFrame:
    keys = [*KEY_COLUMNS, "window_start"]
    aggs = []
    for index, metric in enumerate(metrics):
        value = _value(metric)
        aggs += [
            value.count().alias(f"n{index}"),
            value.sum().alias(f"s{index}"),
            (value * value).sum().alias(f"q{index}"),
        ]
    return wide_to_long(frame.with_columns(_window(window)).group_by(keys).agg(aggs), metrics)


def wide_to_long(wide: FrameT, metrics: Sequence[Metric]) -> FrameT:
    """One aggregation's wide columns ``n<i>``, ``s<i>``, ``q<i>`` (metric ``i``) as one cell row per metric.

    The store's engine (``store_cells``) returns the same wide shape, so both engines share this step.
    """
    keys = [*KEY_COLUMNS, "window_start"]
    long = [
        wide.select(
            *keys,
            pl.lit(metric.name).alias("metric"),
            pl.col(f"n{index}").cast(pl.Int64).alias("n"),
            pl.col(f"s{index}").cast(pl.Float64).alias("sum"),
            pl.col(f"q{index}").cast(pl.Float64).alias("sum_sq"),
        )
        for index, metric in enumerate(metrics)
    ]
    return pl.concat(long).filter(pl.col("n") > 0).select(CELL_COLUMNS)


def cells(
    generations: pl.LazyFrame,
    evals: pl.LazyFrame | None = None,
    *,
    metrics: Sequence[Metric],
    window: timedelta | None = None,
) -> pl.LazyFrame:
    """Cells of sufficient statistics for ``metrics`` (see the module docstring for their meaning).

    Parameters
    ----------
    generations
        Rows from :func:`loratrace.analysis.load.generations`.
    evals
        Rows from :func:`loratrace.analysis.load.evals`; needed for metrics whose source is ``evals``.
    metrics
        What to aggregate (:func:`loratrace.analysis.metrics.resolve`).
    window
        Cell width in time (``window_start`` is the start time truncated to it); ``None`` for one cell over all.

    Returns
    -------
    polars.LazyFrame
        Columns ``adapter`` (null for the base arm), ``adapter_id``, ``arm``, ``cohort``, ``route``,
        ``prompt_version``, ``quantization``, ``base_model``, ``metric``, ``window_start``, ``n``, ``sum``,
        ``sum_sq``; only cells with ``n > 0``.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime
    >>> from loratrace.analysis import metrics as m
    >>> rows = pl.LazyFrame({
    ...     "start_time": [datetime(2026, 12, 1)] * 3, "adapter": [None, "a1", "a1"], "adapter_id": [None, "x", "x"],
    ...     "arm": ["base", "adapter", "adapter"], "cohort": ["smb"] * 3, "route": ["r"] * 3,
    ...     "prompt_version": ["v1"] * 3, "quantization": [None] * 3, "base_model": ["tiny"] * 3,
    ...     "error_type": [None, "ValueError", None], "status_code": ["UNSET"] * 3,
    ... })
    >>> out = cells(rows, metrics=[m.BUILTIN["error_rate"]]).collect().sort("arm")
    >>> out.select("arm", "metric", "n", "sum").rows()
    [('adapter', 'error_rate', 2, 1.0), ('base', 'error_rate', 1, 0.0)]
    """
    parts = []
    on_generations = [m for m in metrics if m.source == "generations"]
    on_evals = [m for m in metrics if m.source == "evals"]
    if on_generations:
        parts.append(_aggregate(generations, on_generations, window))
    if on_evals:
        if evals is None:
            names = ", ".join(m.name for m in on_evals)
            msg = f"cells(evals=...) is needed for the evaluation metrics {names}"
            raise ValueError(msg)
        parts.append(_aggregate(evals, on_evals, window))
    if not parts:
        msg = "cells(metrics=...) got no metrics"
        raise ValueError(msg)
    return pl.concat(parts, how="vertical_relaxed")


def _pair_key(arm: str) -> pl.Expr:
    # a replayed example pairs by its id (and dataset version); a mirrored (shadow) adapter answer pairs with the
    # base answer in the same trace
    by_example = pl.concat_str(
        [pl.lit("example:"), pl.col("example_id"), pl.lit(":"), pl.col("dataset_version")], ignore_nulls=True
    )
    by_trace = pl.concat_str([pl.lit("trace:"), pl.col("trace_id")])
    traced = pl.lit(True) if arm == "base" else pl.col("variant") == "shadow"
    return pl.when(pl.col("example_id").is_not_null()).then(by_example).when(traced).then(by_trace).alias("pair")


def _pair_values(frame: pl.LazyFrame, metric: Metric, arm: str) -> pl.LazyFrame:
    # several answers to one input in one arm (retries) count as their mean, so each input is one pair
    side = frame.filter(pl.col("arm") == arm).with_columns(_pair_key(arm), _value(metric).alias("value"))
    side = side.filter(pl.col("pair").is_not_null() & pl.col("value").is_not_null())
    if arm == "base":
        return side.group_by("pair").agg(pl.col("value").mean().alias("value_base"))
    return side.group_by(["pair", "adapter", "adapter_id"]).agg(
        pl.col("value").mean().alias("value_adapter"),
        pl.col("cohort").first(),
        pl.col("route").first(),
    )


def paired_cells(
    generations: pl.LazyFrame,
    evals: pl.LazyFrame | None = None,
    *,
    metrics: Sequence[Metric],
) -> pl.LazyFrame:
    """Paired cells: the same input answered by the base model and by an adapter.

    A golden-set replay pairs by ``example_id`` (and dataset version); mirrored traffic pairs an adapter answer
    whose ``variant`` is ``shadow`` with the base answer in the same trace. The rows need ``trace_id`` and
    ``variant`` (as :func:`loratrace.analysis.load.generations` gives them).

    Returns
    -------
    polars.LazyFrame
        Columns ``adapter``, ``adapter_id``, ``cohort``, ``route``, ``metric``, ``n`` (pairs), ``sum_base``,
        ``sum_adapter``, ``sum_diff`` (adapter − base), ``sum_diff_sq``, ``base_only`` and ``adapter_only`` (the
        discordant pairs of a rate; 0 for a mean).
    """
    parts = []
    for metric in metrics:
        source = generations if metric.source == "generations" else evals
        if source is None:
            continue
        base = _pair_values(source, metric, "base")
        adapter = _pair_values(source, metric, "adapter")
        pairs = adapter.join(base, on="pair", how="inner")
        diff = pl.col("value_adapter") - pl.col("value_base")
        parts.append(
            pairs.group_by(["adapter", "adapter_id", "cohort", "route"]).agg(
                pl.lit(metric.name).alias("metric"),
                pl.len().cast(pl.Int64).alias("n"),
                pl.col("value_base").sum().alias("sum_base"),
                pl.col("value_adapter").sum().alias("sum_adapter"),
                diff.sum().alias("sum_diff"),
                (diff * diff).sum().alias("sum_diff_sq"),
                ((pl.col("value_base") == 1) & (pl.col("value_adapter") == 0)).sum().cast(pl.Int64).alias("base_only"),
                ((pl.col("value_base") == 0) & (pl.col("value_adapter") == 1))
                .sum()
                .cast(pl.Int64)
                .alias("adapter_only"),
            )
        )
    if not parts:
        return pl.LazyFrame(schema=_PAIRED_SCHEMA)
    return pl.concat(parts, how="vertical_relaxed").select(PAIRED_COLUMNS)


_PAIRED_SCHEMA = {
    "adapter": pl.String,
    "adapter_id": pl.String,
    "cohort": pl.String,
    "route": pl.String,
    "metric": pl.String,
    "n": pl.Int64,
    "sum_base": pl.Float64,
    "sum_adapter": pl.Float64,
    "sum_diff": pl.Float64,
    "sum_diff_sq": pl.Float64,
    "base_only": pl.Int64,
    "adapter_only": pl.Int64,
}
