"""vLLM's OpenAI-compatible server run through loratrace's launcher: real HTTP requests, spans over real OTLP.

One server process for the module (~20-30 s start-up), two static adapters, run-time load enabled, vLLM's own
tracing on, everything exported to an OTLP/HTTP receiver on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loratrace import semconv
from loratrace.demo.tiny_model import TinyModels
from loratrace.instrumentation._adapter_identity import identity_from_directory
from tests.support.ports import free_port

pytestmark = pytest.mark.vllm

BASE = "tiny-llama"
STARTUP_DEADLINE_S = 180.0
CALLER_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN_ID = "b7ad6b7169203331"
SERVER_KIND = 2  # opentelemetry.proto Span.SpanKind.SPAN_KIND_SERVER
STATUS_ERROR = 2


@dataclass
class Server:
    url: str
    receiver: Any
    models: TinyModels

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, str]:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def request_span(self, response_id_prefix: str) -> Any:
        (span,) = self.receiver.wait_for_spans(
            lambda s: (
                s.scope == "loratrace.instrumentation.vllm"
                and str(s.attributes.get(semconv.GEN_AI_RESPONSE_ID, "")).startswith(response_id_prefix)
            )
        )
        return span


@pytest.fixture(scope="module")
def server(
    tiny_models: TinyModels, otlp_receiver: Any, vllm_env: dict[str, str], tmp_path_factory: Any
) -> Iterator[Server]:
    port = free_port()
    env = {
        **os.environ,
        **vllm_env,
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
        # vLLM's own exporter defaults to gRPC; the receiver speaks OTLP/HTTP.
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_SERVICE_NAME": "vllm-under-test",
    }
    command = [
        str(Path(sys.executable).with_name("loratrace")), "vllm", "serve",
        str(tiny_models.base), "--served-model-name", BASE,
        "--dtype", "float32", "--enforce-eager", "--max-model-len", "256",
        "--enable-lora", "--max-lora-rank", "8", "--max-loras", "4",  # 3 adapters + 1 (vLLM CPU slot bug)
        "--lora-modules", f"a1={tiny_models.adapters['a1']}", f"a2={tiny_models.adapters['a2']}",
        "--host", "127.0.0.1", "--port", str(port),
        "--otlp-traces-endpoint", f"{otlp_receiver.endpoint}/v1/traces",
    ]  # fmt: skip
    log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"vLLM server did not come up; log tail:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.25)
        yield Server(url, otlp_receiver, tiny_models)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _adapter_expectations(span: Any, name: str, path: Path) -> None:
    identity = identity_from_directory(path, name)
    assert span.attributes[semconv.ADAPTER_NAME] == name
    assert span.attributes[semconv.ADAPTER_ID] == identity.id
    assert span.attributes[semconv.ADAPTER_RANK] == identity.rank
    assert span.attributes[semconv.ADAPTER_ALPHA] == identity.alpha
    assert span.attributes[semconv.ADAPTER_TARGET_MODULES] == identity.target_modules


def test_static_adapters_are_loaded_with_spans(server: Server) -> None:
    loads = server.receiver.wait_for_spans(lambda s: s.name == semconv.ADAPTER_LOAD_SPAN, count=2)
    by_name = {s.attributes[semconv.ADAPTER_NAME]: s for s in loads}
    for name in ("a1", "a2"):
        _adapter_expectations(by_name[name], name, server.models.adapters[name])
        assert by_name[name].attributes[semconv.ADAPTER_LOAD_DURATION] > 0
        assert by_name[name].resource["service.name"] == "vllm-under-test"


def test_completion_continues_the_callers_trace(server: Server) -> None:
    status, body = server.post(
        "/v1/completions",
        {"model": "a1", "prompt": "Invoices are due", "max_tokens": 5, "temperature": 0},
        {"traceparent": f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"},
    )
    assert status == 200
    response = json.loads(body)
    span = server.request_span(response["id"])
    assert span.name == "text_completion a1"
    assert span.kind == SERVER_KIND
    assert span.trace_id == CALLER_TRACE_ID
    assert span.parent_span_id == CALLER_SPAN_ID
    _adapter_expectations(span, "a1", server.models.adapters["a1"])
    assert span.attributes[semconv.GEN_AI_REQUEST_MODEL] == "a1"
    assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "a1"
    assert span.attributes[semconv.BASE_MODEL_NAME] == BASE
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == response["usage"]["prompt_tokens"]
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == response["usage"]["completion_tokens"]
    assert span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == tuple(
        c["finish_reason"] for c in response["choices"]
    )
    assert span.attributes[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.0

    # vLLM's own llm_request span: same trace, under loratrace's request span, with the adapter fields.
    (native,) = server.receiver.wait_for_spans(
        lambda s: s.name == "llm_request" and s.attributes.get("gen_ai.request.id") == f"{response['id']}-0"
    )
    assert native.trace_id == CALLER_TRACE_ID
    assert native.parent_span_id == span.span_id
    _adapter_expectations(native, "a1", server.models.adapters["a1"])
    assert native.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "a1"
    assert native.attributes[semconv.BASE_MODEL_NAME] == BASE
    # The request counts once: loratrace's span is the generation. Phoenix adds up llm.token_count.* over a
    # trace's LLM spans (it showed 22 tokens for 11); Langfuse makes a generation of a span with model or usage
    # keys unless langfuse.observation.type says otherwise; the generations view counts spans with an operation.
    trace = [s for s in server.receiver.spans if s.trace_id == CALLER_TRACE_ID]
    llm_spans = [s for s in trace if s.attributes.get(semconv.OPENINFERENCE_SPAN_KIND) == "LLM"]
    assert [s.span_id for s in llm_spans] == [span.span_id]
    assert sum(s.attributes.get(semconv.LLM_TOKEN_COUNT_TOTAL, 0) for s in trace) == response["usage"]["total_tokens"]
    assert native.attributes[semconv.LANGFUSE_OBSERVATION_TYPE] == "span"
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in native.attributes
    assert semconv.LLM_MODEL_NAME not in native.attributes
    assert semconv.GEN_AI_OPERATION_NAME not in native.attributes


def _stream(server: Server, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        server.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    chunks = []
    with urllib.request.urlopen(request, timeout=60) as response:
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[len("data: ") :]))
    return chunks


def test_streamed_chat_records_time_to_first_token(server: Server) -> None:
    chunks = _stream(
        server,
        "/v1/chat/completions",
        {
            "model": "a2",
            "messages": [{"role": "user", "content": "Please reset my password"}],
            "max_tokens": 6,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    usage = chunks[-1]["usage"]
    span = server.request_span(chunks[0]["id"])
    assert span.name == "chat a2"
    assert span.status_code != STATUS_ERROR
    _adapter_expectations(span, "a2", server.models.adapters["a2"])
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == usage["prompt_tokens"]
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == usage["completion_tokens"]
    ttft = span.attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert 0 < ttft <= (span.end_ns - span.start_ns) / 1e9
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == tuple(finish)


def test_streamed_completion_and_base_chat(server: Server) -> None:
    chunks = _stream(
        server,
        "/v1/completions",
        {
            "model": "a1",
            "prompt": "Hello",
            "max_tokens": 4,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    span = server.request_span(chunks[0]["id"])
    assert span.name == "text_completion a1"
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == chunks[-1]["usage"]["completion_tokens"]
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in span.attributes

    status, body = server.post(
        "/v1/chat/completions",
        {"model": BASE, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
    )
    assert status == 200
    response = json.loads(body)
    base_span = server.request_span(response["id"])
    assert base_span.name == f"chat {BASE}"
    assert base_span.attributes[semconv.VARIANT] == semconv.VARIANT_BASE
    assert base_span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == BASE
    assert semconv.ADAPTER_NAME not in base_span.attributes
    assert base_span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == response["usage"]["completion_tokens"]


def test_adapter_loaded_at_run_time(server: Server, tmp_path: Path) -> None:
    # A copy of a2 in a new folder: a new source, the same content, so the same id.
    path = tmp_path / "late"
    shutil.copytree(server.models.adapters["a2"], path)
    status, _ = server.post("/v1/load_lora_adapter", {"lora_name": "late", "lora_path": str(path)})
    assert status == 200
    (load,) = server.receiver.wait_for_spans(
        lambda s: s.name == semconv.ADAPTER_LOAD_SPAN and s.attributes.get(semconv.ADAPTER_NAME) == "late"
    )
    assert load.attributes[semconv.ADAPTER_SOURCE] == str(path)
    assert load.attributes[semconv.ADAPTER_ID] == identity_from_directory(server.models.adapters["a2"], "a2").id

    status, body = server.post("/v1/completions", {"model": "late", "prompt": "Paris is", "max_tokens": 3})
    assert status == 200
    span = server.request_span(json.loads(body)["id"])
    _adapter_expectations(span, "late", path)
    assert span.attributes[semconv.ADAPTER_SOURCE] == str(path)

    status, _ = server.post("/v1/unload_lora_adapter", {"lora_name": "late"})
    assert status == 200
    (unload,) = server.receiver.wait_for_spans(
        lambda s: s.name == semconv.ADAPTER_UNLOAD_SPAN and s.attributes.get(semconv.ADAPTER_NAME) == "late"
    )
    assert unload.attributes[semconv.ADAPTER_ID] == load.attributes[semconv.ADAPTER_ID]


def test_unknown_model_is_an_error_span_with_the_asked_name(server: Server) -> None:
    status, body = server.post("/v1/completions", {"model": "no-such-adapter", "prompt": "Hello", "max_tokens": 3})
    assert status == 404
    (span,) = server.receiver.wait_for_spans(
        lambda s: (
            s.scope == "loratrace.instrumentation.vllm"
            and s.attributes.get(semconv.GEN_AI_REQUEST_MODEL) == "no-such-adapter"
        )
    )
    assert span.status_code == STATUS_ERROR
    assert span.attributes[semconv.ERROR_TYPE] == json.loads(body)["error"]["type"] == "NotFoundError"
    assert span.attributes["http.response.status_code"] == 404
    assert semconv.ADAPTER_NAME not in span.attributes
    # nothing served the typo, so nothing claims it did
    assert semconv.GEN_AI_RESPONSE_MODEL not in span.attributes
    assert semconv.LLM_MODEL_NAME not in span.attributes
    assert semconv.VARIANT not in span.attributes
    assert span.name == "text_completion no-such-adapter"


def test_metrics_per_adapter_with_low_cardinality_labels(server: Server) -> None:
    unknown = {"model": "no-such-adapter", "prompt": "Hello", "max_tokens": 2}
    status, _ = server.post("/v1/completions", unknown)
    assert status == 404
    status, _ = server.post("/v1/completions", {"model": "a2", "prompt": "Hello", "max_tokens": 2})
    assert status == 200
    points = server.receiver.wait_for_points(
        lambda p: p.metric == semconv.METRIC_OPERATION_DURATION and p.attributes.get(semconv.ADAPTER_NAME) == "a2"
    )
    assert points[0].attributes[semconv.BASE_MODEL_NAME] == BASE
    loads = server.receiver.wait_for_points(lambda p: p.metric == semconv.METRIC_ADAPTER_LOAD_DURATION)
    assert {p.attributes[semconv.ADAPTER_NAME] for p in loads} >= {"a1", "a2"}
    with server.receiver.lock:
        every = list(server.receiver.points)
    allowed = {*semconv.METRIC_LABELS, semconv.GEN_AI_TOKEN_TYPE, semconv.ERROR_TYPE}
    for point in every:
        assert set(point.attributes) <= allowed, point
    # The unknown-model request left no metric sample under a client-chosen name.
    assert not any("no-such-adapter" in map(str, p.attributes.values()) for p in every)
