"""The alert cells of settled windows, kept between checks so a scheduled check reads only the recent spans.

Cells are additive, so the cells of a check are the cached cells of windows before ``through`` plus fresh cells
from the spans that started at or after it. The cache is exact, not approximate:

* ``through`` trails the check's boundary by a settle margin (1 hour), so the spans still arriving for recent
  windows (export delays, retries) are always read fresh;
* segments are immutable; the cache records the segment files it has seen, and a check that finds a new file
  holding a span older than ``through`` (a late export, a compaction's merged segment) rebuilds from every span;
* a cache made for other metric definitions, another cell window, or a later time (``--now`` replaying the
  past) is not used;
* cells that data other than spans can change after the fact (feedback, given days after the answer it counts
  for) are cached with that data's state per window (``window_state``): a window whose state differs from the
  cached one is recomputed, with every window after it. Feedback spans themselves are not spans of any cell, so a
  late one does not rebuild the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import polars as pl

from loratrace import semconv
from loratrace.store import readers

logger = logging.getLogger(__name__)

CACHE_FILE: Final = "cells.parquet"
META_FILE: Final = "cells.json"
SETTLE: Final = timedelta(hours=1)
_TIME_COLUMN: Final = {"spans": "start_time", "span_events": "time"}


def cache_key(parts: Iterable[str]) -> str:
    """A key for what the cells mean (metric names and SQL, the cell window): a change invalidates the cache."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _segments(store: Path, tables: Iterable[str]) -> dict[str, list[str]]:
    return {t: sorted(str(p.relative_to(store)) for p in readers.counted_files(store, t)) for t in tables}


def _oldest(store: Path, table: str, files: list[str]) -> datetime | None:
    if not files:
        return None
    frame = pl.scan_parquet([store / f for f in files], hive_partitioning=False, missing_columns="insert")
    if table == "spans":
        frame = frame.filter(pl.col("name") != semconv.FEEDBACK_SPAN)
    return frame.select(pl.col(_TIME_COLUMN[table]).min()).collect().item()


def _first_changed(cached: Mapping[str, str], current: Mapping[str, str]) -> datetime | None:
    """The earliest window whose state differs (present in one and not the other, or with another value)."""
    changed = [window for window in set(cached) | set(current) if cached.get(window) != current.get(window)]
    return min(datetime.fromisoformat(window) for window in changed) if changed else None


def cells_with_cache(
    store: str | os.PathLike[str],
    folder: Path,
    *,
    key: str,
    grid: timedelta,
    boundary: datetime,
    tables: tuple[str, ...],
    compute: Callable[[datetime | None], pl.DataFrame],
    window_state: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Cached cells before ``through`` plus ``compute(since=through)``; all of ``compute(None)`` when unusable.

    ``compute(since)`` returns the cells of the spans starting at or after ``since`` (every span for None).
    ``window_state`` (``{window start ISO: token}``) is what else each window's cells depend on; ``through`` moves
    back to the first window whose token changed since the cache was written.
    """
    root = Path(store).resolve()
    seen_now = _segments(root, tables)
    meta_path, cache_path = folder / META_FILE, folder / CACHE_FILE
    cached, through = None, None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        through = datetime.fromisoformat(meta["through"])
        usable = meta["key"] == key and through <= boundary
        for table in tables:
            new = sorted(set(seen_now[table]) - set(meta["segments"].get(table, [])))
            oldest = _oldest(root, table, new) if usable else None
            usable = usable and (oldest is None or oldest >= through)
        changed = _first_changed(meta.get("window_state", {}), window_state) if window_state is not None else None
        if usable and changed is not None and changed < through:
            through = changed  # the cells before it are unchanged; from it on they are computed again
        if usable:
            # the cache file may be ahead of its metadata after an interrupted write: keep only what it vouches for
            cached = pl.read_parquet(cache_path).filter(pl.col("window_start") < through)
    except (OSError, ValueError, KeyError, pl.exceptions.PolarsError):
        cached = None  # no cache yet, or one this version cannot read: start from every span
    frame = compute(None) if cached is None else pl.concat([cached, compute(through)], how="vertical_relaxed")
    epoch = datetime(1970, 1, 1)
    settled = epoch + ((boundary - SETTLE - epoch) // grid) * grid
    if through is None or cached is None or settled > through:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_suffix(f".{os.getpid()}.tmp")
            frame.filter(pl.col("window_start") < settled).write_parquet(tmp)
            tmp.replace(cache_path)
            meta_tmp = meta_path.with_suffix(f".{os.getpid()}.tmp")
            meta = {"key": key, "through": settled.isoformat(), "segments": seen_now}
            if window_state is not None:
                meta["window_state"] = dict(window_state)
            meta_tmp.write_text(json.dumps(meta))
            meta_tmp.replace(meta_path)
        except OSError as exc:
            logger.warning("alert cells cache not written to %s (%s); the next check reads every span", folder, exc)
    return frame
