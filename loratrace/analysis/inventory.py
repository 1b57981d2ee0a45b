"""Adapter inventory: who served traffic, when, for which cohorts, and every change of weights under one name.

A change of ``adapter_id`` under the same ``adapter_name`` is a weight swap: announced or silent, it is a new
model behind an old name, and every comparison across it mixes two models. The window of a change is bounded
by the last span of the old id and the first span of the new one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

from loratrace import semconv
from loratrace.store import schema

if TYPE_CHECKING:
    from loratrace.sources.base import Source

BASE_LABEL = "(base)"
"""How the base model's own traffic (no adapter) is labelled in the inventory's ``adapter`` column."""


@dataclass(frozen=True)
class Inventory:
    """The three tables of ``loratrace adapters``."""

    adapters: pl.DataFrame
    """One row per adapter name and id (and the base model per base model name)."""
    cohorts: pl.DataFrame
    """Generations per adapter name and cohort."""
    id_changes: pl.DataFrame
    """One row per change of id under one name, in time order."""


def _served_by() -> pl.Expr:
    base = pl.lit(f"{BASE_LABEL} ") + pl.coalesce(pl.col("base_model_name"), pl.col("model"), pl.lit("?"))
    return pl.coalesce(pl.col("adapter_name"), base).alias("adapter")


CELL_COLUMNS = (
    "adapter_name",
    "adapter_id",
    "base_model_name",
    "model",
    "cohort",
    "route_name",
    "adapter_rank",
    "adapter_merged",
)
"""The keys of an inventory cell; a cell adds ``first_seen``, ``last_seen`` and ``generations``."""


def inventory_cells(generations: pl.LazyFrame) -> pl.LazyFrame:
    """Generations reduced to inventory cells: first / last seen and count per key combination.

    Cells are additive (min of firsts, max of lasts, sum of counts), so the same tables come from cells made by
    Polars here or by the store's engine (:func:`store_cells`), where 10M spans would not fit a laptop's memory
    as Polars strings.
    """
    return generations.group_by(*CELL_COLUMNS).agg(
        pl.col("start_time").min().alias("first_seen"),
        pl.col("start_time").max().alias("last_seen"),
        pl.len().alias("generations"),
    )


_CELLS_SQL = f"""
SELECT {", ".join(CELL_COLUMNS)}, min(start_time) AS first_seen, max(start_time) AS last_seen,
       count(*) AS generations
FROM spans
WHERE list_contains($operations, operation_name)
  AND start_time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
  AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
GROUP BY ALL
"""


def store_cells(
    store: str | os.PathLike[str] | Source, *, since: datetime | None, until: datetime | None
) -> pl.LazyFrame:
    """:func:`inventory_cells` of the generations in a window, in one pass where the spans are (the store's
    DuckDB, or the same statement translated inside ClickHouse)."""
    from loratrace.analysis.timespec import to_store_time
    from loratrace.analysis.window import PARAMETER_KINDS
    from loratrace.sources import as_source

    params = {
        "operations": list(semconv.GENERATION_OPERATIONS),
        "since": to_store_time(since) if since is not None else None,
        "until": to_store_time(until) if until is not None else None,
    }
    frame = as_source(store).analysis_query(_CELLS_SQL, params, kinds=PARAMETER_KINDS)
    if frame.height == 0:
        frame = pl.DataFrame(schema={**{c: schema.PROMOTED_TYPES[c] for c in CELL_COLUMNS}, **_CELL_VALUES})
    return frame.lazy().with_columns(pl.col("generations").cast(pl.Int64))


_CELL_VALUES: dict[str, pl.DataType] = {
    "first_seen": pl.Datetime("us"),
    "last_seen": pl.Datetime("us"),
    "generations": pl.Int64(),
}


def adapters_served(cells: pl.LazyFrame) -> pl.LazyFrame:
    """Per adapter name and id: first and last seen, generations, cohorts and routes served, rank, merge state.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime
    >>> g = pl.LazyFrame({"adapter_name": ["a1", "a1", None], "adapter_id": ["x", "x", None],
    ...     "base_model_name": ["m", "m", "m"], "model": ["a1", "a1", "m"], "cohort": ["c", "d", "c"],
    ...     "route_name": ["r", "r", "r"], "adapter_rank": [8, 8, None], "adapter_merged": [False, False, None],
    ...     "start_time": [datetime(2026, 1, 1, h) for h in (1, 2, 3)]})
    >>> adapters_served(inventory_cells(g)).collect().select("adapter", "generations", "cohorts").rows()
    [('(base) m', 1, ['c']), ('a1', 2, ['c', 'd'])]
    """
    # in time order, so that "first" is the first cell seen whichever engine made the cells
    ordered = cells.sort("first_seen", "cohort", "route_name", "adapter_rank", "adapter_merged", nulls_last=True)
    return (
        ordered.with_columns(_served_by())
        .group_by("adapter", "adapter_id", maintain_order=True)
        .agg(
            pl.col("base_model_name").drop_nulls().first().alias("base_model"),
            pl.col("adapter_rank").drop_nulls().first().alias("rank"),
            pl.col("adapter_merged").drop_nulls().first().alias("merged"),
            pl.col("first_seen").min(),
            pl.col("last_seen").max(),
            pl.col("generations").sum(),
            pl.col("cohort").drop_nulls().unique().sort().alias("cohorts"),
            pl.col("route_name").drop_nulls().unique().sort().alias("routes"),
        )
        .sort("adapter", "first_seen", "adapter_id", nulls_last=True)
    )


def volume_by_cohort(cells: pl.LazyFrame) -> pl.LazyFrame:
    """Generations per adapter name (all its ids) and cohort, with each cohort's share of the adapter's traffic."""
    return (
        cells.with_columns(_served_by(), pl.col("cohort").fill_null("(none)"))
        .group_by("adapter", "cohort")
        .agg(pl.col("generations").sum(), pl.col("first_seen").min())
        .with_columns((pl.col("generations") / pl.col("generations").sum().over("adapter")).alias("share"))
        .sort("adapter", "cohort")
    )


def id_changes(cells: pl.LazyFrame) -> pl.LazyFrame:
    """Every change of ``adapter_id`` under one ``adapter_name``, with the window in which it happened.

    Ids are ordered by their first span; a change is reported between consecutive ids: ``old_last_seen`` (the
    old id's last span) and ``new_first_seen`` (the new id's first span) bound the moment of the swap. When the
    two ids overlap in time (a gradual roll-out) ``overlap`` is true.
    """
    ids = (
        cells.filter(pl.col("adapter_name").is_not_null())
        .group_by("adapter_name", "adapter_id")
        .agg(pl.col("first_seen").min(), pl.col("last_seen").max(), pl.col("generations").sum())
        .sort("adapter_name", "first_seen", "adapter_id")
    )
    return (
        ids.with_columns(
            pl.col("adapter_id").shift(1).over("adapter_name").alias("old_adapter_id"),
            pl.col("last_seen").shift(1).over("adapter_name").alias("old_last_seen"),
        )
        .filter(pl.col("old_last_seen").is_not_null())  # the first id of each name is no change
        .select(
            pl.col("adapter_name").alias("adapter"),
            "old_adapter_id",
            pl.col("adapter_id").alias("new_adapter_id"),
            "old_last_seen",
            pl.col("first_seen").alias("new_first_seen"),
            (pl.col("first_seen") <= pl.col("old_last_seen")).alias("overlap"),
            pl.col("generations").alias("new_id_generations"),
        )
        .sort("adapter", "new_first_seen")
    )


def inventory(generations: pl.LazyFrame) -> Inventory:
    """The three inventory tables over generations (a LazyFrame with the store's columns)."""
    return inventory_of_cells(inventory_cells(generations))


def inventory_of_cells(cells: pl.LazyFrame) -> Inventory:
    """The three inventory tables from inventory cells, collected together."""
    cached = cells.collect().lazy()
    adapters, cohorts, changes = pl.collect_all([adapters_served(cached), volume_by_cohort(cached), id_changes(cached)])
    return Inventory(adapters=adapters, cohorts=cohorts, id_changes=changes)
