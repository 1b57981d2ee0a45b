"""The store-writer process does not outlive its collector.

After ``kill -9`` of the collector, a store writer left running would keep writing segments and checkpoints
beside the store writer of a restarted collector. It notices that its parent is gone and exits.
"""

from __future__ import annotations

import time
from pathlib import Path

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
