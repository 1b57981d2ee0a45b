"""Several collectors on one store: writer ids in segment names, covers per writer, one compactor at a time,
and the closing merge of a day across writers, which keeps a span re-sent to another collector once."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from loratrace.store import ensure_store, layout, query, scan_spans, visibility
from loratrace.store.compaction import compact_store, elected
from loratrace.store.segments import iter_segments, write_segments

DAY = date(2026, 11, 20)


def _write(store: Path, keys: list[int], *, walend: int, writer: str) -> None:
    start = datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=timezone.utc).replace(tzinfo=None)
    frame = pl.DataFrame(
        {
            "trace_id": [f"{k:032x}" for k in keys],
            "span_id": [f"{k:016x}" for k in keys],
            "start_time": [start] * len(keys),
            "attributes": ["{}"] * len(keys),
        }
    ).with_columns(pl.col("start_time").cast(pl.Datetime("us")))
    write_segments(store, {"spans": frame}, walend=walend, kind="flush", writer_id=writer)


def _count(store: Path) -> tuple[int, int]:
    row = query(store, "SELECT count(*) AS n, count(DISTINCT (trace_id, span_id)) AS d FROM spans").row(0)
    return int(row[0]), int(row[1])


def _scan_count(store: Path) -> int:
    return scan_spans(store).select(pl.len()).collect().item()


def test_segment_names_carry_the_writer_and_writer_zero_keeps_the_old_names(tmp_path: Path) -> None:
    store = ensure_store(tmp_path / "s")
    _write(store, [1], walend=5, writer="0")
    _write(store, [2], walend=5, writer="b2")
    names = sorted(p.name for p in iter_segments(store, "spans"))
    assert [layout.segment_writer(n) for n in names] == ["0", "b2"]
    assert names[0].startswith("00000000000000000005-flush-")
    assert names[1].startswith("wb2-00000000000000000005-flush-")
    assert layout.wal_dir(store, "b2").name == "wal-b2"
    assert layout.checkpoint_path(store, "b2").name == "checkpoint-b2.json"


@pytest.mark.parametrize("bad", ["", "A", "all", "x" * 17, "a-b", "../x"])
def test_writer_ids_are_checked(bad: str) -> None:
    with pytest.raises(ValueError, match="writer id"):
        layout.check_writer_id(bad)


def test_a_merge_covers_only_its_own_writers_segments(tmp_path: Path) -> None:
    store = ensure_store(tmp_path / "s")
    for i in range(8):
        _write(store, [i], walend=100 + i, writer="a")
    _write(store, [50], walend=3, writer="b")  # a lower walend in another writer's log: not covered
    assert compact_store(store, min_segments=8, activation_delay_s=0, today=DAY) == 1
    merged = [p for p in iter_segments(store, "spans") if visibility.parse(p.name).kind == "merged"]
    assert [layout.segment_writer(p.name) for p in merged] == ["a"]
    assert _count(store) == (9, 9)  # the views (DuckDB SQL rule)
    assert _scan_count(store) == 9  # the Polars scan (Python rule)


def test_closing_a_day_across_writers_keeps_each_span_once(tmp_path: Path) -> None:
    store = ensure_store(tmp_path / "s")
    _write(store, [1, 2, 3], walend=10, writer="a")
    _write(store, [3, 4], walend=20, writer="a")  # a retry within one writer
    _write(store, [2, 3, 5], walend=7, writer="b")  # re-sent to another collector after a failover
    _write(store, [6], walend=9, writer="c")
    assert _count(store) == (9, 6)
    merges = compact_store(store, min_segments=8, activation_delay_s=0, close_after_s=0, today=DAY + timedelta(1))
    assert merges == 1
    assert _count(store) == (6, 6)
    assert _scan_count(store) == 6
    kept = scan_spans(store).select("span_id").collect()["span_id"].sort().to_list()
    assert kept == [f"{k:016x}" for k in range(1, 7)]
    # spans arriving after the close (late, into the closed day) count, and a second close merges them too
    _write(store, [7, 1], walend=30, writer="b")
    assert _count(store) == (8, 7)
    assert compact_store(store, activation_delay_s=0, close_after_s=0, today=DAY + timedelta(1)) == 1
    assert _count(store) == (7, 7)
    assert _scan_count(store) == 7


def test_one_compactor_at_a_time(tmp_path: Path) -> None:
    store = ensure_store(tmp_path / "s")
    for i in range(8):
        _write(store, [i], walend=i + 1, writer="a")
    with elected(store) as chosen:
        assert chosen
        assert compact_store(store, min_segments=8, today=DAY) == 0  # another holder: this pass is skipped
    assert compact_store(store, min_segments=8, today=DAY) == 1


def test_collect_refuses_a_bad_writer_id_with_exit_2(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from loratrace.cli import cli

    result = CliRunner().invoke(cli, ["collect", "--store", str(tmp_path / "s"), "--writer-id", "all"])
    assert result.exit_code == 2
    assert "--writer-id" in result.output
    assert not (tmp_path / "s").exists()  # refused before anything was created
