"""Fast OTLP encoding of generated spans, and a span processor that exports in fixed-size chunks.

Protobuf messages concatenate: the bytes of two serialized ``Span`` messages, joined, parse as one span with
both sets of fields (repeated fields appended). So each attribute is serialized once as a ``Span`` holding only
that attribute, cached, and spliced behind the span's own fields; the request envelope (resource, scope) is
serialized once too. Only per-span values (ids, times, token counts, latencies, example ids) are encoded per
span, with the protobuf classes themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from loratrace import semconv

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from loratrace.demo.traffic import GenerationRecord

_KINDS: Final = {"CLIENT": Span.SPAN_KIND_CLIENT, "SERVER": Span.SPAN_KIND_SERVER, "INTERNAL": Span.SPAN_KIND_INTERNAL}
_UNCACHED: Final = frozenset((semconv.EXAMPLE_ID,))  # one value per example: caching would only grow memory
_SPANS_FIELD_TAG: Final = bytes([(2 << 3) | 2])  # ScopeSpans.spans, length-delimited
_SCOPE_SPANS_FIELD_TAG: Final = bytes([(2 << 3) | 2])  # ResourceSpans.scope_spans
_RESOURCE_SPANS_FIELD_TAG: Final = bytes([(1 << 3) | 2])  # ExportTraceServiceRequest.resource_spans


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def any_value(value: Any) -> AnyValue:
    """An attribute value as an OTLP ``AnyValue`` (bool before int: a bool is an int in Python)."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list | tuple):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    return AnyValue(string_value=str(value))


def key_values(attributes: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


class RequestEncoder:
    """Serializes ``GenerationRecord`` s as OTLP spans and wraps them into export requests."""

    def __init__(self, *, service_name: str, scope_name: str) -> None:
        self._attribute_cache: dict[tuple[str, type, Any], bytes] = {}
        resource = Resource(attributes=key_values({"service.name": service_name}))
        scope = InstrumentationScope(name=scope_name)
        self._resource_field = ResourceSpans(resource=resource).SerializeToString()
        self._scope_field = ScopeSpans(scope=scope).SerializeToString()

    def _attribute(self, key: str, value: Any) -> bytes:
        if key in _UNCACHED or isinstance(value, float):
            return Span(attributes=[KeyValue(key=key, value=any_value(value))]).SerializeToString()
        cache_key = (key, type(value), tuple(value) if isinstance(value, list) else value)
        encoded = self._attribute_cache.get(cache_key)
        if encoded is None:
            encoded = Span(attributes=[KeyValue(key=key, value=any_value(value))]).SerializeToString()
            self._attribute_cache[cache_key] = encoded
        return encoded

    def span(self, record: GenerationRecord) -> bytes:
        """One serialized ``Span`` message."""
        from loratrace.demo.traffic import eval_attributes

        status = None if record.error is None else Status(code=Status.STATUS_CODE_ERROR, message=record.error)
        head = Span(
            trace_id=bytes.fromhex(record.trace_id),
            span_id=bytes.fromhex(record.span_id),
            parent_span_id=bytes.fromhex(record.parent_span_id) if record.parent_span_id else b"",
            name=record.name,
            kind=_KINDS[record.kind],
            start_time_unix_nano=record.start_ns,
            end_time_unix_nano=record.end_ns,
            events=[
                Span.Event(
                    time_unix_nano=e.time_ns,
                    name=semconv.GEN_AI_EVALUATION_RESULT_EVENT,
                    attributes=key_values(eval_attributes(e)),
                )
                for e in record.evals
            ],
            status=status,
        ).SerializeToString()
        return head + b"".join([self._attribute(key, value) for key, value in record.attributes.items()])

    def request(self, spans: Sequence[bytes]) -> bytes:
        """One serialized ``ExportTraceServiceRequest`` holding ``spans`` under one resource and scope."""
        scope_spans = self._scope_field + b"".join([_length_delimited(_SPANS_FIELD_TAG, s) for s in spans])
        resource_spans = self._resource_field + _length_delimited(_SCOPE_SPANS_FIELD_TAG, scope_spans)
        return _length_delimited(_RESOURCE_SPANS_FIELD_TAG, resource_spans)


def parse_request(body: bytes) -> ExportTraceServiceRequest:
    """The request back as a message (tests compare it with what the SDK encodes)."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return request


class ChunkedExportProcessor(SpanProcessor):
    """Exports ended spans synchronously in chunks of ``chunk``: nothing dropped, few segments.

    The SDK's BatchSpanProcessor drops spans when its queue fills faster than it exports, which a generator
    that ends spans as fast as it can does at once.
    """

    def __init__(self, exporter: SpanExporter, *, chunk: int = 2048) -> None:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self._exporter = exporter
        self._chunk = chunk
        self._pending: list[ReadableSpan] = []
        self._success = SpanExportResult.SUCCESS
        self.failures = 0

    def on_end(self, span: ReadableSpan) -> None:
        self._pending.append(span)
        if len(self._pending) >= self._chunk:
            self._export()

    def _export(self) -> None:
        spans, self._pending = self._pending, []
        if spans and self._exporter.export(spans) is not self._success:
            self.failures += len(spans)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self._export()
        return self.failures == 0

    def shutdown(self) -> None:
        self._export()
        self._exporter.shutdown()
