"""Spans written by a command (feedback import, task evaluation) and sent to a collector, with the outcome known.

The store has one writer, the collector, so commands that add facts to it send spans over OTLP like any serving
process. Unlike a serving process they must know whether the collector accepted them: the spans are collected in
memory, then exported batch by batch and every batch's result is checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from loratrace.errors import ConfigurationError, LoratraceError

_BATCH = 512


class SendError(LoratraceError):
    """The collector did not accept every span."""


class _Collecting(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base URL (``http://127.0.0.1:4318``)."""
    if not endpoint.startswith(("http://", "https://")):
        msg = f"--endpoint must start with http:// or https:// (e.g. http://127.0.0.1:4318), got {endpoint!r}"
        raise ConfigurationError(msg)
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


class SpanSender:
    """A tracer provider whose finished spans wait in memory until ``send()`` exports and checks them."""

    def __init__(
        self,
        endpoint: str,
        *,
        service_name: str,
        headers: Mapping[str, str] | None = None,
        auth_token: str | None = None,
    ) -> None:
        self._url = traces_url(endpoint)
        self._headers = dict(headers or {})
        if auth_token:
            self._headers["Authorization"] = f"Bearer {auth_token}"
        self._collected = _Collecting()
        self.tracer_provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
        self.tracer_provider.add_span_processor(self._collected)

    @property
    def pending(self) -> Sequence[ReadableSpan]:
        return self._collected.spans

    def send(self) -> int:
        """Export every collected span; the number sent. Raises ``SendError`` at the first refused batch."""
        exporter = OTLPSpanExporter(endpoint=self._url, headers=self._headers or None, timeout=30)
        spans, sent = self._collected.spans, 0
        try:
            for start in range(0, len(spans), _BATCH):
                batch = spans[start : start + _BATCH]
                if exporter.export(batch) is not SpanExportResult.SUCCESS:
                    msg = (
                        f"the collector at {self._url} did not accept spans {start + 1}-{start + len(batch)} of "
                        f"{len(spans)} ({sent} sent); check that `loratrace collect` runs there, then run the same "
                        "command again (what was already sent is not duplicated)"
                    )
                    raise SendError(msg)
                sent += len(batch)
        finally:
            exporter.shutdown()
            self._collected.spans = spans[sent:]
        return sent
