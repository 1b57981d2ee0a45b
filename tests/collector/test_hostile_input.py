"""Hostile and malformed HTTP input to a real collector: each gets its documented answer, none costs memory or
threads without bound, and valid spans sent around them are stored."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from loratrace.store import query, scan_spans
from tests.support.otlp_requests import RequestFactory

from .conftest import RunningCollector, start_collector
from .faults_support import post


def _span_request(span_id: bytes, attributes: list[KeyValue] | None = None) -> bytes:
    span = Span(
        trace_id=b"\x07" * 16,
        span_id=span_id,
        name="hostile",
        start_time_unix_nano=1_796_000_000_000_000_000,
        end_time_unix_nano=1_796_000_000_001_000_000,
        attributes=attributes or [],
    )
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
    return request.SerializeToString()


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads")


def _raw(port: int, head: bytes, *, timeout: float = 30.0) -> bytes:
    """Send ``head`` (request line, headers, maybe some body) and return what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        return _read_answer(sock)


def _read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0


@pytest.fixture
def token_collector(tmp_path: Path):
    running = start_collector(tmp_path / "store", "--max-span-attributes", "100", "--max-attribute-length", "1000")
    yield running
    assert running.terminate() == 0


def _stored_spans(store: Path) -> int:
    return int(query(store, "SELECT count(*) AS n FROM spans")["n"][0])


def test_attribute_limits_cut_spans_like_the_sdk_and_say_so(token_collector: RunningCollector) -> None:
    attributes = [KeyValue(key=f"k{i:04d}", value=AnyValue(int_value=i)) for i in range(250)]
    attributes[3] = KeyValue(key="k0003", value=AnyValue(string_value="é" * 5_000))
    status, _, body = post(token_collector.http_port, _span_request(b"\x01" * 8, attributes))
    response = ExportTraceServiceResponse.FromString(body)
    assert status == 200
    assert response.partial_success.rejected_spans == 0
    assert "1 spans over the attribute limits were stored cut: 150 attributes dropped, 1 values truncated" in (
        response.partial_success.error_message
    )
    token_collector.wait_until(lambda: _stored_spans(token_collector.store) == 1, what="the cut span")
    stored = json.loads(scan_spans(token_collector.store).select("attributes").collect().item())
    assert sorted(stored) == [f"k{i:04d}" for i in range(100)]  # the first 100, as sent
    assert stored["k0003"] == "é" * 1_000  # characters, not bytes
    assert token_collector.health()["spans_cut_to_limits"] == 1


def test_a_span_with_a_million_attributes_does_not_stall_the_store(tmp_path: Path) -> None:
    running = start_collector(tmp_path / "store")  # default limits: 1,024 attributes
    try:
        attributes = [KeyValue(key=f"k{i}", value=AnyValue(int_value=i)) for i in range(1_000_000)]
        poison = _span_request(b"\x02" * 8, attributes)
        assert len(poison) > 16_000_000
        status, _, body = post(running.http_port, poison, timeout=120)
        assert status == 200
        assert "998976 attributes dropped" in ExportTraceServiceResponse.FromString(body).partial_success.error_message
        assert post(running.http_port, _span_request(b"\x03" * 8))[0] == 200
        running.wait_until(lambda: _stored_spans(running.store) == 2, timeout=60, what="the span after the poison")
    finally:
        assert running.terminate() == 0


def test_the_token_is_checked_before_the_body_is_read(tmp_path: Path) -> None:
    running = start_collector(tmp_path / "store", token="s3cret")
    try:
        head = (
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Authorization: Bearer wrong\r\nContent-Length: 31457280\r\n\r\n"
        )
        before = _rss_bytes(running.process.pid)
        sockets = []
        for _ in range(40):  # 40 clients announcing 30 MiB each: answered from their headers alone
            sock = socket.create_connection(("127.0.0.1", running.http_port), timeout=30)
            sock.sendall(head)
            sockets.append(sock)
        answers = [_read_answer(sock) for sock in sockets]
        for sock in sockets:
            sock.close()
        assert {_status(a) for a in answers} == {401}
        assert _rss_bytes(running.process.pid) - before < 100 << 20
    finally:
        assert running.terminate() == 0


@pytest.mark.parametrize(
    ("framing", "expected"),
    [
        pytest.param(b"Content-Length: -1\r\n", 400, id="negative"),
        pytest.param(b"Content-Length: +5\r\n", 400, id="signed"),
        pytest.param(b"Content-Length: 5\r\nContent-Length: 6\r\n", 400, id="two-lengths"),
        pytest.param(b"", 411, id="missing"),
        pytest.param(b"Transfer-Encoding: gzip\r\n", 400, id="not-chunked"),
    ],
)
def test_bad_framing_is_answered_at_once(collector: RunningCollector, framing: bytes, expected: int) -> None:
    head = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n" + framing + b"\r\n"
    # the body keeps coming (a 200 MiB stream grew the receiver to 7 GiB): the answer must not wait for it
    answer = _raw(collector.http_port, head + b"\x00" * 65536)
    assert _status(answer) == expected
    assert post(collector.http_port, _span_request(b"\x04" * 8))[0] == 200


def _chunked(body: bytes, size: int = 4096) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def test_chunked_bodies_are_read_and_bounded(tmp_path: Path) -> None:
    running = start_collector(tmp_path / "store", "--max-request-bytes", "65536")
    try:
        head = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        assert _status(_raw(running.http_port, head + _chunked(_span_request(b"\x05" * 8)))) == 200
        assert _status(_raw(running.http_port, head + _chunked(b"\x00" * 70_000))) == 413
        running.wait_until(lambda: _stored_spans(running.store) == 1, what="the chunked span")
    finally:
        assert running.terminate() == 0


def test_a_request_that_would_expand_past_the_memory_bound_is_refused(collector: RunningCollector) -> None:
    empties = b"\x0a\x00" * (16 << 20)  # 32 MiB of empty ResourceSpans: ~1 GiB once parsed
    before = _rss_bytes(collector.process.pid)
    status, _, body = post(collector.http_port, empties, timeout=120)
    assert status == 413
    assert "would take about" in status_pb2.Status.FromString(body).message
    assert _rss_bytes(collector.process.pid) - before < 400 << 20
    # the reservation is released just after the answer is written: wait for it, it must come back to 0
    collector.wait_until(lambda: collector.health()["in_flight_bytes"] == 0, what="the budget released")
    assert post(collector.http_port, _span_request(b"\x06" * 8))[0] == 200


def test_urllib_receives_the_413_for_a_64_mib_body(collector: RunningCollector) -> None:
    request = urllib.request.Request(
        f"{collector.http}/v1/traces",
        data=b"\x00" * (64 << 20),
        method="POST",
        headers={"Content-Type": "application/x-protobuf"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 413
    assert b"over the 33554432-byte limit" in refused.value.read()


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(b"null", id="null"),
        pytest.param(b"5", id="number"),
        pytest.param(b'"resourceSpans"', id="string"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'{"resourceSpans": 5}', id="wrong-type"),
        pytest.param(b"[" * 10_000 + b"]" * 10_000, id="deep-array"),
        pytest.param(b'{"a":' * 10_000 + b"1" + b"}" * 10_000, id="deep-object"),
    ],
)
def test_malformed_json_gets_a_400_with_a_message(collector: RunningCollector, document: bytes) -> None:
    status, headers, body = post(collector.http_port, document, headers={"Content-Type": "application/json"})
    assert (status, headers["Content-Type"]) == (400, "application/json")
    assert "not an OTLP/JSON traces export request" in json.loads(body)["message"]


def test_slow_clients_are_bounded_in_connections_and_timed_out(collector: RunningCollector) -> None:
    pid = collector.process.pid
    idle = []
    for _ in range(400):
        idle.append(socket.create_connection(("127.0.0.1", collector.http_port), timeout=30))
    try:
        # the connections past the bound are answered 503 and closed at once (a slot that an earlier /health
        # request's handler freed only while these arrived lets one more in, which then has nothing to read)
        refused = 0
        for sock in idle[256:]:
            sock.settimeout(5.0)
            with contextlib.suppress(TimeoutError):
                refused += _status(_read_answer(sock)) == 503
        assert 400 - 256 - 2 <= refused <= 400 - 256
        assert _threads(pid) < 256 + 60
        # a client dribbling its headers is cut off at the header timeout (10 s), not held open
        for sock in idle[:256]:
            sock.close()
        collector.wait_until(lambda: collector.health()["http_connections"] <= 1, what="closed connections")
        slow = socket.create_connection(("127.0.0.1", collector.http_port), timeout=60)
        slow.sendall(b"POST /v1/traces HTTP/1.1\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 40:
            try:
                slow.sendall(b"X")
            except OSError:
                closed = True
                break
            slow.settimeout(1.0)
            try:
                if slow.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        slow.close()
        assert closed, "a client sending one header byte per second was never cut off"
        assert 9 <= time.monotonic() - started < 20
        body, _ = RequestFactory(16).next()
        assert post(collector.http_port, body)[0] == 200
    finally:
        for sock in idle:
            sock.close()


def test_grpc_applies_the_same_limits(token_collector: RunningCollector) -> None:
    import grpc

    channel = grpc.insecure_channel(
        f"127.0.0.1:{token_collector.grpc_port}", options=[("grpc.max_send_message_length", 64 << 20)]
    )
    export = channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=None,
        response_deserializer=ExportTraceServiceResponse.FromString,
    )
    try:
        attributes = [KeyValue(key=f"g{i}", value=AnyValue(int_value=i)) for i in range(150)]
        response = export(_span_request(b"\x08" * 8, attributes), timeout=60)
        assert "50 attributes dropped" in response.partial_success.error_message
        with pytest.raises(grpc.RpcError) as refused:
            export(b"\x0a\x00" * (16 << 20), timeout=60)  # 32 MiB of empty ResourceSpans
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "would take about" in refused.value.details()
    finally:
        channel.close()
