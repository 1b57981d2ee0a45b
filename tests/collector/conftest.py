"""A real collector subprocess on free loopback ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class RunningCollector:
    store: Path
    http_port: int
    grpc_port: int
    process: subprocess.Popen[bytes]
    log: Path
    token: str | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def health(self) -> dict:
        with urllib.request.urlopen(f"{self.http}/health", timeout=5) as response:
            return json.loads(response.read())

    def wait_until(self, predicate, *, timeout: float = 30.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        pytest.fail(f"timed out after {timeout}s waiting for {what}")

    def wait_until_stored(self, *, timeout: float = 60.0) -> dict:
        """Wait until the store writer has processed everything in the log so far (every copy of every
        acknowledged span, duplicates included), and return the health then: counters the writer keeps
        (``spans_written``, ``duplicate_spans_dropped``) are final only from that point on."""
        end = self.health()["wal_end_offset"]
        return self.wait_until(
            lambda: (health := self.health())["store_checkpoint_offset"] >= end and health,
            timeout=timeout,
            what=f"the store writer to reach log offset {end}",
        )

    def terminate(self, *, timeout: float = 60.0) -> int:
        """SIGTERM, then the exit code; a collector still running after ``timeout`` fails the test with the
        stack of every one of its threads (its SIGUSR1 dump), and is killed."""
        self.process.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout=timeout, after="SIGTERM")

    def wait_exit(self, *, timeout: float = 60.0, after: str = "it was told to stop") -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the collector did not exit within {timeout} s of {after}; its threads:\n{self.stacks()}")

    def stacks(self) -> str:
        """The stack of every thread of a stuck collector (its SIGUSR1 dump, from its log); then kills it."""
        before = self.log.stat().st_size
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        dump = ""
        # the main thread is dumped last, its stack ending at the entry script
        while "Current thread" not in dump or not dump.rstrip().endswith("in <module>"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
            dump = self.log.read_bytes()[before:].decode(errors="replace")
        self.kill()
        return dump[-20_000:]

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)


def launch_collector(
    store: Path, *extra: str, token: str | None = None, env: dict[str, str] | None = None
) -> RunningCollector:
    """``loratrace collect`` on free loopback ports, its output in ``collector-<http port>.log`` beside the store."""
    http_port, grpc_port = free_port(), free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    env.pop("LORATRACE_AUTH_TOKEN", None)
    args = [str(Path(sys.executable).with_name("loratrace")), "collect", "--store", str(store)]
    args += ["--http", f"127.0.0.1:{http_port}", "--grpc", f"127.0.0.1:{grpc_port}", *extra]
    if token:
        args += ["--auth-token", token]
    log = store.parent / f"collector-{http_port}.log"
    with open(log, "wb") as output:  # a file, not a pipe: a chatty collector must never block on a full pipe
        process = subprocess.Popen(args, env=env, stdout=output, stderr=subprocess.STDOUT)
    return RunningCollector(store, http_port, grpc_port, process, log, token)


def start_collector(
    store: Path, *extra: str, token: str | None = None, env: dict[str, str] | None = None
) -> RunningCollector:
    """A collector that answers ``/health`` with status ok."""
    running = launch_collector(store, *extra, token=token, env=env)
    process, log = running.process, running.log
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = log.read_text()
            pytest.fail(f"collector exited with {process.returncode}: {out}")
        try:
            if running.health()["status"] == "ok":
                return running
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    pytest.fail("collector did not become healthy within 60 s")


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[RunningCollector]:
    running = start_collector(tmp_path / "store")
    yield running
    if running.process.poll() is None:
        assert running.terminate() == 0, running.log.read_text()[-4000:]
