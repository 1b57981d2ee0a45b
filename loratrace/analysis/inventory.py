"""Adapter inventory: who served traffic, when, for which cohorts, and every change of weights under one name.

A change of ``adapter_id`` under the same ``adapter_name`` is a weight swap: announced or silent, it is a new
model behind an old name, and every comparison across it mixes two models. The window of a change is bounded
by the last span of the old id and the first span of the new one.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

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


def adapters_served(generations: pl.LazyFrame) -> pl.LazyFrame:
    """Per adapter name and id: first and last seen, generations, cohorts and routes served, rank, merge state.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime
    >>> g = pl.LazyFrame({"adapter_name": ["a1", "a1", None], "adapter_id": ["x", "x", None],
    ...     "base_model_name": ["m", "m", "m"], "model": ["a1", "a1", "m"], "cohort": ["c", "d", "c"],
    ...     "route_name": ["r", "r", "r"], "adapter_rank": [8, 8, None], "adapter_merged": [False, False, None],
    ...     "start_time": [datetime(2026, 1, 1, h) for h in (1, 2, 3)]})
    >>> adapters_served(g).collect().select("adapter", "generations", "cohorts").rows()
    [('(base) m', 1, ['c']), ('a1', 2, ['c', 'd'])]
    """
    return (
        generations.with_columns(_served_by())
        .group_by("adapter", "adapter_id")
        .agg(
            pl.col("base_model_name").drop_nulls().first().alias("base_model"),
            pl.col("adapter_rank").drop_nulls().first().alias("rank"),
            pl.col("adapter_merged").drop_nulls().first().alias("merged"),
            pl.col("start_time").min().alias("first_seen"),
            pl.col("start_time").max().alias("last_seen"),
            pl.len().alias("generations"),
            pl.col("cohort").drop_nulls().unique().sort().alias("cohorts"),
            pl.col("route_name").drop_nulls().unique().sort().alias("routes"),
        )
        .sort("adapter", "first_seen", "adapter_id", nulls_last=True)
    )


def volume_by_cohort(generations: pl.LazyFrame) -> pl.LazyFrame:
    """Generations per adapter name (all its ids) and cohort, with each cohort's share of the adapter's traffic."""
    return (
        generations.with_columns(_served_by(), pl.col("cohort").fill_null("(none)"))
        .group_by("adapter", "cohort")
        .agg(pl.len().alias("generations"), pl.col("start_time").min().alias("first_seen"))
        .with_columns((pl.col("generations") / pl.col("generations").sum().over("adapter")).alias("share"))
        .sort("adapter", "cohort")
    )


def id_changes(generations: pl.LazyFrame) -> pl.LazyFrame:
    """Every change of ``adapter_id`` under one ``adapter_name``, with the window in which it happened.

    Ids are ordered by their first span; a change is reported between consecutive ids: ``old_last_seen`` (the
    old id's last span) and ``new_first_seen`` (the new id's first span) bound the moment of the swap. When the
    two ids overlap in time (a gradual roll-out) ``overlap`` is true.
    """
    ids = (
        generations.filter(pl.col("adapter_name").is_not_null())
        .group_by("adapter_name", "adapter_id")
        .agg(
            pl.col("start_time").min().alias("first_seen"),
            pl.col("start_time").max().alias("last_seen"),
            pl.len().alias("generations"),
        )
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
    """The three inventory tables over the same generations, collected together."""
    adapters, cohorts, changes = pl.collect_all(
        [adapters_served(generations), volume_by_cohort(generations), id_changes(generations)]
    )
    return Inventory(adapters=adapters, cohorts=cohorts, id_changes=changes)
