"""``StoreSpanExporter``: spans from the serving process straight into a store, no collector needed.

It encodes spans with the OpenTelemetry SDK's own OTLP encoder and feeds them through the collector's decoder,
so embedded and collected spans land in exactly the same columns. Each export writes its segments atomically
(walend 0: they are not tied to any write-ahead log). One process should write a given store at a time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from loratrace.collector.decode import RowBuffer
from loratrace.collector.store_writer.duplicates import RecentKeys, drop_duplicates
from loratrace.store.catalog import ensure_store
from loratrace.store.segments import write_segments

logger = logging.getLogger(__name__)


class StoreSpanExporter(SpanExporter):
    """An OpenTelemetry SpanExporter that writes spans into a loratrace store folder."""

    def __init__(self, store_dir: str | os.PathLike[str]) -> None:
        self.store = ensure_store(store_dir)
        self._lock = threading.Lock()
        self._recent = RecentKeys(200_000)
        self._shutdown = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            buffer = RowBuffer()
            buffer.add_traces(encode_spans(spans))
            with self._lock:
                frames = buffer.take()
                drop_duplicates(frames, self._recent)
                write_segments(self.store, frames, walend=0, kind="embedded")
        except Exception:  # an exporter must never raise into the SDK
            logger.warning("could not write %d spans into the store %s", len(spans), self.store, exc_info=True)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._shutdown = True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
