"""The store writer's read loop: tail the write-ahead log, decode records into batches, hand them on."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from loratrace.collector.decode import RowBuffer
from loratrace.collector.store_writer.checkpoint import read_checkpoint, recover_segments
from loratrace.collector.store_writer.duplicates import RecentKeys, load_recent_keys
from loratrace.collector.store_writer.segment_writing import SegmentWriter
from loratrace.collector.store_writer.settings import (
    STAT_CHECKPOINT,
    STAT_DECODE_ERRORS,
    STAT_READY,
    StoreWriterSettings,
)
from loratrace.collector.wal import KIND_METRICS, KIND_TRACES, WalReader
from loratrace.store import layout

logger = logging.getLogger(__name__)


class StoreWriter:
    """One store writer; ``run`` loops until ``stop`` is set and the log is drained."""

    def __init__(self, settings: StoreWriterSettings, stats: Any, stop: Any, *, parent_pid: int | None = None) -> None:
        self.settings = settings
        # the collector process; if it dies (kill -9) this process must not outlive it and write beside the
        # store writer of a restarted collector
        self.parent_pid = parent_pid
        self.store = Path(settings.store)
        self.stats = stats
        self.stop = stop
        self.reader = WalReader(layout.wal_dir(self.store, settings.writer_id))
        self.recent = RecentKeys(settings.dedup_window)

    def start(self) -> int:
        """Recover from an interrupted flush and reload the duplicate window; the log offset to replay from."""
        offset = read_checkpoint(self.store, self.settings.writer_id)
        removed = recover_segments(self.store, offset, self.settings.writer_id)
        if removed:
            logger.info("removed %d segments of an interrupted flush; replaying from %d", removed, offset)
        load_recent_keys(self.store, self.recent)
        self.stats[STAT_CHECKPOINT] = offset
        self.stats[STAT_READY] = 1
        return offset

    def run(self) -> None:
        """Read and decode the log into a buffer; hand each full buffer to the segment-writer thread.

        Decoding the next batch overlaps writing the previous one (Polars and the Parquet writer release the
        GIL), so the store writer uses both cores. Order and durability are unchanged: one writer thread
        takes batches in log order, and each batch's checkpoint is written after its segments are renamed.
        """
        offset = self.start()
        settings = self.settings
        writer = SegmentWriter(settings, self.stats, self.stop, recent=self.recent, reader=self.reader)
        buffer = RowBuffer()
        pending_end = submitted = offset
        last_flush = time.monotonic()
        last_maintenance = time.monotonic()
        try:
            while True:
                if self.parent_pid is not None and os.getppid() != self.parent_pid:
                    logger.warning("the collector process is gone; the store writer stops (a restart replays the log)")
                    return
                writer.check()  # a failed flush stops this process, as it did when flushes ran on this thread
                stopping = self.stop.is_set()
                got = 0
                for record in self.reader.read(pending_end, max_bytes=settings.read_bytes):
                    self._decode(buffer, record.kind, record.payload)
                    pending_end = record.end
                    got += 1
                    if len(buffer) >= settings.flush_rows:
                        break
                now = time.monotonic()
                since = now - last_flush
                due = (
                    len(buffer) >= settings.flush_rows
                    or since >= settings.flush_interval
                    # caught up with the log after a burst: make it queryable now, not at the next interval
                    or (got == 0 and len(buffer) >= settings.idle_flush_rows and since >= settings.idle_flush_gap)
                )
                if pending_end > submitted and (due or stopping):
                    writer.submit(buffer, pending_end)
                    buffer = RowBuffer()
                    submitted = pending_end
                    last_flush = time.monotonic()
                if now - last_maintenance >= settings.compact_interval:
                    writer.wait()  # compaction rewrites segments: never while a flush writes them
                    writer.maintain()
                    last_maintenance = time.monotonic()
                if stopping and got == 0 and pending_end == submitted:
                    writer.wait()
                    return
                if got == 0:
                    self.stop.wait(0.05)
        finally:
            writer.close()

    def _decode(self, buffer: RowBuffer, kind: int, payload: bytes) -> None:
        try:
            if kind == KIND_TRACES:
                buffer.add_traces_bytes(payload)
            elif kind == KIND_METRICS:
                request_m = ExportMetricsServiceRequest()
                request_m.ParseFromString(payload)
                buffer.add_metrics(request_m)
        except Exception:  # the receiver validated it; a record we cannot decode must not stop the store
            logger.exception("skipping an undecodable write-ahead log record")
            self.stats[STAT_DECODE_ERRORS] += 1
