"""Compaction: merge a partition's small segments into one, dropping duplicate spans; crash-safe by a journal.

The journal (``state/compaction.json``) names the output and inputs before anything is renamed. After a crash,
``recover`` finishes the job (output in place: delete the inputs) or abandons it (no output: keep the
inputs), so
a span is never visible twice for longer than the instant between the output's rename and the inputs' unlink.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Final

import polars as pl

from loratrace.store import layout, schema
from loratrace.store.segments import write_segment

logger = logging.getLogger(__name__)

JOURNAL: Final = "compaction.json"

# rows that are the same fact sent twice (client retries): kept once
DEDUP_KEYS: Final[dict[str, tuple[str, ...] | None]] = {
    "spans": ("trace_id", "span_id"),
    "span_events": ("trace_id", "span_id", "event_index"),
    "span_links": ("trace_id", "span_id", "link_index"),
    "metrics": None,
}


def _journal(store: Path) -> Path:
    return store / layout.STATE / JOURNAL


def recover(store: Path) -> None:
    """Finish or abandon a compaction a crash interrupted."""
    path = _journal(store)
    if not path.exists():
        return
    entry = json.loads(path.read_text())
    output = store / entry["output"]
    if output.exists():
        for name in entry["inputs"]:
            (store / name).unlink(missing_ok=True)
    path.unlink()


def compact_store(store: Path, *, min_segments: int = 8, max_rows: int = 2_000_000) -> int:
    """Merge every partition holding at least ``min_segments`` segments; returns how many merges ran."""
    merges = 0
    for table in schema.TABLES:
        root = layout.table_dir(store, table)
        if not root.is_dir():
            continue
        for partition in sorted(
            p for p in root.iterdir() if p.is_dir() and p.name != layout.SCHEMA_PARTITION
        ):
            segments = sorted(p for p in partition.iterdir() if layout.segment_walend(p.name) is not None)
            small = [p for p in segments if layout.segment_kind(p.name) != "compact"]
            if len(small) >= min_segments:
                compact_partition(store, table, partition, small, max_rows=max_rows)
                merges += 1
    return merges


def compact_partition(store: Path, table: str, partition: Path, inputs: list[Path], *, max_rows: int) -> Path:
    frame = pl.concat([pl.read_parquet(p) for p in inputs], how="diagonal_relaxed")
    keys = DEDUP_KEYS[table]
    if keys is not None:
        frame = frame.unique(subset=list(keys), keep="first", maintain_order=True)
    walend = max(layout.segment_walend(p.name) or 0 for p in inputs)
    output_name = layout.segment_name(walend, "compact")
    entry = {
        "output": str((partition / output_name).relative_to(store)),
        "inputs": [str(p.relative_to(store)) for p in inputs],
    }
    layout.atomic_write_bytes(_journal(store), json.dumps(entry).encode())
    folder_output = write_segment(partition, frame, walend=walend, kind="compact", name=output_name)
    for path in inputs:
        path.unlink(missing_ok=True)
    layout.fsync_dir(partition)
    _journal(store).unlink()
    logger.debug(
        "compacted %d segments of %s into %s (%d rows)", len(inputs), table, folder_output, frame.height
    )
    return folder_output
