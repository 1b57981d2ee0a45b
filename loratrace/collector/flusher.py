"""The store writer: a separate process that tails the write-ahead log, decodes, and writes Parquet segments.

It runs apart from the receivers so decoding (the expensive part) uses the second core and never delays an
acknowledgement. Exactly-once, after any crash:

* a flush writes its segments, named after the log offset they cover up to, and *then* records that offset in
  ``state/checkpoint.json`` (atomic rename);
* on start, segments named past the checkpoint are leftovers of an interrupted flush and are deleted,
and the log
  is replayed from the checkpoint;
* a span that a client sent again (a retry after a lost response) is dropped when its trace id + span id was
  already written recently (an in-memory window, reloaded from recent segments on start), and compaction drops
  any older duplicate.
"""

from __future__ import annotations

import contextlib
import errno
import faulthandler
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from loratrace._shutdown_signals import STACK_DUMP_SIGNAL
from loratrace.collector.decode import RowBuffer, _fastdecode
from loratrace.collector.wal import KIND_METRICS, KIND_TRACES, WalReader
from loratrace.store import compaction, layout, retention
from loratrace.store.segments import iter_segments, write_segments

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.json"

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

# a flush that found the disk full is tried again after this long, doubling up to the maximum
DISK_FULL_RETRY_S = 0.2
DISK_FULL_MAX_RETRY_S = 1.0
_DISK_FULL = frozenset((errno.ENOSPC, errno.EDQUOT))


@dataclass(frozen=True)
class FlusherSettings:
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


def read_checkpoint(store: Path, writer_id: str = layout.DEFAULT_WRITER) -> int:
    path = layout.checkpoint_path(store, writer_id)
    if not path.exists():
        return 0
    return int(json.loads(path.read_text())["wal_offset"])


def write_checkpoint(store: Path, offset: int, writer_id: str = layout.DEFAULT_WRITER) -> None:
    layout.atomic_write_bytes(layout.checkpoint_path(store, writer_id), json.dumps({"wal_offset": offset}).encode())


def recover_segments(store: Path, checkpoint: int, writer_id: str = layout.DEFAULT_WRITER) -> int:
    """Delete this writer's segments an interrupted flush wrote past its checkpoint (they will be replayed)."""
    compaction.recover(store)
    removed = 0
    for table_root in (store / layout.SEGMENTS).glob("*"):
        for path in table_root.glob("*/*.parquet"):
            walend = layout.segment_walend(path.name)
            if walend is not None and walend > checkpoint and layout.segment_writer(path.name) == writer_id:
                path.unlink()
                removed += 1
    return removed


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


class Flusher:
    """One store writer; ``run`` loops until ``stop`` is set and the log is drained."""

    def __init__(self, settings: FlusherSettings, stats: Any, stop: Any, *, parent_pid: int | None = None) -> None:
        self.settings = settings
        # the collector process; if it dies (kill -9) this process must not outlive it and write beside the
        # store writer of a restarted collector
        self.parent_pid = parent_pid
        self.store = Path(settings.store)
        self.stats = stats
        self.stop = stop
        self.reader = WalReader(layout.wal_dir(self.store, settings.writer_id))
        self.recent = RecentKeys(settings.dedup_window)
        self.offset = 0

    def start(self) -> None:
        self.offset = read_checkpoint(self.store, self.settings.writer_id)
        removed = recover_segments(self.store, self.offset, self.settings.writer_id)
        if removed:
            logger.info("removed %d segments of an interrupted flush; replaying from %d", removed, self.offset)
        load_recent_keys(self.store, self.recent)
        self.stats[STAT_CHECKPOINT] = self.offset
        self.stats[STAT_READY] = 1

    def run(self) -> None:
        """Read and decode the log into a buffer; hand each full buffer to the segment-writer thread.

        Decoding the next batch overlaps writing the previous one (Polars and the Parquet writer release the
        GIL), so the store writer uses both cores. Order and durability are unchanged: one writer thread
        takes batches in log order, and each batch's checkpoint is written after its segments are renamed.
        """
        self.start()
        settings = self.settings
        writer = _SegmentWriter(self)
        buffer = RowBuffer()
        pending_end = submitted = self.offset
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
                    self.maintain()
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

    def flush(self, buffer: RowBuffer, end: int) -> None:
        started = time.monotonic()
        frames = buffer.take()
        duplicates = drop_duplicates(frames, self.recent)
        self._write_until_done(frames, end)
        self.offset = end
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


class _SegmentWriter:
    """One thread that runs ``Flusher.flush`` on batches in the order they were submitted, one at a time.

    ``submit`` waits while a batch is still being written, so at most two batches are in memory (the one being
    written and the one being decoded). A failed flush is raised again in the decoding thread, which stops the
    store writer as a failure on the main thread would; the log is replayed from the checkpoint on restart.
    """

    def __init__(self, flusher: Flusher) -> None:
        self._flusher = flusher
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
                self._flusher.flush(buffer, end)
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


def run_flusher(settings: FlusherSettings, stats: Any, stop: Any) -> None:
    """Entry point of the flusher process."""
    # the parent decides when to stop (SIGTERM / Ctrl-C go to it); we drain when it sets ``stop``
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    faulthandler.register(STACK_DUMP_SIGNAL, all_threads=True)  # as the collector: SIGUSR1 prints the stacks
    logging.basicConfig(
        level=os.environ.get("LORATRACE_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(processName)s %(levelname)s %(name)s: %(message)s",
    )
    Flusher(settings, stats, stop, parent_pid=os.getppid()).run()


class StopFlag:
    """A stop request shared with the store writer process, in a byte of shared memory.

    Not a ``multiprocessing.Event``: its lock lives in shared memory too, and a store writer killed while it
    held it (inside ``wait``) left every later ``set`` blocked for good, so the collector never exited.
    """

    def __init__(self, ctx: Any) -> None:
        self._value = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._value.value:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.05))
        return True


def start_flusher(
    settings: FlusherSettings, *, stats: Any = None
) -> tuple[multiprocessing.process.BaseProcess, Any, StopFlag]:
    """Start a store writer process; ``stats`` (from an earlier, dead one) carries its counters on."""
    ctx = multiprocessing.get_context("spawn")
    if stats is None:
        stats = ctx.Array("d", N_STATS, lock=False)
    stats[STAT_READY] = 0
    stop = StopFlag(ctx)
    process = ctx.Process(target=run_flusher, args=(settings, stats, stop), name="loratrace-flusher", daemon=True)
    process.start()
    return process, stats, stop


def stop_flusher(process: multiprocessing.process.BaseProcess, stop: StopFlag, *, timeout: float = 60.0) -> int | None:
    """Ask the store writer to drain and stop; its exit code (None if it had to be killed)."""
    stop.set()
    process.join(timeout)
    if process.is_alive():
        with contextlib.suppress(Exception):
            process.kill()
        return None
    return process.exitcode
