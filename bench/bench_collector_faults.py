"""The collector under faults and hostile input, under load: is anything acknowledged lost or stored twice?

    .venv/bin/python bench/bench_collector_faults.py              # every scenario, ~3 minutes
    .venv/bin/python bench/bench_collector_faults.py --only corpus --disk-full-s 20

A real collector subprocess (its own process group) fed by raw OTLP/HTTP exporters in threads (64 spans per
request, unique ids); a span counts as acknowledged when its request got a 200. Scenarios:

* ``kill-group``: kill -9 of the collector and its store writer together, then a restart on the same ports;
* ``kill-receiver``: kill -9 of the receiving process only (its store writer must notice and exit), restart;
* ``kill-writer``: kill -9 of the store writer only (the collector restarts it, no restart from outside);
* ``disk-full``: the store on a 64 MiB tmpfs, filled for ``--disk-full-s`` seconds under load, then freed;
* ``corpus``: the bad-input cases (hostile framing, sizes, JSON, poison spans), each followed by a valid
  request; a case counts as answered correctly when its status (and partial success) is the documented one.

Each scenario ends with SIGTERM (exit code 0 expected) and one more restart that replays the log, then counts:
acknowledged spans, stored rows, lost (acknowledged but not stored), duplicated (rows minus distinct ids).
Needs root for the tmpfs mount (the disk-full scenario is skipped otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gzip
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from _common import RequestFactory, free_port


class Collector:
    """``loratrace collect`` in its own process group, restartable on the same ports."""

    def __init__(self, store: Path, log: Path) -> None:
        self.store = store
        self.log = log
        self.http_port, self.grpc_port = free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [str(Path(sys.executable).with_name("loratrace")), "collect", "--store", str(self.store)]
        args += ["--http", f"127.0.0.1:{self.http_port}", "--grpc", f"127.0.0.1:{self.grpc_port}"]
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"collector exited with {self.process.returncode}: see {self.log}")
            with contextlib.suppress(OSError, ValueError):
                if self.health()["status"] == "ok":
                    return
            time.sleep(0.1)
        raise SystemExit("collector did not become healthy in 90 s")

    def health(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/health", timeout=5) as response:
            return json.loads(response.read())

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)

    def kill_group(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._wait_writer_gone()

    def kill_receiver(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._wait_writer_gone()

    def _wait_writer_gone(self) -> None:
        # the store writer of a killed collector exits by itself; a restart must not race it
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            alive = subprocess.run(["pgrep", "-s", str(self.process.pid)], capture_output=True).stdout.strip()  # type: ignore[union-attr]
            if not alive:
                return
            time.sleep(0.05)
        os.killpg(self.process.pid, signal.SIGKILL)  # type: ignore[union-attr]


@dataclass
class Load:
    """Exporter threads posting unique spans; ``acked`` holds the ids of every 200."""

    port: int
    threads: int = 2
    spans: int = 64
    acked: set[tuple[bytes, bytes]] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        for i in range(self.threads):
            factory = RequestFactory(self.spans, seed=100 + i)
            worker = threading.Thread(target=self._run, args=(factory,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def _run(self, factory: RequestFactory) -> None:
        connection: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            body, ids = factory.next()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                connection.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
                response = connection.getresponse()
                response.read()
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException):
                with self._lock:
                    self.errors += 1
                if connection is not None:
                    connection.close()
                connection = None
                self._stop.wait(0.05)
                continue
            with self._lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status == 200:
                    self.acked.update(ids)
            if status != 200:
                self._stop.wait(0.05)

    def wait_for(self, more: int, *, timeout: float = 120) -> None:
        target = len(self.acked) + more
        deadline = time.monotonic() + timeout
        while len(self.acked) < target:
            if time.monotonic() > deadline:
                raise SystemExit(f"load stalled at {len(self.acked)} acknowledged spans")
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)


def _stored(store: Path) -> tuple[int, set[tuple[bytes, bytes]]]:
    from loratrace.store import query

    frame = query(store, "SELECT trace_id, span_id FROM spans")
    ids = {
        (bytes.fromhex(t), bytes.fromhex(s))
        for t, s in zip(frame["trace_id"].to_list(), frame["span_id"].to_list(), strict=True)
    }
    return frame.height, ids


def _settle(collector: Collector, acked: set[tuple[bytes, bytes]]) -> dict:
    """SIGTERM, a replaying restart, and the count once the store holds every acknowledged span (or 60 s)."""
    code = collector.terminate()
    collector.start()
    deadline = time.monotonic() + 60
    while True:
        rows, ids = _stored(collector.store)
        if acked <= ids or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    final = collector.terminate()
    return {
        "acknowledged": len(acked),
        "stored_rows": rows,
        "lost": len(acked - ids),
        "duplicated": rows - len(ids),
        "exit_codes": f"{code}/{final}",
    }


def kill_scenario(tmp: Path, kind: str, rounds: int) -> dict:
    collector = Collector(tmp / kind / "store", tmp / f"{kind}.log")
    collector.store.parent.mkdir(parents=True)
    collector.start()
    load = Load(collector.http_port).start()
    restarts_seen = 0
    try:
        for _ in range(rounds):
            load.wait_for(3_000)
            if kind == "kill-group":
                collector.kill_group()
                collector.start()
            elif kind == "kill-receiver":
                collector.kill_receiver()
                collector.start()
            else:
                before = collector.health()
                os.kill(before["store_writer_pid"], signal.SIGKILL)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    with contextlib.suppress(OSError):
                        health = collector.health()
                        if health["store_writer_restarts"] > before["store_writer_restarts"] and (
                            health["status"] == "ok"
                        ):
                            restarts_seen += 1
                            break
                    time.sleep(0.05)
        load.wait_for(3_000)
    finally:
        load.stop()
    result = _settle(collector, load.acked)
    result.update(scenario=f"{kind} x{rounds}", statuses=load.statuses)
    if kind == "kill-writer":
        result["writer_restarts"] = restarts_seen
    return result


def _fill(path: Path) -> Path:
    filler = path / "filler.bin"
    chunk = b"\0" * (1 << 20)
    with open(filler, "ab") as handle:
        while True:
            try:
                handle.write(chunk)
                handle.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return filler


def disk_full_scenario(tmp: Path, seconds: float) -> dict | None:
    mount = tmp / "fs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)]).returncode != 0:
        print("disk-full: cannot mount a tmpfs (needs root); skipped", file=sys.stderr)
        return None
    try:
        collector = Collector(mount / "store", tmp / "disk-full.log")
        collector.start()
        load = Load(collector.http_port).start()
        health_failures = health_checks = 0
        try:
            load.wait_for(5_000)
            filler = _fill(mount)
            ended = time.monotonic() + seconds
            while time.monotonic() < ended:
                health_checks += 1
                try:
                    collector.health()
                except OSError:
                    health_failures += 1
                time.sleep(0.5)
            alive = collector.process.poll() is None  # type: ignore[union-attr]
            refused = dict(load.statuses)
            filler.unlink()
            load.wait_for(5_000)
        finally:
            load.stop()
        result = _settle(collector, load.acked)
        result.update(
            scenario=f"disk-full {seconds:.0f} s",
            statuses=load.statuses,
            alive_while_full=alive,
            health_answered=f"{health_checks - health_failures}/{health_checks}",
            refused_while_full=refused.get(503, 0),
        )
        return result
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _post(port: int, body: bytes, headers: dict[str, str] | None = None, *, timeout: float = 120) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            "POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf", **(headers or {})}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _raw(port: int, data: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                return 0
            answer += chunk
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0


def _urllib(port: int, body: bytes) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/traces",
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-protobuf"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _corpus() -> list[tuple[str, int, Callable[[int], int]]]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    def span_request(span_id: bytes, *, trace_id: bytes = b"\x09" * 16, attributes: int = 0) -> bytes:
        kvs = [KeyValue(key=f"k{i}", value=AnyValue(int_value=i)) for i in range(attributes)]
        span = Span(
            trace_id=trace_id,
            span_id=span_id,
            name="corpus",
            start_time_unix_nano=1,
            end_time_unix_nano=2,
            attributes=kvs,
        )
        return ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]
        ).SerializeToString()

    head = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
    good = span_request(b"\x01" * 8)
    gzip_bomb = gzip.compress(b"\x00" * (40 << 20))
    json_headers = {"Content-Type": "application/json"}

    def status(body: bytes, headers: dict[str, str] | None = None) -> Callable[[int], int]:
        return lambda port: _post(port, body, headers)[0]

    def chunked(body: bytes) -> bytes:
        return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)

    return [
        ("garbage protobuf", 400, status(b"\xff\xff\xff\xff garbage")),
        ("truncated protobuf", 400, status(good[:-3])),
        ("text/plain", 415, status(good, {"Content-Type": "text/plain"})),
        ("unknown Content-Encoding", 415, status(good, {"Content-Encoding": "br"})),
        ("not gzip", 400, status(b"not gzip", {"Content-Encoding": "gzip"})),
        ("gzip bomb (40 MiB inflated)", 413, status(gzip_bomb, {"Content-Encoding": "gzip"})),
        ("33 MiB body", 413, status(b"\x00" * (33 << 20))),
        ("64 MiB body, urllib", 413, lambda port: _urllib(port, b"\x00" * (64 << 20))),
        (
            "Content-Length: -1 then a stream",
            400,
            lambda port: _raw(port, head + b"Content-Length: -1\r\n\r\n" + b"\0" * 65536),
        ),
        ("no Content-Length", 411, lambda port: _raw(port, head + b"\r\n")),
        ("two Content-Lengths", 400, lambda port: _raw(port, head + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n")),
        (
            "chunked, valid",
            200,
            lambda port: _raw(port, head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(span_request(b"\x02" * 8))),
        ),
        (
            "chunked, 33 MiB",
            413,
            lambda port: _raw(port, head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"\0" * (33 << 20))),
        ),
        (
            "Expect: 100-continue, 40 MiB",
            413,
            lambda port: _raw(port, head + b"Expect: 100-continue\r\nContent-Length: 41943040\r\n\r\n"),
        ),
        ("wrong path", 404, lambda port: _raw(port, b"POST /v1/nope HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")),
        ("JSON: not JSON", 400, status(b"{not json", json_headers)),
        ("JSON: null", 400, status(b"null", json_headers)),
        ("JSON: 5", 400, status(b"5", json_headers)),
        ('JSON: "resourceSpans"', 400, status(b'"resourceSpans"', json_headers)),
        ("JSON: 10,000 deep", 400, status(b"[" * 10_000 + b"]" * 10_000, json_headers)),
        ("32 MiB of empty ResourceSpans", 413, status(b"\x0a\x00" * (16 << 20))),
        ("a 3-byte trace id (partial success)", 200, status(span_request(b"\x03" * 8, trace_id=b"abc"))),
        ("1M attributes, 16 MiB (cut to 1,024)", 200, status(span_request(b"\x04" * 8, attributes=1_000_000))),
    ]


def corpus_scenario(tmp: Path) -> dict:
    collector = Collector(tmp / "corpus" / "store", tmp / "corpus.log")
    collector.store.parent.mkdir(parents=True)
    collector.start()
    factory = RequestFactory(64, seed=300)
    acked: set[tuple[bytes, bytes]] = set()
    rows = []
    correct = valid_ok = 0
    cases = _corpus()
    for name, expected, send in cases:
        started = time.monotonic()
        got = send(collector.http_port)
        elapsed = time.monotonic() - started
        body, ids = factory.next()
        around = _post(collector.http_port, body)[0]
        if around == 200:
            acked.update(ids)
            valid_ok += 1
        correct += got == expected
        rows.append((name, expected, got, round(elapsed, 2)))
    # the 1M-attribute span and the chunked one were acknowledged too; the store must hold them
    result = _settle(collector, acked)
    result.update(
        scenario="bad-input corpus",
        cases=f"{correct}/{len(cases)} answered as documented",
        valid_requests_around=f"{valid_ok}/{len(cases)} acknowledged",
        case_rows=rows,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["kill-group", "kill-receiver", "kill-writer", "disk-full", "corpus"])
    parser.add_argument("--rounds", type=int, default=3, help="kills per kill scenario")
    parser.add_argument("--disk-full-s", type=float, default=20.0)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for kind in ("kill-group", "kill-receiver", "kill-writer"):
            if args.only in (None, kind):
                results.append(kill_scenario(tmp, kind, args.rounds))
                print(json.dumps(results[-1], default=str), flush=True)
        if args.only in (None, "disk-full"):
            disk = disk_full_scenario(tmp, args.disk_full_s)
            if disk is not None:
                results.append(disk)
                print(json.dumps(disk, default=str), flush=True)
        if args.only in (None, "corpus"):
            results.append(corpus_scenario(tmp))
            print(json.dumps({k: v for k, v in results[-1].items() if k != "case_rows"}, default=str), flush=True)
    print(
        "\n| scenario | acknowledged | stored rows | lost | duplicated | exit codes (SIGTERM / after replay) | notes |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        notes = {
            k: v
            for k, v in r.items()
            if k not in ("scenario", "acknowledged", "stored_rows", "lost", "duplicated", "exit_codes", "case_rows")
        }
        print(
            f"| {r['scenario']} | {r['acknowledged']:,} | {r['stored_rows']:,} | {r['lost']} | {r['duplicated']} | "
            f"{r['exit_codes']} | {json.dumps(notes, default=str)} |"
        )
    for r in results:
        if "case_rows" in r:
            print("\n| case | documented | answered | seconds |\n|---|---|---|---|")
            for name, expected, got, elapsed in r["case_rows"]:
                print(f"| {name} | {expected} | {got}{'' if got == expected else ' ✗'} | {elapsed} |")


if __name__ == "__main__":
    main()
