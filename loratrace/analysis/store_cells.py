"""Cells of a local store computed inside DuckDB, from the same SQL definitions the Polars path evaluates.

The aggregation into cells is the one pass over every span, so it runs where the spans are: for a local store
that is DuckDB over the catalog's views (its multi-column group-by over dictionary-encoded Parquet strings is
several times faster than Polars' on 10 million rows, see docs/benchmarks.md), for a fleet ClickHouse. The metric
values (``Metric.value_sql``) and the arm keys (``load.KEY_SQL``) are the very strings
:func:`loratrace.analysis.cells.cells` evaluates through ``polars.sql_expr``; only the frame around them is written
here, and ``tests/analysis/test_store_cells.py`` checks that both engines give equal cells.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from loratrace import semconv
from loratrace.analysis._typing import Traffic
from loratrace.analysis.cells import wide_to_long
from loratrace.analysis.load import KEY_COLUMNS, KEY_SQL
from loratrace.analysis.metrics import Metric
from loratrace.store import readers

_SOURCES = {
    "generations": (
        "spans",
        "start_time",
        "operation_name IN (" + ", ".join(f"'{op}'" for op in semconv.GENERATION_OPERATIONS) + ")",
    ),
    "evals": ("evals", "time", "TRUE"),
}


def cells_sql(
    metrics: Sequence[Metric],
    *,
    source: str,
    window: timedelta | None,
    since: datetime | None,
    until: datetime | None,
    traffic: Traffic,
) -> tuple[str, dict[str, Any]]:
    """The DuckDB statement computing one source's cells in wide form, and its bound parameters."""
    view, time_column, where = _SOURCES[source]
    params: dict[str, Any] = {}
    conditions = [where]
    if since is not None:
        conditions.append(f"{time_column} >= $since")
        params["since"] = since
    if until is not None:
        conditions.append(f"{time_column} < $until")
        params["until"] = until
    if traffic == "production":
        conditions.append("example_id IS NULL")
    elif traffic == "replay":
        conditions.append("example_id IS NOT NULL")
    values = []
    aggregates = []
    for index, metric in enumerate(metrics):
        value = metric.value_sql
        if metric.source == "evals":
            values.append(f"CASE WHEN name = $eval{index} THEN CAST(({value}) AS DOUBLE) END AS v{index}")
            params[f"eval{index}"] = metric.eval_name
        else:
            values.append(f"CAST(({value}) AS DOUBLE) AS v{index}")
        aggregates.append(
            f"count(v{index}) AS n{index}, sum(v{index}) AS s{index}, sum(v{index} * v{index}) AS q{index}"
        )
    if window is None:
        bucket = "CAST(NULL AS TIMESTAMP)"
    else:
        bucket = f"time_bucket(to_microseconds($window_us), {time_column})"
        params["window_us"] = int(window / timedelta(microseconds=1))
    keys = ", ".join(f"{sql} AS {name}" for name, sql in KEY_SQL.items())
    selected = ", ".join([*KEY_COLUMNS, "window_start", *aggregates])
    inner = ", ".join([keys, f"{bucket} AS window_start", "example_id", "variant", *values])
    statement = (
        f"SELECT {selected}, count(*) FILTER (WHERE example_id IS NOT NULL) AS replay_rows, "
        f"count(*) FILTER (WHERE variant = '{semconv.VARIANT_SHADOW}') AS shadow_rows "
        f"FROM (SELECT {inner} FROM {view} WHERE {' AND '.join(conditions)}) "
        f"GROUP BY {', '.join(KEY_COLUMNS)}, window_start"
    )
    return statement, params


def store_cells(
    store: str | os.PathLike[str],
    *,
    metrics: Sequence[Metric],
    window: timedelta | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    traffic: Traffic = "all",
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The store's cells (``CELL_COLUMNS``) and how many replayed and shadow rows it holds.

    The counts tell the caller whether paired cells can exist at all, so a store without replay or mirrored
    traffic is never scanned for pairs.
    """
    frames = []
    counts = {"replay_rows": 0, "shadow_rows": 0}
    for source in ("generations", "evals"):
        chosen = [m for m in metrics if m.source == source]
        if not chosen and source == "evals":
            continue  # the generations pass always runs: it counts the replayed and mirrored rows
        statement, params = cells_sql(chosen, source=source, window=window, since=since, until=until, traffic=traffic)
        wide = readers.query(store, statement, params)
        if wide.is_empty():
            continue
        wide = wide.with_columns(pl.col("window_start").cast(pl.Datetime("us")))
        if source == "generations":
            counts = {name: int(wide[name].sum()) for name in counts}
        if chosen:
            frames.append(wide_to_long(wide, chosen))
    if not frames:
        return pl.DataFrame(schema=_CELL_SCHEMA), counts
    return pl.concat(frames, how="vertical_relaxed"), counts


_CELL_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    **{c: pl.String for c in KEY_COLUMNS},
    "metric": pl.String,
    "window_start": pl.Datetime("us"),
    "n": pl.Int64,
    "sum": pl.Float64,
    "sum_sq": pl.Float64,
}
