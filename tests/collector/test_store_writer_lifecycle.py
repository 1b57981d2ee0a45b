"""The store writer's life: batches written on its writer thread, failures, and the death of its collector.

After ``kill -9`` of the collector, a store writer left running would keep writing segments and checkpoints
beside the store writer of a restarted collector. It notices that its parent is gone and exits.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from loratrace.collector.store_writer import segment_writing, settings
from loratrace.collector.store_writer.checkpoint import read_checkpoint
from loratrace.collector.store_writer.read_loop import StoreWriter
from loratrace.store import query
from loratrace.store.catalog import ensure_store

from .conftest import start_collector


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing parenthesis
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_the_store_writer_exits_when_its_collector_is_killed(tmp_path: Path) -> None:
    collector = start_collector(tmp_path / "store")
    writers = [p for p in _children(collector.process.pid) if "spawn_main" in _cmdline(p)]
    assert len(writers) == 1, "the collector runs one store-writer process"
    writer = writers[0]
    collector.kill()
    deadline = time.monotonic() + 30
    while "spawn_main" in _cmdline(writer):  # gone (or its pid reused by something else)
        assert time.monotonic() < deadline, f"store writer {writer} still running 30 s after kill -9 of its collector"
        time.sleep(0.05)


def _log_of(store: Path, requests: int, spans: int) -> int:
    """A write-ahead log holding ``requests`` trace requests; returns its end offset."""
    from loratrace.collector.wal import KIND_TRACES, WalWriter
    from loratrace.store import layout
    from tests.support.otlp_requests import RequestFactory

    factory = RequestFactory(spans)
    wal = WalWriter(store / layout.WAL, fsync=False)
    for _ in range(requests):
        end = wal.append(KIND_TRACES, factory.next()[0])
    wal.close()
    return end


def _drain(store: Path, **options: object) -> tuple[list[float], threading.Event]:
    stats = [0.0] * settings.N_STATS
    stop = threading.Event()
    stop.set()  # drain what is in the log, then return
    StoreWriter(settings.StoreWriterSettings(store=str(store), **options), stats, stop).run()
    return stats, stop


def test_batches_written_on_the_writer_thread_land_in_order_with_their_checkpoint(tmp_path: Path) -> None:
    store = ensure_store(tmp_path / "s")
    end = _log_of(store, requests=12, spans=50)
    stats, _ = _drain(store, flush_rows=120)  # several batches in flight through the writer thread
    assert read_checkpoint(store) == end
    assert stats[settings.STAT_SPANS_WRITTEN] == 600
    # a batch closes at the first request that brings it to >= 120 rows: 3 requests of 50, so 600 / 150 flushes
    assert stats[settings.STAT_FLUSHES] == 4
    counted = query(store, "SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans").row(0)
    assert counted == (600, 600)


def test_a_failed_flush_stops_the_store_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk cannot be caused for real here: a fake ``write_segments`` raises as one would."""
    store = ensure_store(tmp_path / "s")
    _log_of(store, requests=2, spans=10)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device (fake)")

    monkeypatch.setattr(segment_writing, "write_segments", disk_full)
    with pytest.raises(RuntimeError, match="writing segments failed") as failure:
        _drain(store)
    assert isinstance(failure.value.__cause__, OSError)
    assert read_checkpoint(store) == 0  # nothing checkpointed: a restart replays the whole log
