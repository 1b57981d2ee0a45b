"""Writing each decoded batch into segments and then its checkpoint, on a thread of its own; and compaction.

A full disk never crash-loops the store writer: the batch waits in memory (and in the log) for space.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl

from loratrace.collector.decode import RowBuffer
from loratrace.collector.store_writer.checkpoint import write_checkpoint
from loratrace.collector.store_writer.duplicates import RecentKeys, drop_duplicates
from loratrace.collector.store_writer.settings import (
    STAT_CHECKPOINT,
    STAT_COMPACTIONS,
    STAT_DISK_FULL,
    STAT_DUPLICATES,
    STAT_FLUSHES,
    STAT_LAST_FLUSH_S,
    STAT_MAX_FLUSH_S,
    STAT_METRIC_POINTS,
    STAT_SPANS_WRITTEN,
    StoreWriterSettings,
)
from loratrace.collector.wal import WalReader
from loratrace.store import compaction, retention
from loratrace.store.segments import write_segments

logger = logging.getLogger(__name__)

# a flush that found the disk full is tried again after this long, doubling up to the maximum
DISK_FULL_RETRY_S = 0.2
DISK_FULL_MAX_RETRY_S = 1.0
_DISK_FULL = frozenset((errno.ENOSPC, errno.EDQUOT))


class SegmentWriter:
    """One thread that flushes batches in the order they were submitted, one at a time.

    ``submit`` waits while a batch is still being written, so at most two batches are in memory (the one being
    written and the one being decoded). A failed flush is raised again in the decoding thread, which stops the
    store writer as a failure on the main thread would; the log is replayed from the checkpoint on restart.
    """

    def __init__(
        self, settings: StoreWriterSettings, stats: Any, stop: Any, *, recent: RecentKeys, reader: WalReader
    ) -> None:
        self.settings = settings
        self.store = Path(settings.store)
        self.stats = stats
        self.stop = stop
        self.recent = recent
        self.reader = reader
        self._cond = threading.Condition()
        self._batch: tuple[RowBuffer, int] | None = None
        self._busy = False
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="loratrace-segment-writer", daemon=True)
        self._thread.start()

    def submit(self, buffer: RowBuffer, end: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: not self._busy or self._error is not None)
            self._raise()
            self._batch = (buffer, end)
            self._busy = True
            self._cond.notify_all()

    def wait(self) -> None:
        """Block until every submitted batch is in segments and checkpointed."""
        with self._cond:
            self._cond.wait_for(lambda: not self._busy or self._error is not None)
            self._raise()

    def check(self) -> None:
        """Raise the error of a failed flush, if any."""
        with self._cond:
            self._raise()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            msg = "writing segments failed; the store writer stops (a restart replays the log)"
            raise RuntimeError(msg) from self._error

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._batch is not None or self._closed)
                if self._batch is None:
                    return
                buffer, end = self._batch
                self._batch = None
            try:
                self.flush(buffer, end)
            except BaseException as exc:  # handed to the decoding thread, which stops the process
                with self._cond:
                    self._error = exc
                    self._busy = False
                    self._cond.notify_all()
                return
            del buffer
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def flush(self, buffer: RowBuffer, end: int) -> None:
        """The batch's rows, less duplicates, into segments; then its checkpoint; then the log before it goes."""
        started = time.monotonic()
        frames = buffer.take()
        duplicates = drop_duplicates(frames, self.recent)
        self._write_until_done(frames, end)
        self.reader.remove_before(end)
        elapsed = time.monotonic() - started
        stats = self.stats
        stats[STAT_CHECKPOINT] = end
        stats[STAT_SPANS_WRITTEN] += frames["spans"].height if "spans" in frames else 0
        stats[STAT_METRIC_POINTS] += frames["metrics"].height if "metrics" in frames else 0
        stats[STAT_DUPLICATES] += duplicates
        stats[STAT_FLUSHES] += 1
        stats[STAT_LAST_FLUSH_S] = elapsed
        stats[STAT_MAX_FLUSH_S] = max(stats[STAT_MAX_FLUSH_S], elapsed)
        logger.debug("flushed up to log offset %d in %.3f s", end, elapsed)

    def _write_until_done(self, frames: dict[str, pl.DataFrame], end: int) -> None:
        """Segments then checkpoint; on a full disk, wait for space and write them again (never crash-loop).

        A failed attempt leaves nothing behind (its segments are deleted), so the retry neither duplicates nor
        loses a row. The rows stay in memory and in the log meanwhile; the receivers answer 503 once the log's
        backlog (or its own disk) is full. Stopping while the disk is still full leaves the rows to the log.
        """
        delay = DISK_FULL_RETRY_S
        while True:
            written: list[Path] = []
            try:
                write_segments(
                    self.store, frames, walend=end, kind="flush", written=written, writer_id=self.settings.writer_id
                )
                write_checkpoint(self.store, end, self.settings.writer_id)
            except OSError as exc:
                for path in written:
                    path.unlink(missing_ok=True)
                if exc.errno not in _DISK_FULL or self.stop.is_set():
                    raise
                if not self.stats[STAT_DISK_FULL]:
                    logger.warning("the store's disk is full (%s); retrying the flush until there is space", exc)
                self.stats[STAT_DISK_FULL] = 1
                self.stop.wait(delay)
                delay = min(delay * 2, DISK_FULL_MAX_RETRY_S)
                continue
            if self.stats[STAT_DISK_FULL]:
                logger.warning("the store's disk has space again; flushing resumed")
            self.stats[STAT_DISK_FULL] = 0
            return

    def maintain(self) -> None:
        """Compaction and retention, between flushes (the caller waits for the batch being written first)."""
        try:
            # one collector of those sharing the store compacts and deletes at a time; the others skip the pass
            with compaction.elected(self.store) as chosen:
                if not chosen:
                    return
                merges = compaction.compact_store(
                    self.store, min_segments=self.settings.compact_min_segments, elect=False
                )
                self.stats[STAT_COMPACTIONS] += merges
                if self.settings.retention_days is not None:
                    retention.apply_retention(self.store, days=self.settings.retention_days)
        except Exception:  # maintenance failing must not stop ingestion
            logger.exception("store maintenance (compaction / retention) failed; will retry")
