"""A real OTLP/HTTP receiver on 127.0.0.1 for tests: decodes the traces and metrics exporters send it."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    scope: str
    status_code: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass
class ReceivedPoint:
    metric: str
    attributes: dict[str, Any]
    count: int


@dataclass
class OtlpReceiver:
    """Decodes OTLP/HTTP protobuf exports (traces and metrics) sent to it over loopback."""

    endpoint: str = ""
    spans: list[ReceivedSpan] = field(default_factory=list)
    points: list[ReceivedPoint] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # An endpoint that hangs, for real: while ``answer_gate`` is set to an unset Event, requests are read and
    # decoded but not answered until it is set; ``request_arrived`` is set by every request.
    answer_gate: threading.Event | None = None
    request_arrived: threading.Event = field(default_factory=threading.Event)
    paths: list[str] = field(default_factory=list)  # every request's path, in arrival order

    def add_traces(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        decoded = []
        for resource_spans in request.resource_spans:
            resource = {kv.key: any_value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    decoded.append(
                        ReceivedSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            scope=scope_spans.scope.name,
                            status_code=span.status.code,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes={kv.key: any_value(kv.value) for kv in span.attributes},
                            resource=resource,
                        )
                    )
        with self.lock:
            self.spans.extend(decoded)

    def add_metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        decoded = []
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.WhichOneof("data") != "histogram":
                        continue
                    for point in metric.histogram.data_points:
                        attributes = {kv.key: any_value(kv.value) for kv in point.attributes}
                        decoded.append(ReceivedPoint(metric.name, attributes, point.count))
        with self.lock:
            self.points.extend(decoded)

    def wait_for_spans(
        self, predicate: Callable[[ReceivedSpan], bool], *, count: int = 1, timeout: float = 30.0
    ) -> list[ReceivedSpan]:
        """Poll until ``count`` received spans match (exports are batched), or fail with what did arrive."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                matching = [span for span in self.spans if predicate(span)]
            if len(matching) >= count:
                return matching
            if time.monotonic() > deadline:
                with self.lock:
                    names = sorted({span.name for span in self.spans})
                pytest.fail(f"only {len(matching)} of {count} matching spans within {timeout}s; got {names}")
            time.sleep(0.05)

    def wait_for_points(
        self, predicate: Callable[[ReceivedPoint], bool], *, timeout: float = 30.0
    ) -> list[ReceivedPoint]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                matching = [point for point in self.points if predicate(point)]
            if matching:
                return matching
            if time.monotonic() > deadline:
                pytest.fail(f"no matching metric point within {timeout}s")
            time.sleep(0.05)


def _handler(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            with receiver.lock:
                receiver.paths.append(self.path)
            if self.path == "/v1/traces":
                receiver.add_traces(body)
            elif self.path == "/v1/metrics":
                receiver.add_metrics(body)
            receiver.request_arrived.set()
            gate = receiver.answer_gate
            if gate is not None:
                gate.wait()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def serve_otlp_receiver() -> Iterator[OtlpReceiver]:
    """Start a receiver on a free loopback port, yield it, stop it."""
    receiver = OtlpReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
