"""Generations of a store within a time window, and what to say when a window holds none.

The analyses (inventory, latency, cost) read the store's generation spans as a Polars LazyFrame; an empty
window is an input mistake worth a precise message: which days do have data.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Final

import polars as pl

from loratrace import semconv
from loratrace.analysis.timespec import to_store_time
from loratrace.errors import ConfigurationError

PARAMETER_KINDS: Final = {
    "operations": "text[]",
    "since": "timestamp",
    "until": "timestamp",
    "adapter": "text",
    "cohort": "text",
}
"""The types of the window statements' parameters (inventory, latency, cost): what ClickHouse declares."""


def generations(
    store: str | os.PathLike[str], *, since: datetime | None = None, until: datetime | None = None
) -> pl.LazyFrame:
    """The store's generation spans (``gen_ai.operation.name`` a generation) with ``start_time`` in the window."""
    from loratrace.store import scan_spans

    frame = scan_spans(store).filter(pl.col("operation_name").is_in(list(semconv.GENERATION_OPERATIONS)))
    return within(frame, since=since, until=until)


def within(frame: pl.LazyFrame, *, since: datetime | None = None, until: datetime | None = None) -> pl.LazyFrame:
    """Rows of ``frame`` whose ``start_time`` (naive UTC) is in ``[since, until)``."""
    if since is not None:
        frame = frame.filter(pl.col("start_time") >= to_store_time(since))
    if until is not None:
        frame = frame.filter(pl.col("start_time") < to_store_time(until))
    return frame


def empty_window_message(store: str | os.PathLike[str], since: datetime | None, until: datetime | None) -> str:
    """Says that the window holds no generations, and which days do (with their first and last span)."""
    days = (
        generations(store)
        .group_by(pl.col("start_time").dt.date().alias("day"))
        .agg(pl.len().alias("n"), pl.col("start_time").min().alias("first"), pl.col("start_time").max().alias("last"))
        .sort("day")
        .collect()
    )
    asked = f"from {since.isoformat() if since else 'the start'} until {until.isoformat() if until else 'now'}"
    if days.height == 0:
        return f"no generations {asked}: the store holds no generation spans yet"
    listed = ", ".join(
        f"{row['day']} ({row['n']} generations, {row['first']:%H:%M}-{row['last']:%H:%M} UTC)"
        for row in days.tail(10).iter_rows(named=True)
    )
    more = f" (the last 10 of {days.height} days)" if days.height > 10 else ""
    return f"no generations {asked}; the store has data on {listed}{more}: widen --since / --until"


def check_known(kind: str, value: str | None, known: Sequence[str | None], *, flag: str) -> None:
    """Raise when ``value`` (from ``flag``) is not among ``known``, suggesting the nearest names."""
    if value is None:
        return
    names = sorted({k for k in known if k is not None})
    if value in names:
        return
    close = difflib.get_close_matches(value, names, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}?" if close else f"known: {', '.join(names[:20]) or 'none'}"
    msg = f"{flag} {value!r}: no {kind} of that name in the window ({hint})"
    raise ConfigurationError(msg)
