"""Where a replay's spans go (a store, ``--store``, or a collector, ``--endpoint``) and when: a chunk at a time.

The generation spans of a chunk are held in memory until the chunk is finished (every answer generated,
validated, evaluated) and then exported together (:meth:`HeldSpanProcessor.commit`); only then are its pairs
written to the journal. So a kill mid-chunk leaves none of that chunk's spans behind, and a resumed replay runs
it again from the start: no span twice, none lost.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from loratrace import _setup
from loratrace.errors import ConfigurationError

_EXPORT_BATCH = 512  # spans per export call: one OTLP request stays well under the collector's size limit


class HeldSpanProcessor(SpanProcessor):
    """Keeps every ended span until :meth:`commit` exports them."""

    def __init__(self, exporter: SpanExporter) -> None:
        self._exporter = exporter
        self._lock = threading.Lock()
        self._held: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self._held.append(span)

    def commit(self) -> bool:
        """Export what was held; True when the exporter acknowledged every batch."""
        with self._lock:
            spans, self._held = self._held, []
        ok = True
        for start in range(0, len(spans), _EXPORT_BATCH):
            ok = self._exporter.export(spans[start : start + _EXPORT_BATCH]) is SpanExportResult.SUCCESS and ok
        return ok

    def discard(self) -> int:
        with self._lock:
            count, self._held = len(self._held), []
        return count

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # spans wait for commit(): the chunk is the unit that is kept or replayed

    def shutdown(self) -> None:
        self._exporter.shutdown()


def _exporter(store: str | os.PathLike[str] | None, endpoint: str | None) -> SpanExporter:
    if (store is None) == (endpoint is None):
        msg = "a replay writes its spans to one place: give store= (a folder) or endpoint= (an OTLP/HTTP URL)"
        raise ConfigurationError(msg)
    if store is not None:
        from loratrace.collector.embedded import StoreSpanExporter

        return StoreSpanExporter(store)
    if not endpoint or not endpoint.startswith(("http://", "https://")):
        msg = f"--endpoint must be an OTLP/HTTP URL such as http://127.0.0.1:4318, got {endpoint!r}"
        raise ConfigurationError(msg)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")


@contextlib.contextmanager
def replay_telemetry(
    *,
    store: str | os.PathLike[str] | None,
    endpoint: str | None,
    libraries: Sequence[str],
    service_name: str = "loratrace-replay",
) -> Iterator[HeldSpanProcessor]:
    """Instrument ``libraries`` with a provider of its own whose spans wait for ``commit()``; undone at exit."""
    if _setup._state is not None:  # the replay needs a provider of its own
        msg = "loratrace is already instrumented in this process; call loratrace.uninstrument() before a replay"
        raise ConfigurationError(msg)
    processor = HeldSpanProcessor(_exporter(store, endpoint))
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(processor)
    meter: Any = NoOpMeterProvider()  # every figure the histograms carry is on the spans
    _setup.instrument(tracer_provider=provider, meter_provider=meter, libraries=list(libraries))
    try:
        yield processor
    finally:
        _setup.uninstrument()
        processor.discard()  # an interrupted chunk's spans are replayed on resume, not exported now
        provider.shutdown()
