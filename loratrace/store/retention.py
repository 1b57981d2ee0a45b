"""Retention: whole UTC-day partitions older than the limit are deleted, in every table."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from loratrace.store import layout, schema


def apply_retention(store: Path, *, days: int, today: date | None = None) -> list[Path]:
    """Delete partitions whose day is more than ``days`` days before ``today`` (UTC); returns them."""
    today = today or datetime.now(timezone.utc).date()
    oldest_kept = today - timedelta(days=days)
    removed = []
    for table in schema.TABLES:
        root = layout.table_dir(store, table)
        if not root.is_dir():
            continue
        for partition in root.iterdir():
            if not partition.is_dir() or partition.name == layout.SCHEMA_PARTITION:
                continue
            try:
                day = date.fromisoformat(partition.name.removeprefix("date="))
            except ValueError:
                continue
            if day < oldest_kept:
                shutil.rmtree(partition)
                removed.append(partition)
    return removed
