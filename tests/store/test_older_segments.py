"""A store written by an older loratrace (segments without the newer promoted columns) still reads everywhere."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl

from loratrace.analysis import drift_for_store
from loratrace.demo.traffic import Traffic, write_store
from loratrace.store import query, scan
from loratrace.store.readers import counted_files

# the columns this version added to each table
NEWER = {
    "spans": ("example_id", "served_after_fallback"),
    "span_events": ("example_id", "dataset_version", "model_quantization_method", "model_quantization_bits"),
}


def _as_older_version(store: Path) -> None:
    """Rewrite every segment, the schema segments included, as an older collector wrote them; drop the catalog."""
    for table, columns in NEWER.items():
        for path in [*counted_files(store, table), store / "segments" / table / "date=1970-01-01" / "_schema.parquet"]:
            frame = pl.read_parquet(path, hive_partitioning=False)
            frame.drop([c for c in columns if c in frame.columns]).write_parquet(path)
    (store / "catalog.duckdb").unlink()


def _reopened_by_this_version(store: Path) -> None:
    from loratrace.store import ensure_store

    ensure_store(store)


def test_segments_without_newer_columns_read_as_nulls(tmp_path: Path) -> None:
    store = tmp_path / "store"
    traffic = Traffic(
        start=datetime(2026, 11, 2, tzinfo=timezone.utc), duration=timedelta(hours=2), requests_per_hour=40
    )
    written = write_store(traffic, store)
    _as_older_version(store)
    assert "example_id" not in pl.read_parquet(counted_files(store, "spans")[-1]).columns
    _reopened_by_this_version(store)
    spans = scan(store, "spans").select(pl.len(), pl.col("example_id").null_count()).collect().row(0)
    assert spans == (written, written)
    assert scan(store, "span_events").select(pl.col("example_id").null_count()).collect().item() > 0
    assert query(store, "SELECT count(*) AS n FROM generations")["n"][0] == written
    rows = drift_for_store(store, metric_names=["eval_pass:quality"])
    assert set(rows["design"]) == {"concurrent"}
