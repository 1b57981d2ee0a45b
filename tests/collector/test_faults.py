"""The collector under real faults: a full disk, a killed store writer, a second collector on the store."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from loratrace.collector.wal import KIND_TRACES, WalReader, WalWriter
from loratrace.store import query
from tests.support.otlp_requests import RequestFactory

from .conftest import free_port, start_collector
from .faults_support import fill, post, tmpfs


def test_a_wal_append_on_a_full_disk_is_never_half_acknowledged(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", size="1m") as fs:
        wal = WalWriter(fs / "wal", fsync=True)
        filler = fill(fs, leave=20_000)  # room for a few records; one of them only partly
        acknowledged, refused = [], 0
        for i in range(40):
            payload = bytes([i]) * 3_000
            try:
                end = wal.append(KIND_TRACES, payload)
            except OSError:
                refused += 1
                continue
            assert wal.wait_durable(end)
            acknowledged.append(payload)
        assert refused > 0, "the disk never filled: the test proves nothing"
        filler.unlink()  # space comes back: appends go on by themselves
        for i in range(40, 45):
            payload = bytes([i]) * 3_000
            assert wal.wait_durable(wal.append(KIND_TRACES, payload))
            acknowledged.append(payload)
        wal.close()
        restarted = WalWriter(fs / "wal", fsync=True)  # a restart cuts any torn tail, and nothing else
        restarted.close()
        stored = [record.payload for record in WalReader(fs / "wal").read(0, max_bytes=1 << 30)]
        assert stored == acknowledged


def _load(port: int, factory: RequestFactory, acked: set, statuses: list, stop: threading.Event) -> None:
    while not stop.is_set():
        body, ids = factory.next()
        try:
            status, headers, _ = post(port, body)
        except OSError:
            continue
        statuses.append((status, headers.get("Retry-After")))
        if status == 200:
            acked.update((t.hex(), s.hex()) for t, s in ids)


def _stored(store: Path) -> list[tuple[str, str]]:
    frame = query(store, "SELECT trace_id, span_id FROM spans")
    return list(zip(frame["trace_id"].to_list(), frame["span_id"].to_list(), strict=True))


def test_a_full_disk_under_load_loses_nothing_and_the_collector_resumes(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", size="64m") as fs:
        store = fs / "store"
        running = start_collector(store)
        factory = RequestFactory(64)
        acked: set[tuple[str, str]] = set()
        statuses: list[tuple[int, str | None]] = []
        stop = threading.Event()
        thread = threading.Thread(target=_load, args=(running.http_port, factory, acked, statuses, stop))
        thread.start()
        try:
            running.wait_until(lambda: len(acked) >= 2_000, timeout=60, what="spans before the disk fills")
            filler = fill(fs)
            running.wait_until(
                lambda: sum(1 for s, _ in statuses if s == 503) >= 20, timeout=60, what="503s on the full disk"
            )
            time.sleep(1.0)  # keep the disk full a while under load (the condition was met; this is the fault)
            assert running.process.poll() is None
            filler.unlink()
            resumed_from = len(acked)
            # more than the whole disk holds (~1.1 KB a span): the log's space must come back as it is flushed
            running.wait_until(
                lambda: len(acked) >= resumed_from + 80_000, timeout=180, what="90 MB of spans after space returned"
            )
        except BaseException:
            running.kill()  # a failed wait must not leave the collector holding the tmpfs
            raise
        finally:
            stop.set()
            thread.join(timeout=60)
        refused = [(s, r) for s, r in statuses if s != 200]
        assert refused, "no export was refused while the disk was full"
        assert all(s == 503 and r for s, r in refused), set(refused)
        acknowledged = set(acked)
        running.wait_until(lambda: running.health()["store_disk_full"] is False, timeout=60, what="flushes again")
        assert running.terminate() == 0
        restarted = start_collector(store)  # what a restart replays must not change the answer either
        try:
            restarted.wait_until(lambda: len(_stored(store)) >= len(acknowledged), timeout=60, what="every span")
            stored = _stored(store)
            assert len(stored) == len(set(stored)), "a span is stored twice"
            assert acknowledged <= set(stored)
        finally:
            assert restarted.terminate() == 0


def test_a_killed_store_writer_is_restarted_and_loses_nothing(tmp_path: Path) -> None:
    running = start_collector(tmp_path / "store")
    factory = RequestFactory(32)
    try:
        first_pid = running.health()["store_writer_pid"]
        body, ids = factory.next()
        assert post(running.http_port, body)[0] == 200
        os.kill(first_pid, signal.SIGKILL)
        health = running.wait_until(
            lambda: (h := running.health())["store_writer_restarts"] == 1 and h["status"] == "ok" and h,
            timeout=60,
            what="the restarted store writer",
        )
        assert health["store_writer_pid"] != first_pid
        body2, ids2 = factory.next()
        assert post(running.http_port, body2)[0] == 200
        wanted = {(t.hex(), s.hex()) for t, s in ids + ids2}
        running.wait_until(lambda: wanted <= set(_stored(running.store)), timeout=60, what="spans of both writers")
    finally:
        started = time.monotonic()
        assert running.terminate() == 0
        assert time.monotonic() - started < 30


def test_a_store_writer_that_keeps_dying_makes_the_collector_exit_non_zero(tmp_path: Path) -> None:
    running = start_collector(tmp_path / "store")
    killed: set[int] = set()
    deadline = time.monotonic() + 120
    try:
        while running.process.poll() is None and time.monotonic() < deadline:
            try:
                pid = running.health()["store_writer_pid"]
            except OSError:
                time.sleep(0.05)
                continue
            if pid not in killed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            time.sleep(0.05)
        code = running.process.wait(timeout=60)
    finally:
        if running.process.poll() is None:
            running.kill()
    assert code == 1, (code, len(killed))
    assert "the store writer failed" in (tmp_path / f"collector-{running.http_port}.log").read_text()


def test_a_second_collector_on_the_same_store_is_refused(tmp_path: Path) -> None:
    running = start_collector(tmp_path / "store")
    try:
        second = subprocess.run(
            [
                str(Path(sys.executable).with_name("loratrace")),
                "collect",
                "--store",
                str(running.store),
                "--http",
                f"127.0.0.1:{free_port()}",
                "--grpc",
                f"127.0.0.1:{free_port()}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert f"another collector (pid {running.process.pid}) is already writing the store" in second.stderr
        assert str(running.store.resolve()) in second.stderr
        body, _ = RequestFactory(8).next()
        assert post(running.http_port, body)[0] == 200  # the first one is untouched
    finally:
        assert running.terminate() == 0
