"""Realistic OTLP trace requests for the collector tests and benchmarks: LLM spans with ~25 attributes.

``template_request`` builds one ``ExportTraceServiceRequest`` with the OpenTelemetry SDK's own encoder, then
``RequestFactory`` stamps fresh trace / span ids into copies of its serialized bytes, so a load generator can
produce 100k+ distinct spans per second from Python without re-encoding.
"""

from __future__ import annotations

import os
import random
import struct

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

ADAPTERS = ("support-v3", "billing-v7", "legal-v2", "sql-v5")
COHORTS = ("enterprise", "free", "pro")
ROUTES = ("support", "billing", "legal", "analytics")


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def span_attributes(rng: random.Random) -> list[KeyValue]:
    """25 attributes of a loratrace generation span with realistic values."""
    adapter = rng.choice(ADAPTERS)
    return [
        _kv("gen_ai.operation.name", "text_completion"),
        _kv("gen_ai.provider.name", "vllm"),
        _kv("gen_ai.request.model", "meta-llama/Llama-3.1-8B-Instruct"),
        _kv("gen_ai.response.model", adapter),
        _kv("gen_ai.request.max_tokens", 256),
        _kv("gen_ai.request.temperature", 0.7),
        _kv("gen_ai.request.top_p", 0.95),
        _kv("gen_ai.usage.input_tokens", rng.randint(20, 2000)),
        _kv("gen_ai.usage.output_tokens", rng.randint(1, 256)),
        _kv("gen_ai.response.time_to_first_chunk", rng.uniform(0.02, 0.4)),
        _kv("gen_ai.response.id", f"cmpl-{rng.getrandbits(64):016x}"),
        _kv("loratrace.adapter.name", adapter),
        _kv("loratrace.adapter.id", f"sha256:{rng.getrandbits(256):064x}"),
        _kv("loratrace.adapter.type", "lora"),
        _kv("loratrace.adapter.rank", rng.choice((8, 16, 32))),
        _kv("loratrace.adapter.alpha", 32.0),
        _kv("loratrace.adapter.merged", False),
        _kv("loratrace.base_model.name", "meta-llama/Llama-3.1-8B-Instruct"),
        _kv("loratrace.route.name", rng.choice(ROUTES)),
        _kv("loratrace.cohort", rng.choice(COHORTS)),
        _kv("loratrace.variant", rng.choice(("adapter", "adapter", "base", "shadow"))),
        _kv("loratrace.prompt.version", "p-2026-11-02"),
        _kv("loratrace.schema.attempts", rng.choice((1, 1, 1, 2))),
        _kv("loratrace.schema.valid", True),
        _kv("openinference.span.kind", "LLM"),
    ]


def evaluation_event(rng: random.Random, at: int) -> Span.Event:
    """The evaluation-result event ``loratrace.tasks.emit`` adds to an evaluated (or replayed) span."""
    passed = rng.random() < 0.8
    return Span.Event(
        name="gen_ai.evaluation.result",
        time_unix_nano=at,
        attributes=[
            _kv("gen_ai.evaluation.name", "task_completion"),
            _kv("gen_ai.evaluation.score.value", 1.0 if passed else 0.0),
            _kv("gen_ai.evaluation.score.label", "pass" if passed else "fail"),
            _kv("loratrace.evaluation.passed", passed),
            _kv("gen_ai.evaluation.explanation", "matched the expected answer" if passed else "wrong tool call"),
        ],
    )


def template_request(spans: int = 512, *, seed: int = 7, evaluations: bool = False) -> ExportTraceServiceRequest:
    """``spans`` generation spans of one service; with ``evaluations``, one evaluation event on every span."""
    rng = random.Random(seed)
    now = 1_796_000_000_000_000_000
    out = []
    for i in range(spans):
        start = now + i * 1_000_000
        out.append(
            Span(
                trace_id=rng.randbytes(16),
                span_id=rng.randbytes(8),
                parent_span_id=rng.randbytes(8),
                name="text_completion support-v3",
                kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start,
                end_time_unix_nano=start + rng.randint(50, 3000) * 1_000_000,
                attributes=span_attributes(rng),
                status=Status(code=Status.STATUS_CODE_UNSET),
                events=[evaluation_event(rng, start)] if evaluations else [],
            )
        )
    resource = Resource(
        attributes=[
            _kv("service.name", "llm-gateway"),
            _kv("host.name", "gpu-node-3"),
            _kv("telemetry.sdk.language", "python"),
        ]
    )
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=resource,
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name="loratrace", version="0.1.0"), spans=out)],
            )
        ]
    )


class RequestFactory:
    """Serialized copies of a template request, each with unique trace / span ids and current timestamps."""

    def __init__(self, spans: int = 512, *, seed: int = 7) -> None:
        request = template_request(spans, seed=seed)
        self.spans = spans
        self._template = bytearray(request.SerializeToString())
        # locate each span's ids in the serialized bytes (they are unique random bytes in the template)
        self._offsets: list[tuple[int, int]] = []
        for span in request.resource_spans[0].scope_spans[0].spans:
            self._offsets.append((self._template.index(span.trace_id), self._template.index(span.span_id)))
        self._prefix = os.urandom(4)
        self._counter = 0

    def next(self) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """A request body and the (trace_id, span_id) pairs it carries."""
        body = self._template
        ids = []
        for trace_off, span_off in self._offsets:
            self._counter += 1
            trace_id = self._prefix + struct.pack(">IQ", 0, self._counter)
            span_id = struct.pack(">Q", self._counter)
            body[trace_off : trace_off + 16] = trace_id
            body[span_off : span_off + 8] = span_id
            ids.append((trace_id, span_id))
        return bytes(body), ids
