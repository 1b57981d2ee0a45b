"""The duplicate window: a span a client sent again (a retry after a lost response) is written once.

The window holds the trace id + span id of the spans written lately; it is reloaded from the newest segments when
the store writer starts, and compaction drops any older duplicate.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import polars as pl

from loratrace.collector.decode import _fastdecode
from loratrace.store.segments import iter_segments


class RecentKeys:
    """The trace id + span id of spans written lately, to drop a retried span; bounded to ``window`` keys.

    With the compiled decoder built, the keys live in its ``KeyWindow``: 24 bytes each in a hash table that
    persists between flushes (a flush looks up only its own rows, instead of hashing the whole window again).
    Ids of another shape (the collector's receivers reject them; an SDK never makes them) and builds without
    the extension use the Polars series below.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self.fast = _fastdecode.KeyWindow(max(window, 1)) if _fastdecode is not None else None
        self._chunks: deque[pl.Series] = deque()
        self._size = 0
        self._all: pl.Series | None = None

    def add(self, keys: pl.Series) -> None:
        self._chunks.append(keys)
        self._size += len(keys)
        while self._size > self.window and len(self._chunks) > 1:
            self._size -= len(self._chunks.popleft())
        self._all = None

    def series(self) -> pl.Series:
        if self._all is None:
            self._all = pl.concat(list(self._chunks)) if self._chunks else pl.Series("key", [], dtype=pl.String)
        return self._all

    def keep(self, spans: pl.DataFrame) -> pl.Series:
        """Which rows of ``spans`` are new (not in the window, first of their key here); remembers them."""
        if self.fast is None:
            return self._keep_series(spans)
        mask = pl.Series(
            "keep",
            list(self.fast.fresh(spans.get_column("trace_id").to_list(), spans.get_column("span_id").to_list())),
            dtype=pl.UInt8,
        )
        odd = mask == 2
        if not odd.any():
            return mask == 1
        keep_odd = self._keep_series(spans.filter(odd))
        return (mask == 1).scatter(odd.arg_true(), keep_odd)

    def _keep_series(self, spans: pl.DataFrame) -> pl.Series:
        seen = self.series()
        key = _span_key()
        flags = spans.select(
            key.alias("_key"), ((~key.is_in(seen) if len(seen) else True) & key.is_first_distinct()).alias("keep")
        )
        keep = flags.get_column("keep")
        self.add(flags.get_column("_key").filter(keep))
        return keep


def _span_key() -> pl.Expr:
    return pl.concat_str(["trace_id", "span_id"])


def drop_duplicates(frames: dict[str, pl.DataFrame], recent: RecentKeys) -> int:
    """Remove spans (and their events / links) already written or repeated in this batch; returns how many."""
    spans = frames.get("spans")
    if spans is None:
        return 0
    keep = recent.keep(spans)
    fresh = spans if keep.all() else spans.filter(keep)  # filtering copies every column: only when needed
    dropped = spans.height - fresh.height
    frames["spans"] = fresh
    if dropped:
        kept = fresh.select(_span_key()).to_series()
        for table, index in (("span_events", "event_index"), ("span_links", "link_index")):
            if table in frames:
                rows = frames[table].with_columns(_span_key().alias("_key"))
                rows = rows.filter(pl.col("_key").is_in(kept)).unique(
                    subset=["_key", index], keep="first", maintain_order=True
                )
                frames[table] = rows.drop("_key")
    return dropped


def load_recent_keys(store: Path, recent: RecentKeys) -> None:
    """Seed the duplicate window from the newest span segments after a restart."""
    segments = sorted(iter_segments(store, "spans"), key=lambda p: p.stat().st_mtime, reverse=True)
    chosen, rows = [], 0
    for path in segments:
        chosen.append(path)
        rows += pl.scan_parquet(path).select(pl.len()).collect().item()
        if rows >= recent.window:
            break
    for path in reversed(chosen):
        recent.keep(pl.read_parquet(path, columns=["trace_id", "span_id"]))
