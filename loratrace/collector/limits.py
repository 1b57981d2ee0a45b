"""What one export may cost the collector: OpenTelemetry attribute limits and the memory a request takes.

Attribute limits, applied at the receiver as the OpenTelemetry SDK applies its span limits
(``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT``, ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``): a span, an event or a link keeps
its first ``max_attributes`` attributes and counts the rest in its ``dropped_attributes_count``; a string value
(or each string of an array value) longer than ``max_value_length`` characters is cut to that length, bytes to
that many bytes. The export is still accepted; its response's partial success says how many spans were cut.

Memory: a request is charged what parsing it allocates (about 64 bytes per protobuf message, counted from the
wire bytes before parsing, plus the body) against one budget shared by every request in flight, so a burst of
large or amplifying requests is answered "retry later" instead of growing the collector without bound.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Final

from loratrace.collector.decode import _fastdecode

# upb's cost of one parsed message (measured: 32 MiB of empty ResourceSpans, 16.8M messages, took 1.07 GB)
BYTES_PER_MESSAGE: Final = 64
# without the compiled scanner, or for JSON (Python objects): the body times this
UNSCANNED_EXPANSION: Final = 4
JSON_EXPANSION: Final = 16


@dataclass(frozen=True)
class AttributeLimits:
    """Per span, event and link: at most ``max_attributes`` attributes, values of ``max_value_length``."""

    max_attributes: int = 1024
    max_value_length: int = 1 << 20


@dataclass
class LimitReport:
    spans: int = 0
    dropped_attributes: int = 0
    truncated_values: int = 0

    def message(self, limits: AttributeLimits) -> str:
        return (
            f"{self.spans} spans over the attribute limits were stored cut: {self.dropped_attributes} attributes "
            f"dropped, {self.truncated_values} values truncated (limits: {limits.max_attributes} attributes per "
            f"span, event or link; values of {limits.max_value_length} characters)"
        )


def scan_traces(body: bytes, limits: AttributeLimits) -> tuple[int, int | None]:
    """(bytes parsing ``body`` takes, spans over the limits or None when unknown) from the wire bytes."""
    if _fastdecode is None:
        return len(body) * UNSCANNED_EXPANSION, None
    messages, over = _fastdecode.scan_traces(body, limits.max_attributes, limits.max_value_length)
    return len(body) + messages * BYTES_PER_MESSAGE, over


def parse_cost(body: bytes, *, json_body: bool) -> int:
    """Bytes parsing ``body`` (any signal) takes, from the wire bytes."""
    if json_body:
        return len(body) * JSON_EXPANSION
    if _fastdecode is None:
        return len(body) * UNSCANNED_EXPANSION
    return len(body) + max(0, _fastdecode.count_messages(body)) * BYTES_PER_MESSAGE


def apply_attribute_limits(request: Any, limits: AttributeLimits) -> LimitReport:
    """Cut every span of an ``ExportTraceServiceRequest`` to ``limits``, in place."""
    report = LimitReport()
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                before = (report.dropped_attributes, report.truncated_values)
                _limit(span, limits, report)
                for event in span.events:
                    _limit(event, limits, report)
                for link in span.links:
                    _limit(link, limits, report)
                if (report.dropped_attributes, report.truncated_values) != before:
                    report.spans += 1
    return report


def _limit(holder: Any, limits: AttributeLimits, report: LimitReport) -> None:
    attributes = holder.attributes
    extra = len(attributes) - limits.max_attributes
    if extra > 0:
        del attributes[limits.max_attributes :]
        holder.dropped_attributes_count += extra
        report.dropped_attributes += extra
    for kv in attributes:
        value = kv.value
        which = value.WhichOneof("value")
        if which == "array_value":
            for element in value.array_value.values:
                report.truncated_values += _truncate(element, limits.max_value_length)
        else:
            report.truncated_values += _truncate(value, limits.max_value_length)


def _truncate(value: Any, length: int) -> int:
    which = value.WhichOneof("value")
    if which == "string_value" and len(value.string_value) > length:
        value.string_value = value.string_value[:length]
        return 1
    if which == "bytes_value" and len(value.bytes_value) > length:
        value.bytes_value = value.bytes_value[:length]
        return 1
    return 0


class MemoryBudget:
    """Bytes that requests in flight may hold; ``reserve`` waits up to ``timeout`` for room."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._cond = threading.Condition()

    @property
    def used(self) -> int:
        return self._used

    def reserve(self, amount: int, *, timeout: float) -> bool:
        if amount > self.limit:
            return False
        with self._cond:
            if not self._cond.wait_for(lambda: self._used + amount <= self.limit, timeout=timeout):
                return False
            self._used += amount
            return True

    def release(self, amount: int) -> None:
        with self._cond:
            self._used -= amount
            self._cond.notify_all()
