"""The store writer's settings, and the counters it shares with the collector process (``/health``)."""

from __future__ import annotations

from dataclasses import dataclass

from loratrace.store import layout

# indexes into the shared statistics array
STAT_CHECKPOINT = 0
STAT_SPANS_WRITTEN = 1
STAT_FLUSHES = 2
STAT_LAST_FLUSH_S = 3
STAT_MAX_FLUSH_S = 4
STAT_DUPLICATES = 5
STAT_COMPACTIONS = 6
STAT_METRIC_POINTS = 7
STAT_DECODE_ERRORS = 8
STAT_READY = 9
STAT_DISK_FULL = 10
N_STATS = 11


@dataclass(frozen=True)
class StoreWriterSettings:
    store: str
    flush_interval: float = 1.0
    flush_rows: int = 50_000
    # after a burst, once the log is drained: flush this many buffered rows without waiting for the interval
    idle_flush_rows: int = 2_048
    idle_flush_gap: float = 0.2
    read_bytes: int = 32 << 20
    compact_interval: float = 30.0
    compact_min_segments: int = 8
    retention_days: int | None = None
    dedup_window: int = 2_000_000
    # this collector's id among those sharing the store: names its log, checkpoint and segments
    writer_id: str = layout.DEFAULT_WRITER
