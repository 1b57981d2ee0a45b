"""The issue's "done when": loratrace.instrument() in a script serving a PeftModel, and spans with the
adapter's name, id, rank and alpha arrive at an OTLP/HTTP endpoint (a receiver on 127.0.0.1)."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hf_support import SPECS, load_peft
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

import loratrace
from loratrace import semconv
from loratrace.instrumentation._adapter_identity import identity_from_directory


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    return getattr(value, kind) if kind else None


class _Receiver(ThreadingHTTPServer):
    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            with self.server.lock:
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            self.server.spans.append({kv.key: _value(kv.value) for kv in span.attributes})
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        return


def test_adapter_spans_arrive_over_otlp_http(tiny_models, tokenizer, monkeypatch):
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ):
        monkeypatch.delenv(name, raising=False)
    receiver = _Receiver(_free_port())
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        loratrace.instrument(endpoint=f"http://127.0.0.1:{receiver.server_port}", libraries=["transformers"])
        try:
            model = load_peft(tiny_models, "a1", "a2")
            inputs = tokenizer(["Please reset my password"], return_tensors="pt")
            for name in ("a1", "a2"):
                model.set_adapter(name)
                model.generate(**inputs, max_new_tokens=4, do_sample=False)
            assert loratrace.force_flush(10_000)
        finally:
            loratrace.uninstrument()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with receiver.lock:
                if len(receiver.spans) >= 2:
                    break
            time.sleep(0.05)
    finally:
        receiver.shutdown()
        receiver.server_close()
    assert [span[semconv.ADAPTER_NAME] for span in receiver.spans] == ["a1", "a2"]
    for span in receiver.spans:
        name = span[semconv.ADAPTER_NAME]
        assert span[semconv.ADAPTER_ID] == identity_from_directory(tiny_models.adapters[name], name).id
        assert span[semconv.ADAPTER_RANK] == SPECS[name].rank
        assert span[semconv.ADAPTER_ALPHA] == SPECS[name].alpha
        assert span[semconv.BASE_MODEL_NAME] == "tiny-llama"
        assert span[semconv.GEN_AI_RESPONSE_MODEL] == name
