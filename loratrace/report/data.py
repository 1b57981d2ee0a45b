"""What the report shows, read from a store: every table with the command that reproduces it.

Each :class:`Table` keeps the frame and the exact ``loratrace`` command line behind it, so a number on the page
can be traced back and re-run by whoever reads the report.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from loratrace.store import query

LATENCY_SQL = (
    "SELECT adapter_name AS adapter, adapter_rank AS rank, adapter_merged AS merged, "
    "model_quantization_method AS quantization, count(*) AS n, "
    "round(quantile_cont(duration_ns / 1e6, 0.50), 1) AS p50_ms, "
    "round(quantile_cont(duration_ns / 1e6, 0.95), 1) AS p95_ms, "
    "round(quantile_cont(duration_ns / 1e6, 0.99), 1) AS p99_ms, "
    "round(quantile_cont(ttft_ms, 0.50), 1) AS ttft_p50_ms, round(quantile_cont(ttft_ms, 0.95), 1) AS ttft_p95_ms "
    "FROM generations GROUP BY ALL ORDER BY adapter NULLS FIRST, rank, merged, quantization"
)
"""Duration and time-to-first-token percentiles per serving arm × rank × merge state × quantization."""

INVENTORY_SQL = (
    "SELECT adapter_name AS adapter, adapter_id, min(start_time) AS first_seen, max(start_time) AS last_seen, "
    "count(*) AS generations, list_sort(list(DISTINCT cohort)) AS cohorts, "
    "count(*) OVER (PARTITION BY adapter_name) > 1 AS id_changed "
    "FROM generations WHERE adapter_name IS NOT NULL GROUP BY adapter_name, adapter_id "
    "ORDER BY adapter, first_seen"
)
"""Every adapter id that served traffic: when it was first and last seen, and whether its name had other ids."""


@dataclass(frozen=True)
class Table:
    """A frame shown on the page and the command line that reproduces it."""

    frame: pl.DataFrame
    command: str


@dataclass(frozen=True)
class ReportData:
    """Everything one report shows."""

    store: Path
    generated_at: dt.datetime
    generations: int
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    drift: Table | None
    latency: Table
    inventory: Table
    spike_windows: Table
    spike_episodes: Table


def _duration_text(width: dt.timedelta) -> str:
    """``1h``, ``15m``, ``1d``: the largest unit that divides ``width`` (as ``--window`` takes it)."""
    seconds = int(width.total_seconds())
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _sql_command(store: Path, sql: str) -> str:
    return f"loratrace sql --store {shlex.quote(str(store))} {shlex.quote(sql)}"


def store_drift(store: Path) -> Table | None:
    """``loratrace drift``'s rows with its defaults; None when the store has no comparison to make."""
    from loratrace.analysis.run import EmptySelectionError, drift_for_store

    try:
        rows = drift_for_store(store)
    except EmptySelectionError:
        return None
    return Table(rows, f"loratrace drift --store {shlex.quote(str(store))} --format json")


def collect_report_data(
    store: str | os.PathLike[str],
    *,
    drift: Table | None = None,
    spike_window: dt.timedelta = dt.timedelta(hours=1),
) -> ReportData:
    """Read every section of the report from ``store``.

    Parameters
    ----------
    store
        The store folder.
    drift
        Drift rows (the shape of ``loratrace drift --format json``) and the command that produced them; by
        default ``loratrace drift``'s own with its defaults.
    spike_window
        Window width of the spike check.
    """
    from loratrace.analysis.spike_run import run_spikes

    path = Path(store)
    if drift is None:
        drift = store_drift(path)
    total, first, last = query(path, "SELECT count(*), min(start_time), max(start_time) FROM generations").row(0)
    spikes = run_spikes(path, window=spike_window) if total else None
    window_text = _duration_text(spike_window)
    spikes_command = f"loratrace spikes --store {shlex.quote(str(path))} --window {window_text} --format json"
    empty_spikes = pl.DataFrame()
    return ReportData(
        store=path,
        generated_at=dt.datetime.now(dt.timezone.utc),
        generations=total,
        first_seen=first,
        last_seen=last,
        drift=drift,
        latency=Table(query(path, LATENCY_SQL), _sql_command(path, LATENCY_SQL)),
        inventory=Table(query(path, INVENTORY_SQL), _sql_command(path, INVENTORY_SQL)),
        spike_windows=Table(spikes.windows if spikes else empty_spikes, spikes_command),
        spike_episodes=Table(spikes.episodes if spikes else empty_spikes, spikes_command),
    )
