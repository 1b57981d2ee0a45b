"""Compaction: merge a partition's small segments, dropping duplicate spans, without a moment of double counting.

A merge writes one new segment and leaves its inputs where they are; the new segment's name (see
``visibility.py``) tells every reader that it covers them, from a moment shortly after its rename. Readers
that listed the partition earlier keep reading the inputs, which stay on disk for a grace period after the
cover turned active, and are deleted only while no ``query`` runs (``readlock.py``). So a reader never sees a
span twice, never misses one, and never opens a deleted file (unless its query runs longer than the grace
period, or it is a plain DuckDB client listing files in the instant of a deletion). No journal is needed: a
crash before the rename leaves a temporary file (removed on start), after it a complete segment.

Tiers keep the number of files per partition small: ``min_segments`` counted segments of one level (and one
writer) are merged into one of the next level. Once a day is over (and quiet for ``close_after_s``), everything
its partition still counts is merged into one segment, which removes every duplicate a client retry left there:
a span's copies always fall in the same partition (its start time decides the day). With several collectors on
one store, that closing merge spans the writers (see ``visibility.py``), so a span re-sent to another collector
after a failover is kept once too; and only one collector compacts at a time (``state/compactor.lock``, taken
without waiting: the others skip their pass), so no two merges ever race over the same inputs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Final

import polars as pl

from loratrace.store import layout, readlock, schema, visibility
from loratrace.store.segments import write_parquet_file

logger = logging.getLogger(__name__)

JOURNAL: Final = "compaction.json"

# rows that are the same fact sent twice (client retries): kept once
DEDUP_KEYS: Final[dict[str, tuple[str, ...] | None]] = {
    "spans": ("trace_id", "span_id"),
    "span_events": ("trace_id", "span_id", "event_index"),
    "span_links": ("trace_id", "span_id", "link_index"),
    "metrics": None,
}


@dataclass(frozen=True)
class CompactionSettings:
    min_segments: int = 8
    # a merged segment counts only this long after its rename, so every listing taken from then on holds it
    activation_delay_s: float = 5.0
    # covered inputs stay this long after their cover turned active, for queries that listed them before
    grace_s: float = 300.0
    # a past day's partition is merged into one segment once no segment arrived there for this long
    close_after_s: float = 600.0


def _journal(store: Path) -> Path:
    return store / layout.STATE / JOURNAL


@contextlib.contextmanager
def elected(store: Path, *, wait: bool = False) -> Iterator[bool]:
    """Hold ``state/compactor.lock``: yields whether this process is the store's compactor for now."""
    path = store / layout.STATE / layout.COMPACTOR_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock (a killed compactor's lock goes with its process)


def recover(store: Path) -> None:
    """Finish a compaction of an older loratrace that a crash interrupted (it deleted inputs after the rename).

    This version keeps no journal: its merges are complete once renamed and harmless before.
    """
    path = _journal(store)
    if not path.exists():
        return
    entry = json.loads(path.read_text())
    output = store / entry["output"]
    if output.exists():
        for name in entry["inputs"]:
            (store / name).unlink(missing_ok=True)
    path.unlink()


def compact_store(
    store: Path,
    *,
    min_segments: int = 8,
    max_rows: int = 2_000_000,
    activation_delay_s: float | None = None,
    grace_s: float | None = None,
    close_after_s: float | None = None,
    today: date | None = None,
    elect: bool = True,
    wait: bool = False,
) -> int:
    """Delete expired covered segments and run every merge that is due; returns how many merges ran.

    ``elect``: take the compactor lock first (skip, returning 0, while another process compacts, or wait for it
    with ``wait``); False when the caller already holds it. ``max_rows`` is accepted for compatibility; a merge
    is bounded by its tier instead.
    """
    del max_rows
    defaults = CompactionSettings()
    settings = CompactionSettings(
        min_segments=min_segments,
        activation_delay_s=defaults.activation_delay_s if activation_delay_s is None else activation_delay_s,
        grace_s=defaults.grace_s if grace_s is None else grace_s,
        close_after_s=defaults.close_after_s if close_after_s is None else close_after_s,
    )
    if not elect:
        return _compact_tables(store, settings, today)
    with elected(store, wait=wait) as chosen:
        return _compact_tables(store, settings, today) if chosen else 0


def _compact_tables(store: Path, settings: CompactionSettings, today: date | None) -> int:
    """Every partition of every table, by the caller holding the compactor lock."""
    today = today or datetime.now(timezone.utc).date()
    merges = 0
    for table in schema.TABLES:
        root = layout.table_dir(store, table)
        if not root.is_dir():
            continue
        for partition in sorted(p for p in root.iterdir() if p.is_dir() and p.name != layout.SCHEMA_PARTITION):
            merges += compact_partition(store, table, partition, settings=settings, today=today)
    return merges


def _segments(partition: Path) -> list[Path]:
    return sorted(p for p in partition.iterdir() if visibility.parse(p.name) is not None)


def _day(partition: Path) -> date | None:
    try:
        return date.fromisoformat(partition.name.removeprefix("date="))
    except ValueError:
        return None


def compact_partition(store: Path, table: str, partition: Path, *, settings: CompactionSettings, today: date) -> int:
    """Expire, then merge tier by tier (and close a finished day); returns how many merges ran."""
    now = visibility.now_ms()
    expired = visibility.expired(_segments(partition), at_ms=now, grace_ms=int(settings.grace_s * 1000))
    if expired:
        with readlock.deleting(store) as allowed:
            if allowed:
                for path in expired:
                    path.unlink(missing_ok=True)
                logger.debug("deleted %d segments covered for longer than the grace period", len(expired))
            else:
                logger.debug("readers are busy; deleting %d covered segments on a later pass", len(expired))
    merges = 0
    for _ in range(64):  # each pass merges once; a bound, not an expected count
        plan = _plan(partition, settings=settings, today=today)
        if plan is None:
            break
        inputs, level = plan
        if level == _ACROSS_WRITERS:
            merge_across_writers(table, partition, inputs, activation_delay_s=settings.activation_delay_s)
        else:
            merge_segments(table, partition, inputs, level=level, activation_delay_s=settings.activation_delay_s)
        merges += 1
    if merges:
        logger.debug("ran %d merges in %s of %s (%s)", merges, partition.name, table, store)
    return merges


_ACROSS_WRITERS: Final = -1  # a plan's level meaning: close the day over several writers


def _plan(partition: Path, *, settings: CompactionSettings, today: date) -> tuple[list[Path], int] | None:
    """The next merge due: (inputs, level of the output, or ``_ACROSS_WRITERS``), or None."""
    live = [
        (path, name)
        for path in visibility.counted(_segments(partition), at_ms=None)
        if (name := visibility.parse(path.name)) is not None and name.level is not None
    ]
    by_level: dict[tuple[str, int], list[Path]] = {}
    for path, name in live:  # `or 0` only types it: every name in `live` has a level
        by_level.setdefault((name.writer, name.level or 0), []).append(path)
    for writer, level in sorted(by_level):
        if len(by_level[writer, level]) >= settings.min_segments and level < visibility.MAX_LEVEL:
            return by_level[writer, level], level + 1
    day = _day(partition)
    data = [(path, name) for path, name in live if name.kind != visibility.COVER]  # covers hold no rows
    if day is not None and day < today and len(data) >= 2:
        newest = max(path.stat().st_mtime for path, _ in live)
        top = max(name.level or 0 for _, name in live)
        quiet = visibility.now_ms() - newest * 1000 >= settings.close_after_s * 1000
        writers = {name.writer for _, name in live}
        if quiet and top < visibility.MAX_LEVEL:
            if len(writers) > 1:
                return [path for path, _ in live], _ACROSS_WRITERS
            return [path for path, _ in live], top + 1
    return None


def _read_unique(table: str, inputs: list[Path]) -> pl.DataFrame:
    frame = pl.concat([pl.read_parquet(p) for p in inputs], how="diagonal_relaxed")
    keys = DEDUP_KEYS[table]
    if keys is not None:
        frame = frame.unique(subset=list(keys), keep="first", maintain_order=True)
    return frame


def _write_tmp(table: str, partition: Path, frame: pl.DataFrame) -> Path:
    tmp = partition / f".merge-{os.urandom(8).hex()}.parquet.tmp"
    write_parquet_file(frame, tmp, sort_by=schema.SORT_COLUMN.get(table))
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    return tmp


def merge_across_writers(table: str, partition: Path, inputs: list[Path], *, activation_delay_s: float) -> Path:
    """Close a day written by several collectors: one segment of writer ``all`` with every span once, and per
    writer an empty merged segment covering that writer's inputs, all active from the same instant."""
    named = [(path, visibility.parse(path.name)) for path in inputs]
    frame = _read_unique(table, inputs)
    combined_level = 1 + max((n.level or 0 for _, n in named if n and n.writer == layout.ALL_WRITERS), default=0)
    tops: dict[str, tuple[int, int]] = {}  # writer -> (highest walend, highest level) among the inputs
    for _, name in named:
        if name is None or name.writer == layout.ALL_WRITERS:
            continue
        walend, level = tops.get(name.writer, (0, 0))
        tops[name.writer] = (max(walend, name.walend), max(level, name.level or 0))
    staged = [(_write_tmp(table, partition, frame), layout.ALL_WRITERS, 0, combined_level, visibility.MERGED)]
    empty = frame.head(0)
    staged += [
        (_write_tmp(table, partition, empty), writer, walend, level + 1, visibility.COVER)
        for writer, (walend, level) in tops.items()
    ]
    # one activation instant for all of them, named right before the renames: before it the inputs count,
    # after it the combined segment does and the empty covers hide every input
    active_ms = visibility.now_ms() + int(activation_delay_s * 1000)
    final = partition
    for tmp, writer, walend, level, kind in staged:
        segment = visibility.merged_name(walend, level, active_ms, os.urandom(8).hex(), writer=writer, kind=kind)
        final_path = partition / segment
        os.replace(tmp, final_path)
        if writer == layout.ALL_WRITERS:
            final = final_path
    layout.fsync_dir(partition)
    logger.debug("closed %s of %s across %d writers (%d rows)", partition.name, table, len(tops), frame.height)
    return final


def merge_segments(table: str, partition: Path, inputs: list[Path], *, level: int, activation_delay_s: float) -> Path:
    """Write the merge of ``inputs`` (duplicates dropped) as a level-``level`` segment; inputs stay."""
    frame = _read_unique(table, inputs)
    names = [name for p in inputs if (name := visibility.parse(p.name)) is not None]  # every input is a segment
    walend = max(n.walend for n in names)
    writer = names[0].writer  # a tier or a one-writer close: one writer's inputs
    tmp = _write_tmp(table, partition, frame)
    # named only now, right before the rename, so the activation delay is measured from the rename
    active_ms = visibility.now_ms() + int(activation_delay_s * 1000)
    final = partition / visibility.merged_name(walend, level, active_ms, os.urandom(8).hex(), writer=writer)
    os.replace(tmp, final)
    layout.fsync_dir(partition)
    logger.debug("merged %d segments of %s into %s (level %d, %d rows)", len(inputs), table, final, level, frame.height)
    return final
