"""Feedback metrics (``feedback:<kind>``) in the alert check: their cells, what their cache is keyed on, and how
complete each window's feedback is likely to be.

Feedback is unlike every other metric in two ways the alerts must respect:

* **It changes past windows.** A thumbs-down given today is counted in the window of the answer it is about,
  hours or days ago. The settled-window cache (:mod:`loratrace.alerts.cells_cache`) cannot assume a past window
  is final, so feedback cells are cached with the feedback each window held (:func:`window_state`: the count of
  feedback per kind by the answer's window); a window whose feedback changed since is recomputed, with every
  window after it. Which routes collect a kind at all (the denominators) is part of the cache key.
* **Recent windows are incomplete.** :func:`window_shares` estimates, per cell window, the share of its eventual
  feedback in by the check (:func:`loratrace.analysis.feedback.window_completeness`), so a condition can say on
  how complete a base its rates stand.

A check is reproducible: only the feedback given before the check's boundary counts, as for spans.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from loratrace.analysis import load
from loratrace.analysis.cells import cells
from loratrace.analysis.feedback import feedback_column, window_completeness, with_feedback
from loratrace.analysis.metrics import FEEDBACK_PREFIX, Metric


def is_feedback(name: str) -> bool:
    """Whether a metric name is a user-outcome proxy."""
    return name.startswith(FEEDBACK_PREFIX)


def kinds(feedback: pl.DataFrame) -> list[str]:
    """The feedback kinds present."""
    return sorted(feedback["kind"].drop_nulls().unique().to_list())


def compute_cells(
    store: str | os.PathLike[str],
    metrics: Sequence[Metric],
    *,
    feedback: pl.DataFrame,
    grid: timedelta,
    boundary: datetime,
) -> Callable[[datetime | None], pl.DataFrame]:
    """``compute(since)``: the cells of ``metrics`` over the generations starting at or after ``since`` (every one
    for None) and before ``boundary``, each generation counting the ``feedback`` about it."""

    def compute(since: datetime | None) -> pl.DataFrame:
        generations = load.load_generations(store, since=since, until=boundary)
        frame, _ = with_feedback(generations, feedback)
        return cells(frame, metrics=metrics, window=grid).collect()

    return compute


def cache_parts(feedback: pl.DataFrame) -> list[str]:
    """What feedback cells mean beyond their metrics: the routes collecting each kind (the denominators)."""
    return [
        f"channel={kind}:" + ",".join(sorted(feedback.filter(pl.col("kind") == kind)["route"].unique().to_list()))
        for kind in kinds(feedback)
    ]


def window_state(feedback: pl.DataFrame, grid: timedelta) -> dict[str, str]:
    """``{window start (ISO): "kind=count;..."}``: the feedback each cell window holds, by the answer's window."""
    if feedback.is_empty():
        return {}
    counts = (
        feedback.filter(pl.col("generation_time").is_not_null())
        .group_by(pl.col("generation_time").dt.truncate(grid).alias("window_start"), "kind")
        .agg(pl.len().alias("count"))
        .sort("window_start", "kind")
    )
    state: dict[str, list[str]] = {}
    for start, kind, count in counts.iter_rows():
        state.setdefault(start.isoformat(), []).append(f"{kind}={count}")
    return {window: ";".join(parts) for window, parts in state.items()}


def window_shares(
    feedback: pl.DataFrame, names: Sequence[str], window_starts: pl.Series, *, grid: timedelta, boundary: datetime
) -> pl.DataFrame:
    """``metric``, ``window_start``, ``share``: each window's share of its eventual feedback likely in at
    ``boundary``, from the delays of the feedback of that kind given so far."""
    starts = window_starts.unique().sort()
    frames = []
    for name in names:
        kind = name.removeprefix(FEEDBACK_PREFIX)
        delays = feedback.filter(pl.col("kind") == kind)["delay_s"].drop_nulls().to_numpy()
        share = window_completeness(starts.to_list(), width=grid, delays=np.clip(delays, 0, None), at=boundary)
        frames.append(
            pl.DataFrame(
                {"metric": [feedback_column(kind)] * starts.len(), "window_start": starts, "share": share},
                schema={"metric": pl.String, "window_start": starts.dtype, "share": pl.Float64},
            )
        )
    return pl.concat(frames) if frames else pl.DataFrame(schema={"metric": pl.String, "share": pl.Float64})


def delay_p90(feedback: pl.DataFrame, names: Sequence[str]) -> Mapping[str, float | None]:
    """The 90th percentile delay (seconds) of each feedback metric's kind, what the completeness is built from."""
    out: dict[str, float | None] = {}
    for name in names:
        delays = feedback.filter(pl.col("kind") == name.removeprefix(FEEDBACK_PREFIX))["delay_s"].drop_nulls()
        out[name] = float(np.quantile(delays.to_numpy(), 0.9)) if delays.len() else None
    return out
