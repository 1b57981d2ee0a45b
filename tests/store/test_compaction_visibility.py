"""Compaction never lets a reader count a span twice, miss one, or open a deleted file.

Merges add a segment whose name says which segments it covers and from when; readers (the catalog views, a
long-lived DuckDB connection, ``query``, the Polars scan) apply that rule to whatever they listed.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loratrace.store import ensure_store, query, scan_spans, visibility
from loratrace.store.compaction import compact_store
from loratrace.store.readers import counted_files
from loratrace.store.segments import iter_segments, write_segments

DAY = date(2026, 11, 20)


def _micros(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc).timestamp() * 1_000_000)


def _write(store: Path, keys: list[tuple[int, date]], *, walend: int) -> None:
    """One flush segment per day holding spans whose trace / span ids derive from the integers."""
    frame = pl.DataFrame(
        {
            "trace_id": [f"{k:032x}" for k, _ in keys],
            "span_id": [f"{k:016x}" for k, _ in keys],
            "start_time": [_micros(day) for _, day in keys],
            "attributes": ["{}"] * len(keys),
        }
    ).with_columns(pl.col("start_time").cast(pl.Datetime("us")))
    write_segments(store, {"spans": frame}, walend=walend, kind="flush")


def _count(store: Path) -> tuple[int, int]:
    row = query(store, "SELECT count(*) AS n, count(DISTINCT (trace_id, span_id)) AS d FROM spans").row(0)
    return int(row[0]), int(row[1])


def _data_files(store: Path) -> list[Path]:
    return [p for p in counted_files(store, "spans") if visibility.parse(p.name) is not None]


def test_a_merged_segment_replaces_its_inputs_at_its_activation_time(tmp_path: Path) -> None:
    store = ensure_store(tmp_path / "s")
    for i in range(8):
        _write(store, [(i, DAY), (100, DAY)], walend=i + 1)  # span 100 repeated in every segment
    inputs = sorted(iter_segments(store, "spans"))
    assert _count(store) == (16, 9)
    before = visibility.now_ms()
    assert compact_store(store, min_segments=8, activation_delay_s=3600, today=DAY) == 1
    merged = sorted(set(iter_segments(store, "spans")) - set(inputs))
    assert len(merged) == 1
    name = visibility.parse(merged[0].name)
    assert (name.kind, name.walend, name.level) == ("merged", 8, 1)  # type: ignore[union-attr]
    assert before + 3_600_000 <= name.active_ms <= visibility.now_ms() + 3_600_000  # type: ignore[union-attr]
    everything = inputs + merged
    # before its activation the merge is not counted and its inputs are; afterwards the reverse
    assert visibility.counted(everything, at_ms=name.active_ms - 1) == inputs  # type: ignore[union-attr]
    assert visibility.counted(everything, at_ms=name.active_ms) == merged  # type: ignore[union-attr]
    assert _count(store) == (16, 9)  # DuckDB's now() is before the activation
    assert _data_files(store) == inputs
    assert pl.read_parquet(merged[0]).height == 9  # the repeated span once
    # nothing is deleted before the cover is active and its grace period over
    assert compact_store(store, min_segments=8, grace_s=0, today=DAY) == 0
    assert sorted(iter_segments(store, "spans")) == everything


def test_the_catalog_view_switches_from_inputs_to_the_merge_with_exact_counts(tmp_path: Path) -> None:
    store = ensure_store(tmp_path / "s")
    for i in range(8):
        _write(store, [(i, DAY), (100, DAY)], walend=i + 1)
    compact_store(store, min_segments=8, activation_delay_s=1.0, today=DAY)
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen.append(_count(store))
        if seen[-1] == (9, 9):
            break
    # DuckDB applied the name rule: the inputs with their repeats, then the deduplicated merge, nothing between
    assert set(seen) <= {(16, 9), (9, 9)}
    assert seen[-1] == (9, 9)
    assert compact_store(store, min_segments=8, grace_s=0, today=DAY) == 0
    assert [visibility.parse(p.name).kind for p in iter_segments(store, "spans")] == ["merged"]  # type: ignore[union-attr]
    assert _count(store) == (9, 9)


def test_tiers_and_closing_a_finished_day_remove_duplicates_beyond_the_retry_window(tmp_path: Path) -> None:
    """A client retry the collector's window missed is a second copy in another segment; it is counted twice
    until one merge holds both copies, which the day's closing merge guarantees."""
    store = ensure_store(tmp_path / "s")
    fast = {"activation_delay_s": 0, "grace_s": 0}
    for i in range(8):
        _write(store, [(i, DAY)], walend=i + 1)
    assert compact_store(store, min_segments=8, today=DAY, **fast) == 1  # segments 1..8 merged
    for i in (8, 9, 3):  # span 3 again, long after: in a segment outside that merge
        _write(store, [(i, DAY)], walend=i + 1 if i != 3 else 11)
    assert compact_store(store, min_segments=8, today=DAY, **fast) == 0
    assert _count(store) == (11, 10)  # the late copy is outside that merge: counted twice, visibly so
    # the day is over but a segment arrived moments ago: not closed yet
    assert compact_store(store, min_segments=8, today=DAY + timedelta(days=1), **fast) == 0
    assert compact_store(store, min_segments=8, today=DAY + timedelta(days=1), close_after_s=0, **fast) == 1
    assert _count(store) == (10, 10)
    files = _data_files(store)
    assert [(visibility.parse(p.name).level, visibility.parse(p.name).walend) for p in files] == [(2, 11)]  # type: ignore[union-attr]
    # tiers: 8 merges of level 1 make one of level 2
    store2 = ensure_store(tmp_path / "s2")
    for i in range(64):
        _write(store2, [(i, DAY)], walend=i + 1)
        compact_store(store2, min_segments=8, today=DAY, **fast)
    assert [(visibility.parse(p.name).level, visibility.parse(p.name).walend) for p in _data_files(store2)] == [(2, 64)]  # type: ignore[union-attr]
    assert _count(store2) == (64, 64)


def test_embedded_segments_are_never_merged_or_hidden(tmp_path: Path) -> None:
    store = ensure_store(tmp_path / "s")
    frame = pl.DataFrame(
        {"trace_id": ["e" * 32], "span_id": ["e" * 16], "start_time": [_micros(DAY)], "attributes": ["{}"]}
    ).with_columns(pl.col("start_time").cast(pl.Datetime("us")))
    write_segments(store, {"spans": frame}, walend=0, kind="embedded")
    for i in range(8):
        _write(store, [(i, DAY)], walend=i + 1)
    assert compact_store(store, min_segments=8, activation_delay_s=0, grace_s=0, today=DAY) == 1
    assert compact_store(store, min_segments=8, grace_s=0, today=DAY) == 0
    kinds = sorted(visibility.parse(p.name).kind for p in iter_segments(store, "spans"))  # type: ignore[union-attr]
    assert kinds == ["embedded", "merged"]
    assert _count(store) == (9, 9)


def test_a_crash_before_the_rename_leaves_nothing_visible(tmp_path: Path) -> None:
    store = ensure_store(tmp_path / "s")
    for i in range(3):
        _write(store, [(i, DAY)], walend=i + 1)
    partition = next(iter_segments(store, "spans")).parent
    leftover = partition / ".merge-0123456789abcdef.parquet.tmp"
    pl.read_parquet(next(iter_segments(store, "spans"))).write_parquet(leftover)
    old = time.time() - 7200
    os.utime(leftover, (old, old))
    in_flight = partition / ".merge-fedcba9876543210.parquet.tmp"  # another collector writing right now
    in_flight.write_bytes(b"")
    assert _count(store) == (3, 3)
    ensure_store(store)  # what a restart runs
    assert not leftover.exists()
    assert in_flight.exists()


READER = textwrap.dedent(
    """
    import json, sys, time
    import duckdb, polars as pl
    from loratrace.store import open_store, query, scan_spans

    store, total, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    SQL = "SELECT count(*) AS n, count(DISTINCT (trace_id, span_id)) AS d FROM spans"
    report = {"query": [], "connection": [], "polars": [], "errors": [], "connection_retries": 0}
    con = open_store(store)  # one long-lived connection on catalog.duckdb, like a duckdb shell left open
    open(out + ".ready", "w").close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            report["query"].append(list(query(store, SQL).row(0)))
            row = None
            for _attempt in range(20):
                try:
                    row = con.execute(SQL).fetchone()
                    break
                except duckdb.IOException as exc:
                    # a plain DuckDB client takes no reader lock: a covered file deleted between its listing
                    # and its open fails the query, and a rerun lists afresh (docs/collector.md). This test
                    # deletes every ~40 ms, far beyond a real store's pace, so under CPU load several reruns in
                    # a row may meet a deletion: that is the documented edge, not a wrong count.
                    if "no such file" not in str(exc).lower():
                        raise
                    report["connection_retries"] += 1
            if row is not None:
                report["connection"].append(list(row))
            frame = scan_spans(store).select("trace_id", "span_id").collect()
            report["polars"].append([frame.height, frame.unique().height])
        except Exception as exc:
            report["errors"].append(repr(exc))
        if all(report[k] and report[k][-1][0] == total for k in ("query", "connection", "polars")):
            break
    with open(out, "w") as handle:
        json.dump(report, handle)
    """
)


def test_repeated_compaction_while_readers_count_never_double_counts(tmp_path: Path) -> None:
    store = ensure_store(tmp_path / "s")
    days = (DAY, DAY + timedelta(days=1))
    today = days[1]
    rounds, per_round = 120, 25
    total = rounds * per_round
    out = tmp_path / "reader.json"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(store), str(total), str(out)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    merges = 0
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{out}.ready").exists():
            assert reader.poll() is None, "the reader exited before it started"
            assert time.monotonic() < deadline, "the reader did not start within 60 s"
            time.sleep(0.05)
        for r in range(rounds):
            keys = [(r * per_round + j, days[j % 2]) for j in range(per_round)]
            _write(store, keys, walend=r + 1)
            # small tiers, short delays: merges, closes of the past day and deletions all run many times
            merges += compact_store(
                store, min_segments=3, activation_delay_s=0.05, grace_s=0.5, close_after_s=0, today=today
            )
        assert reader.wait(timeout=180) == 0
    finally:
        if reader.poll() is None:
            reader.kill()
    report = json.loads(out.read_text())
    assert report["errors"] == []
    assert merges > rounds // 3
    for kind in ("query", "connection", "polars"):
        counts = report[kind]
        assert counts, kind
        assert all(n == d for n, d in counts), f"{kind} counted a span twice"
        assert all(b[0] >= a[0] for a, b in itertools.pairwise(counts)), f"{kind} went backwards"
        assert counts[-1] == [total, total], kind
    # the reader really interleaved with the writer: it saw the store at many sizes
    assert len({n for n, _ in report["query"]}) >= 5
    # after everything settled: one deduplicated count, and covered files are gone once their grace is over
    deadline = time.monotonic() + 10
    while set(iter_segments(store, "spans")) != set(_data_files(store)) and time.monotonic() < deadline:
        compact_store(store, min_segments=3, activation_delay_s=0.05, grace_s=0.5, close_after_s=0, today=today)
        time.sleep(0.05)
    assert sorted(iter_segments(store, "spans")) == sorted(_data_files(store))
    assert _count(store) == (total, total)
    assert scan_spans(store).select(pl.len()).collect().item() == total


@pytest.mark.parametrize("name", ["_schema.parquet", "00000000000000000001-flush-" + "0" * 31 + ".parquet"])
def test_non_segment_files_are_always_counted(name: str) -> None:
    path = Path("segments/spans/date=2026-11-20") / name
    assert visibility.counted([path], at_ms=0) == [path]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    files=st.lists(
        st.tuples(
            st.sampled_from([DAY, DAY + timedelta(days=1)]),
            st.integers(min_value=0, max_value=12),  # walend
            st.sampled_from(["flush", "compact", "merged", "embedded"]),
            st.integers(min_value=1, max_value=3),  # level of a merged segment
            st.booleans(),  # merged: active (an hour ago) or not yet (in an hour)
        ),
        min_size=1,
        max_size=12,
        unique_by=lambda f: (f[0], f[1], f[2]),
    )
)
def test_the_views_and_the_python_rule_count_the_same_files(tmp_path_factory, files) -> None:
    store = ensure_store(tmp_path_factory.mktemp("rule") / "s")
    hour = 3_600_000
    paths = []
    for index, (day, walend, kind, level, active) in enumerate(files):
        folder = store / "segments" / "spans" / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        if kind == "merged":
            active_ms = visibility.now_ms() + (-hour if active else hour)
            name = visibility.merged_name(walend, level, active_ms, os.urandom(8).hex())
        else:
            name = f"{walend:020d}-{kind}-{os.urandom(16).hex()}.parquet"
        frame = pl.DataFrame(
            {"trace_id": [f"{index:032x}"], "span_id": [f"{index:016x}"], "start_time": [_micros(day)]}
        ).with_columns(pl.col("start_time").cast(pl.Datetime("us")))
        frame.write_parquet(folder / name)
        paths.append(folder / name)
    expected = sorted(
        int(pl.read_parquet(p)["trace_id"][0], 16) for p in visibility.counted(paths, at_ms=visibility.now_ms())
    )
    in_views = sorted(int(t, 16) for t in query(store, "SELECT trace_id FROM spans")["trace_id"].to_list())
    in_polars = sorted(int(t, 16) for t in scan_spans(store).collect()["trace_id"].to_list())
    assert in_views == expected
    assert in_polars == expected
