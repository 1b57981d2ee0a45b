"""Writing immutable Parquet segments: temporary file, fsync, atomic rename into the day's partition."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import polars as pl

from loratrace.store import layout, schema


def write_segments(
    store: Path,
    frames: dict[str, pl.DataFrame],
    *,
    walend: int,
    kind: str,
    written: list[Path] | None = None,
    writer_id: str = layout.DEFAULT_WRITER,
) -> list[Path]:
    """Write each table's rows, split by UTC day, as new segments named after ``walend``; returns their paths.

    A segment becomes visible to readers only by its final rename, so nobody reads a half-written file.
    ``written`` (when given) receives each path as soon as it is renamed, so a caller whose write failed
    half-way knows which segments to delete.
    """
    written = [] if written is None else written
    for table, frame in frames.items():
        if frame.is_empty():
            continue
        time_column = schema.TIME_COLUMN[table]
        days = frame.get_column(time_column).dt.date()
        if days.n_unique() == 1:  # the usual flush: one day, written as it is (partition_by would copy it)
            parts = {(days[0],): frame}
        else:
            parts = {
                key: part.drop("_day")
                for key, part in frame.with_columns(days.alias("_day"))
                .partition_by("_day", as_dict=True, maintain_order=True)
                .items()
            }
        for (day,), part in parts.items():
            folder = layout.table_dir(store, table) / f"date={day.isoformat() if day else '1970-01-01'}"
            name = layout.segment_name(walend, kind, writer_id=writer_id)
            sort_by = schema.SORT_COLUMN.get(table)
            written.append(write_segment(folder, part, walend=walend, kind=kind, name=name, sort_by=sort_by))
    return written


def write_segment(
    folder: Path,
    frame: pl.DataFrame,
    *,
    walend: int,
    kind: str,
    name: str | None = None,
    sort_by: str | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / (name or layout.segment_name(walend, kind))
    tmp = folder / f".{final.name}.tmp"
    try:
        try:
            write_parquet_file(frame, tmp, sort_by=sort_by)
        except pl.exceptions.PolarsError as exc:
            raise _as_os_error(exc) from exc
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
    except BaseException:  # a full disk: the half-written file must not hold the space it took
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, final)
    layout.fsync_dir(folder)
    return final


def write_parquet_file(frame: pl.DataFrame, path: Path, *, sort_by: str | None) -> None:
    """One segment file: rows in ``sort_by`` order (random trace ids would otherwise defeat row-group min/max
    pruning, and "which adapter served trace X" would read every trace id of the store), small row groups."""
    if sort_by is not None and sort_by in frame.columns:
        frame = frame.sort(sort_by, maintain_order=True)
    frame.write_parquet(
        path, compression="zstd", compression_level=1, statistics=True, row_group_size=schema.ROW_GROUP_ROWS
    )


_OS_ERROR: Final = re.compile(r"\(os error (\d+)\)")


def _as_os_error(exc: Exception) -> Exception:
    """Polars reports an I/O failure as ``ComputeError: ... (os error 28)``: give it back its errno."""
    match = _OS_ERROR.search(str(exc))
    return OSError(int(match[1]), str(exc)) if match else exc


def iter_segments(store: Path, table: str) -> Iterator[Path]:
    """Every visible segment of ``table`` (not the empty schema segments, not temporary files)."""
    root = layout.table_dir(store, table)
    if not root.is_dir():
        return
    for partition in sorted(root.iterdir()):
        if not partition.is_dir():
            continue
        for path in sorted(partition.iterdir()):
            if layout.segment_walend(path.name) is not None:
                yield path


def ensure_schema_segments(store: Path) -> None:
    """An empty, fully typed segment per table so every view resolves (and is typed) before any data."""
    for table in schema.TABLES:
        folder = layout.table_dir(store, table) / layout.SCHEMA_PARTITION
        path = folder / layout.SCHEMA_SEGMENT
        # a store from an older version keeps an older schema segment: rewrite it, so the views (which name every
        # column of this version) resolve over segments that lack the newer columns
        if path.exists() and list(pl.read_parquet_schema(path)) == list(schema.TABLES[table]):
            continue
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{path.name}.{os.getpid()}.tmp"
        schema.empty_frame(table).write_parquet(tmp)
        os.replace(tmp, path)


def remove_stale_temporaries(store: Path, *, older_than_s: float = 3600.0) -> None:
    """Temporary files left by a crash mid-write; never visible to readers, removed on start.

    Only those older than ``older_than_s``: another collector sharing the store may be writing its own right now.
    """
    root = store / layout.SEGMENTS
    if not root.is_dir():
        return
    cutoff = time.time() - older_than_s
    for path in root.rglob(".*.tmp"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
        except FileNotFoundError:  # renamed into place or removed meanwhile
            continue
