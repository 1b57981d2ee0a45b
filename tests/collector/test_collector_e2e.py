"""The collector subprocess fed by the real OpenTelemetry SDK exporters, and by hand-made bad payloads."""

from __future__ import annotations

import gzip
import json
import os
import signal
import threading
import urllib.error
import urllib.request

import grpc
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from loratrace import semconv
from loratrace.store import query
from tests.support.otlp_requests import RequestFactory

from .conftest import RunningCollector, start_collector


def _post(url: str, body: bytes, content_type: str = "application/x-protobuf", **headers: str):
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type, **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def _count(store, sql: str = "SELECT count(*) AS n FROM spans") -> int:
    return int(query(store, sql)["n"][0])


def test_sdk_http_and_grpc_exporters_land_in_promoted_columns(collector: RunningCollector) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "svc-e2e"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.http}/v1/traces")))
    grpc_exporter = GrpcSpanExporter(endpoint=f"http://127.0.0.1:{collector.grpc_port}", insecure=True)
    provider.add_span_processor(SimpleSpanProcessor(grpc_exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "text_completion a1",
        attributes={
            semconv.ADAPTER_NAME: "a1",
            semconv.ADAPTER_RANK: 4,
            semconv.ADAPTER_ALPHA: 8.0,
            semconv.ADAPTER_TARGET_MODULES: ("q_proj", "v_proj"),
            semconv.COHORT: "enterprise",
            semconv.GEN_AI_USAGE_INPUT_TOKENS: 11,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 7,
            semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.25,
            semconv.GEN_AI_RESPONSE_FINISH_REASONS: ("length",),
        },
    ) as span:
        span.add_event(
            semconv.GEN_AI_EVALUATION_RESULT_EVENT,
            {
                semconv.GEN_AI_EVALUATION_NAME: "exact",
                semconv.GEN_AI_EVALUATION_SCORE_VALUE: 1.0,
                semconv.EVALUATION_PASSED: True,
            },
        )
        span_id = format(span.get_span_context().span_id, "016x")
    provider.shutdown()  # both exporters sent the same span: it must be stored once
    # both copies are acknowledged by now; the second one is dropped only when the store writer reaches it
    health = collector.wait_until_stored()
    assert health["accepted_spans"] == 2
    assert health["duplicate_spans_dropped"] == 1
    rows = query(
        collector.store,
        "SELECT span_id, service_name, adapter_name, adapter_rank, adapter_alpha, adapter_target_modules, "
        "cohort, input_tokens, output_tokens, ttft_ms, finish_reason, "
        "attributes['loratrace.cohort'] AS raw FROM spans",
    ).rows()
    assert rows == [
        (
            span_id,
            "svc-e2e",
            "a1",
            4,
            8.0,
            ["q_proj", "v_proj"],
            "enterprise",
            11,
            7,
            250.0,
            "length",
            "enterprise",
        )
    ]
    evals = query(collector.store, "SELECT span_id, name, score, passed, adapter_name, cohort FROM evals").rows()
    assert evals == [(span_id, "exact", 1.0, True, "a1", "enterprise")]


def test_metrics_are_stored(collector: RunningCollector) -> None:
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{collector.http}/v1/metrics"), export_interval_millis=60_000
    )
    provider = MeterProvider(metric_readers=[reader])
    histogram = provider.get_meter("t").create_histogram(semconv.METRIC_OPERATION_DURATION, unit="s")
    labels = {semconv.ADAPTER_NAME: "a2", semconv.VARIANT: "adapter"}
    for value in (0.5, 1.5, 2.0):
        histogram.record(value, labels)
    provider.shutdown()
    collector.wait_until(
        lambda: _count(collector.store, "SELECT count(*) AS n FROM metrics") >= 1,
        timeout=60,
        what="metric points",
    )
    rows = query(collector.store, "SELECT name, unit, type, count, sum, min, max, adapter_name, variant FROM metrics")
    assert rows.rows() == [(semconv.METRIC_OPERATION_DURATION, "s", "histogram", 3, 4.0, 0.5, 2.0, "a2", "adapter")]


def _request_with_ids(trace_id: bytes, span_id: bytes, name: str = "s") -> bytes:
    span = Span(trace_id=trace_id, span_id=span_id, name=name, start_time_unix_nano=1, end_time_unix_nano=2)
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]
    ).SerializeToString()


def test_bad_payloads_get_the_otlp_answers_and_the_collector_keeps_serving(tmp_path) -> None:
    running = start_collector(tmp_path / "store", "--max-request-bytes", "65536")
    try:
        url = f"{running.http}/v1/traces"
        good = _request_with_ids(b"\x01" * 16, b"\x02" * 8, "good")
        status, body, _ = _post(url, b"\xff\xff\xff\xff garbage")
        assert status == 400
        assert "not an OTLP/protobuf" in status_pb2.Status.FromString(body).message
        assert _post(url, good[: len(good) - 3])[0] == 400  # truncated
        assert _post(url, b"\x00" * 70_000)[0] == 413
        assert _post(url, good, "text/plain")[0] == 415
        assert _post(url, b"not gzip", **{"Content-Encoding": "gzip"})[0] == 400
        assert _post(url, b"{not json", "application/json")[0] == 400
        # one valid and one span with a 3-byte trace id: partial success
        mixed = ExportTraceServiceRequest.FromString(good)
        mixed.resource_spans[0].scope_spans[0].spans.add(trace_id=b"abc", span_id=b"\x03" * 8, name="bad")
        status, body, _ = _post(url, gzip.compress(mixed.SerializeToString()), **{"Content-Encoding": "gzip"})
        response = ExportTraceServiceResponse.FromString(body)
        assert (status, response.partial_success.rejected_spans) == (200, 1)
        assert "trace_id must be 16 bytes" in response.partial_success.error_message
        # OTLP/JSON: hex ids, int64 as strings
        document = {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": "0a" * 16,
                                    "spanId": "0b" * 8,
                                    "name": "json-span",
                                    "startTimeUnixNano": "1000",
                                    "endTimeUnixNano": "3000",
                                    "kind": 2,
                                    "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "42"}}],
                                }
                            ]
                        }
                    ]
                }
            ]
        }
        status, body, headers = _post(url, json.dumps(document).encode(), "application/json")
        assert (status, headers["Content-Type"]) == (200, "application/json")
        running.wait_until_stored()
        assert _count(running.store) == 2
        rows = query(running.store, "SELECT name, span_id, kind, input_tokens, duration_ns FROM spans ORDER BY name")
        assert rows.rows() == [
            ("good", "02" * 8, "UNSPECIFIED", None, 1),
            ("json-span", "0b" * 8, "SERVER", 42, 2000),
        ]
        health = running.health()
        # garbage, truncated and bad JSON reach the decoder; bad gzip, 413 and 415 are refused before it
        assert (health["bad_requests"], health["rejected_spans"], health["accepted_spans"]) == (3, 1, 2)
    finally:
        assert running.terminate() == 0


def test_kill_9_under_load_then_restart_keeps_every_acknowledged_span_once(tmp_path) -> None:
    store = tmp_path / "store"
    running = start_collector(store)
    factory = RequestFactory(64)
    acked: set[tuple[str, str]] = set()
    stop = threading.Event()

    def load() -> None:
        url = f"{running.http}/v1/traces"
        while not stop.is_set():
            body, ids = factory.next()
            try:
                status, _, _ = _post(url, body)
            except OSError:
                return
            if status == 200:
                acked.update((t.hex(), s.hex()) for t, s in ids)

    thread = threading.Thread(target=load)
    thread.start()
    running.wait_until(lambda: len(acked) >= 3000, timeout=60, what="3000 acknowledged spans")
    os.kill(running.process.pid, signal.SIGKILL)
    running.process.wait(timeout=10)
    stop.set()
    thread.join(timeout=30)
    acknowledged = set(acked)
    restarted = start_collector(store)
    try:
        # a client retry of a batch the collector already holds must not duplicate anything
        # the whole replayed log, client retries included: a duplicate would show only once its copy is processed
        restarted.wait_until_stored(timeout=120)
        frame = query(store, "SELECT trace_id, span_id FROM spans")
        stored = list(zip(frame["trace_id"].to_list(), frame["span_id"].to_list(), strict=True))
        assert len(stored) == len(set(stored)), "a span is stored twice"
        assert acknowledged <= set(stored)
    finally:
        restarted.kill()  # the store writer child is a daemon of this process
        assert restarted.process.returncode == -signal.SIGKILL


def test_sigterm_drains_everything_acknowledged(tmp_path) -> None:
    running = start_collector(tmp_path / "store")
    factory = RequestFactory(100)
    ids: set[tuple[str, str]] = set()
    for _ in range(20):
        body, pairs = factory.next()
        assert _post(f"{running.http}/v1/traces", body)[0] == 200
        ids.update((t.hex(), s.hex()) for t, s in pairs)
    assert running.terminate() == 0
    frame = query(running.store, "SELECT trace_id, span_id FROM spans")
    assert set(zip(frame["trace_id"].to_list(), frame["span_id"].to_list(), strict=True)) == ids


def test_bearer_token_is_checked_on_http_and_grpc(tmp_path) -> None:
    running = start_collector(tmp_path / "store", token="s3cret")
    try:
        body = _request_with_ids(b"\x05" * 16, b"\x06" * 8)
        assert _post(f"{running.http}/v1/traces", body)[0] == 401
        assert _post(f"{running.http}/v1/traces", body, Authorization="Bearer wrong")[0] == 401
        assert _post(f"{running.http}/v1/traces", body, Authorization="Bearer s3cret")[0] == 200
        channel = grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}")
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as denied:
            export(body, timeout=10)
        assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert export(body, metadata=(("authorization", "Bearer s3cret"),), timeout=10) == b""
        channel.close()
    finally:
        assert running.terminate() == 0


def test_non_loopback_bind_without_token_is_refused(tmp_path) -> None:
    from click.testing import CliRunner

    from loratrace.cli import cli

    result = CliRunner().invoke(cli, ["collect", "--store", str(tmp_path / "s"), "--http", "0.0.0.0:0"], env={})
    assert result.exit_code == 1
    assert "--auth-token" in result.output
