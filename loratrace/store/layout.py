"""Where everything lives inside a store folder.

STORE/
  catalog.duckdb                      views over the segments (paths relative to STORE)
  segments/<table>/date=YYYY-MM-DD/   immutable Parquet segments, one folder per UTC day
    [w<writer>-]<walend:020d>-<kind>-<uuid>.parquet    walend: the offset in that writer's log the segment
                                       covers up to; no prefix for writer "0" (and stores older than writer ids)
  segments/<table>/date=1970-01-01/_schema.parquet   an empty segment so every view resolves on a new store
  wal/<start:020d>.wal                the collector's write-ahead log files (writer "0"; wal-<writer>/ for others)
  state/checkpoint.json               the log offset every segment covers; replay starts there
                                      (checkpoint-<writer>.json for writers other than "0")
  state/compactor.lock                held by the one collector that compacts and applies retention
  state/compaction.json               an in-flight compaction's inputs and output (crash recovery)
  state/collector.json                the running collector: pid and addresses (loratrace status)
  state/writer-<id>.lock              held (flock) by the collector writing the store, for its whole life
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

CATALOG: Final = "catalog.duckdb"
SEGMENTS: Final = "segments"
WAL: Final = "wal"
STATE: Final = "state"
SCHEMA_SEGMENT: Final = "_schema.parquet"
SCHEMA_PARTITION: Final = "date=1970-01-01"

DEFAULT_WRITER: Final = "0"
WRITER_ID: Final = re.compile(r"^[a-z0-9]{1,16}$")
"""A collector's writer id: what names its segments, log and checkpoint in a store several collectors share."""
ALL_WRITERS: Final = "all"
"""The writer id of segments compaction merged across writers (never a collector's own id)."""
COMPACTOR_LOCK: Final = "compactor.lock"

_SEGMENT_NAME: Final = re.compile(
    r"^(?:w(?P<writer>[a-z0-9]{1,16})-)?(?P<walend>\d{20})-(?P<kind>[a-z]+)-(?P<uid>[0-9a-f]{32})\.parquet$"
)


def check_writer_id(writer_id: str) -> str:
    if not WRITER_ID.match(writer_id) or writer_id == ALL_WRITERS:
        msg = f"a writer id is 1-16 lower-case letters or digits (not {ALL_WRITERS!r}), got {writer_id!r}"
        raise ValueError(msg)
    return writer_id


def segment_walend(name: str) -> int | None:
    """The log offset a segment file name records, None for files that are not segments."""
    match = _SEGMENT_NAME.match(name)
    return int(match["walend"]) if match else None


def segment_kind(name: str) -> str | None:
    match = _SEGMENT_NAME.match(name)
    return match["kind"] if match else None


def segment_writer(name: str) -> str | None:
    """The writer id a segment file name records ("0" when it has none), None for files that are not segments."""
    match = _SEGMENT_NAME.match(name)
    return (match["writer"] or DEFAULT_WRITER) if match else None


def writer_prefix(writer_id: str) -> str:
    return "" if writer_id == DEFAULT_WRITER else f"w{writer_id}-"


def segment_name(walend: int, kind: str, *, writer_id: str = DEFAULT_WRITER) -> str:
    return f"{writer_prefix(writer_id)}{walend:020d}-{kind}-{os.urandom(16).hex()}.parquet"


def wal_dir(store: Path, writer_id: str = DEFAULT_WRITER) -> Path:
    """The write-ahead log folder of one writer: ``wal/`` for writer "0", ``wal-<id>/`` for the others."""
    return store / (WAL if writer_id == DEFAULT_WRITER else f"{WAL}-{writer_id}")


def checkpoint_path(store: Path, writer_id: str = DEFAULT_WRITER) -> Path:
    name = "checkpoint.json" if writer_id == DEFAULT_WRITER else f"checkpoint-{writer_id}.json"
    return store / STATE / name


def writer_lock_path(store: Path, writer_id: str = "0") -> Path:
    """The lock file a collector holds while it writes ``store`` as writer ``writer_id``."""
    return store / STATE / f"writer-{writer_id}.lock"


def table_dir(store: Path, table: str) -> Path:
    return store / SEGMENTS / table


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` so a reader (or a crash) sees the old content or the new, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:  # a full disk: leave no half-written temporary holding space
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    fsync_dir(path.parent)
