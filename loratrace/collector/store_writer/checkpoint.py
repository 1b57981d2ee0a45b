"""The store writer's checkpoint (the log offset its segments cover up to) and recovery from a crash mid-flush."""

from __future__ import annotations

import json
from pathlib import Path

from loratrace.store import compaction, layout


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
