"""Seeded simulated generation streams for the spike tests: per-window traffic and bad-event rates you choose."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

START = dt.datetime(2026, 3, 2)


def stream_frame(
    rates: np.ndarray,
    *,
    traffic: float,
    seed: int,
    metric_column: str = "fallback",
    window: dt.timedelta = dt.timedelta(hours=1),
) -> pl.LazyFrame:
    """Generations of ``rates.shape[0]`` adapters over ``rates.shape[1]`` windows.

    Each window holds Poisson(``traffic``) generations, of which Binomial(n, rate) are events of
    ``metric_column`` (``fallback`` True, ``status_code`` ERROR, or ``schema_attempts`` 2).
    """
    rng = np.random.default_rng(seed)
    streams, windows = rates.shape
    n = rng.poisson(traffic, size=rates.shape)
    events = rng.binomial(n, rates)
    flat_n = n.ravel()
    total = int(flat_n.sum())
    offsets = np.repeat(np.cumsum(flat_n) - flat_n, flat_n)
    position = np.arange(total) - offsets
    is_event = position < np.repeat(events.ravel(), flat_n)
    window_index = np.repeat(np.tile(np.arange(windows), streams), flat_n)
    stream_index = np.repeat(np.repeat(np.arange(streams), windows), flat_n)
    # spread each window's generations over its width so truncation, not luck, puts them in their window
    spread = (position / np.maximum(np.repeat(flat_n, flat_n), 1) * window.total_seconds() * 1e6).astype(np.int64)
    start_us = int(START.timestamp() * 1e6) + window_index * int(window.total_seconds() * 1e6) + spread
    frame = pl.DataFrame(
        {
            "start_time": pl.Series(start_us, dtype=pl.Int64).cast(pl.Datetime("us")),
            "adapter": "s" + pl.Series(stream_index).cast(pl.String).str.pad_start(3, "0"),
            "event": is_event,
        }
    ).with_columns(adapter_id=pl.lit("sha256:") + pl.col("adapter"))
    columns = {
        "fallback": pl.col("event"),
        "status_code": pl.when(pl.col("event")).then(pl.lit("ERROR")).otherwise(pl.lit("OK")),
        "error_type": pl.when(pl.col("event")).then(pl.lit("TimeoutError")).otherwise(pl.lit(None, pl.String)),
        "schema_attempts": pl.when(pl.col("event")).then(2).otherwise(1).cast(pl.Int64),
    }
    chosen = {name: (expr if name == metric_column else None) for name, expr in columns.items()}
    neutral = {
        "fallback": pl.lit(False),
        "status_code": pl.lit("OK"),
        "error_type": pl.lit(None, pl.String),
        "schema_attempts": pl.lit(1, pl.Int64),
    }
    # the analysis loader's generation columns the rate metrics read besides these
    frame = frame.with_columns(finish_reason=pl.lit("stop"))
    return (
        frame.with_columns(**{name: (expr if expr is not None else neutral[name]) for name, expr in chosen.items()})
        .drop("event")
        .lazy()
    )
