"""One export request, whatever the protocol: decode, validate, append to the write-ahead log, answer.

The HTTP and gRPC receivers are thin shells around :meth:`Ingest.export`, so both answer the same way: partial
success with a count and message for rejected spans, an error for an undecodable body, and "overloaded,
retry in
N s" while the store writer is behind or too many requests are in flight.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from loratrace.collector.limits import AttributeLimits, MemoryBudget, apply_attribute_limits, parse_cost, scan_traces
from loratrace.collector.outcome import Outcome
from loratrace.collector.wal import KIND_METRICS, KIND_TRACES, WalWriter

Signal = Literal["traces", "metrics"]

_ID_FIELDS: Final = frozenset(("traceId", "spanId", "parentSpanId"))
_ZERO_TRACE: Final = bytes(16)
_ZERO_SPAN: Final = bytes(8)


@dataclass
class ExportResult:
    outcome: Outcome
    message: str = ""
    response: bytes = b""
    response_json: str = ""
    retry_after: int = 0


@dataclass
class Counters:
    """The collector's own counters, read by /health and /metrics."""

    requests: int = 0
    accepted_spans: int = 0
    rejected_spans: int = 0
    accepted_metric_points: int = 0
    bad_requests: int = 0
    overloaded: int = 0
    spans_cut_to_limits: int = 0
    disk_full_refusals: int = 0
    wal_bytes_appended: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        with self.lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return {k: v for k, v in self.__dict__.items() if k != "lock"}


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON spells ids in hex; protobuf's JSON mapping wants base64 for bytes fields."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                try:
                    out[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    out[key] = "!"  # not hex: left invalid so the span is rejected with a reason
            else:
                out[key] = _hex_ids_to_base64(value)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(v) for v in node]
    return node


def parse_request(signal: Signal, body: bytes, *, json_body: bool) -> Any:
    """The request message; raises ValueError with a reason when the body is not a valid OTLP request."""
    message: Any = ExportTraceServiceRequest() if signal == "traces" else ExportMetricsServiceRequest()
    if json_body:
        try:
            document = json.loads(body)
            if not isinstance(document, dict):
                msg = f"the body must be a JSON object, got {type(document).__name__}"
                raise ValueError(msg)
            json_format.ParseDict(_hex_ids_to_base64(document), message, ignore_unknown_fields=True)
        except RecursionError as exc:
            msg = f"the body is not an OTLP/JSON {signal} export request: JSON nested too deeply"
            raise ValueError(msg) from exc
        except (ValueError, TypeError, AttributeError, json_format.ParseError) as exc:
            msg = f"the body is not an OTLP/JSON {signal} export request: {exc}"
            raise ValueError(msg) from exc
        return message
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        msg = f"the body is not an OTLP/protobuf {signal} export request: {exc}"
        raise ValueError(msg) from exc
    return message


def reject_invalid_spans(request: ExportTraceServiceRequest) -> tuple[int, int, str]:
    """Drop spans with a malformed trace or span id; returns (kept, rejected, message)."""
    kept = rejected = 0
    reason = ""
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            spans = scope_spans.spans
            bad = [
                i
                for i, span in enumerate(spans)
                if len(span.trace_id) != 16
                or len(span.span_id) != 8
                or span.trace_id == _ZERO_TRACE
                or span.span_id == _ZERO_SPAN
            ]
            if bad:
                first = spans[bad[0]]
                reason = reason or (
                    f"span {first.name!r}: trace_id must be 16 bytes and span_id 8 bytes, not all zero "
                    f"(got {len(first.trace_id)} and {len(first.span_id)} bytes)"
                )
                for i in reversed(bad):
                    del spans[i]
                rejected += len(bad)
            kept += len(spans)
    return kept, rejected, reason


def count_points(request: ExportMetricsServiceRequest) -> int:
    total = 0
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is not None:
                    total += len(getattr(metric, kind).data_points)
    return total


class Ingest:
    """Validates exports and makes them durable; shared by every receiver thread."""

    def __init__(
        self,
        wal: WalWriter,
        *,
        backlog: Any,
        max_backlog_bytes: int = 1 << 30,
        max_in_flight_bytes: int = 512 << 20,
        attribute_limits: AttributeLimits | None = None,
        durable_timeout: float = 10.0,
        budget_wait: float = 2.0,
        min_free_disk_bytes: int = 16 << 20,
    ) -> None:
        self.wal = wal
        self.min_free_disk_bytes = min_free_disk_bytes
        self.backlog = backlog  # () -> bytes appended but not yet in segments
        self.max_backlog_bytes = max_backlog_bytes
        self.durable_timeout = durable_timeout
        self.budget_wait = budget_wait
        self.limits = attribute_limits or AttributeLimits()
        self.counters = Counters()
        # the bodies being received and the messages being parsed, in bytes (shared with the HTTP receiver)
        self.budget = MemoryBudget(max_in_flight_bytes)
        self.closed = False

    def export(self, signal: Signal, body: bytes, *, json_body: bool = False, reserved: int = 0) -> ExportResult:
        """Validate ``body`` and make it durable; ``reserved``: bytes of the budget the caller already holds for
        this request (the HTTP receiver's, for the body it read), counted against its parse cost."""
        self.counters.add(requests=1)
        if self.closed:
            return ExportResult(Outcome.UNAVAILABLE, "the collector is shutting down; retry", retry_after=1)
        backlog = self.backlog()
        if backlog > self.max_backlog_bytes:
            self.counters.add(overloaded=1)
            return ExportResult(Outcome.OVERLOADED, "the store writer is behind; retry after the delay", retry_after=2)
        refused = self._disk_refusal(len(body), backlog)
        if refused is not None:
            return refused
        over: int | None = None
        if signal == "traces" and not json_body:
            cost, over = scan_traces(body, self.limits)
        else:
            cost = parse_cost(body, json_body=json_body)
        if cost > self.budget.limit:
            self.counters.add(bad_requests=1)
            msg = (
                f"the request would take about {cost >> 20} MiB to parse ({len(body)} bytes on the wire), over the "
                f"collector's {self.budget.limit >> 20} MiB for requests in flight; send smaller batches"
            )
            return ExportResult(Outcome.TOO_LARGE, msg)
        extra = max(0, cost - reserved)
        if not self.budget.reserve(extra, timeout=self.budget_wait):
            self.counters.add(overloaded=1)
            return ExportResult(
                Outcome.BUSY, "too many bytes of export requests in flight; retry after the delay", retry_after=1
            )
        try:
            return self._export(signal, body, json_body=json_body, over_limits=over)
        finally:
            self.budget.release(extra)

    def _disk_refusal(self, size: int, backlog: int) -> ExportResult | None:
        """A 503 while the log's disk lacks room for this request plus what the store writer needs.

        The log must never take the space the store writer needs to turn it into segments: on a full disk
        neither could move again. Half the backlog (segments are smaller than the log) plus a fixed margin is
        kept free; while refusing, the log moves on to a new file so the current one, once in segments, is
        deleted and its space comes back.
        """
        try:
            stat = os.statvfs(self.wal.directory)
        except OSError:
            return None
        free = stat.f_bavail * stat.f_frsize
        keep = self.min_free_disk_bytes + backlog // 2
        if free - size >= keep:
            return None
        if self.wal.file_bytes_used >= 1 << 20:
            with contextlib.suppress(OSError):
                self.wal.roll()
        self.counters.add(overloaded=1, disk_full_refusals=1)
        msg = (
            f"the store's disk has {free >> 20} MiB free, under the {keep >> 20} MiB kept for writing segments; "
            "retry after the delay"
        )
        return ExportResult(Outcome.UNAVAILABLE, msg, retry_after=2)

    def _export(self, signal: Signal, body: bytes, *, json_body: bool, over_limits: int | None) -> ExportResult:
        try:
            request = parse_request(signal, body, json_body=json_body)
        except ValueError as exc:
            self.counters.add(bad_requests=1)
            return ExportResult(Outcome.BAD_REQUEST, str(exc))
        if signal == "traces":
            kept, rejected, reason = reject_invalid_spans(request)
            response: Any = ExportTraceServiceResponse()
            messages = []
            if rejected:
                response.partial_success.rejected_spans = rejected
                messages.append(f"{rejected} spans rejected: {reason}")
            cut = apply_attribute_limits(request, self.limits) if over_limits is None or over_limits else None
            if cut is not None and cut.spans:
                messages.append(cut.message(self.limits))
                self.counters.add(spans_cut_to_limits=cut.spans)
            if messages:
                response.partial_success.error_message = "; ".join(messages)
            changed = rejected or json_body or (cut is not None and cut.spans)
            payload = request.SerializeToString() if changed else body
            kind = KIND_TRACES
        else:
            kept, rejected = count_points(request), 0
            response = ExportMetricsServiceResponse()
            payload = request.SerializeToString() if json_body else body
            kind = KIND_METRICS
        if kept:
            try:
                end = self.wal.append(kind, payload)
            except OSError as exc:
                return ExportResult(Outcome.UNAVAILABLE, f"cannot write the write-ahead log: {exc}", retry_after=1)
            if not self.wal.wait_durable(end, timeout=self.durable_timeout):
                return ExportResult(Outcome.UNAVAILABLE, "the write-ahead log is not keeping up; retry", retry_after=1)
            self.counters.add(wal_bytes_appended=len(payload))
        if signal == "traces":
            self.counters.add(accepted_spans=kept, rejected_spans=rejected)
        else:
            self.counters.add(accepted_metric_points=kept)
        return ExportResult(
            Outcome.OK,
            response=response.SerializeToString(),
            response_json=json_format.MessageToJson(response, indent=None) if json_body else "",
        )
