"""Span segments are written in trace-id order in small row groups, so that a lookup of one trace prunes by the
row groups' min/max statistics instead of reading every trace id of the store."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from loratrace.demo.traffic import Traffic, write_store
from loratrace.store import schema


def test_span_segments_are_sorted_by_trace_id_in_small_row_groups(tmp_path: Path) -> None:
    traffic = Traffic(
        start=datetime(2026, 3, 2, 8, tzinfo=timezone.utc),
        duration=timedelta(hours=1),
        requests_per_hour=3000,
        eval_fraction=0.0,
    )
    written = write_store(traffic, tmp_path / "store", spans_per_export=20_000)
    segments = [
        p for p in (tmp_path / "store").rglob("*.parquet") if "spans" in p.parts and p.name != "_schema.parquet"
    ]
    assert len(segments) == 1
    con = duckdb.connect()
    groups = con.execute(
        "SELECT row_group_id, row_group_num_rows, stats_min_value, stats_max_value FROM parquet_metadata(?) "
        "WHERE path_in_schema = 'trace_id' ORDER BY row_group_id",
        [str(segments[0])],
    ).fetchall()
    assert sum(g[1] for g in groups) == written
    assert len(groups) == -(-written // schema.ROW_GROUP_ROWS)
    assert all(g[1] <= schema.ROW_GROUP_ROWS for g in groups)
    # disjoint, ascending ranges: a lookup can skip every row group but one
    assert all(a[3] < b[2] for a, b in itertools.pairwise(groups))
    ids = [r[0] for r in con.execute("SELECT trace_id FROM read_parquet(?)", [str(segments[0])]).fetchall()]
    assert ids == sorted(ids)
