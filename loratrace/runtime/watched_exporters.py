"""Exporters that know whether their endpoint listens, and remember whether their exports failed.

loratrace wraps the OTLP exporters it builds itself. Two things the SDK's exporters do not do:

- When nothing listens at the endpoint (no collector started yet, the usual first run), the OTLP exporters retry
  every batch with backoff up to their timeout and log a line per retry: eight lines and 13-25 s at exit for a
  quick start. A wrapped exporter first connects to the endpoint's port (on the export thread, never the serving
  thread); when the connection is refused it says so once, with what to do, and fails the batch at once. After a
  failure it probes again before the next batch, so a collector started later is picked up.
- ``BatchSpanProcessor.force_flush`` returns True although the exports it ran failed. The wrapper counts failed
  exports so that ``loratrace.force_flush()`` can report them.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

logger = logging.getLogger("loratrace")

_PROBE_TIMEOUT_S = 1.0


class EndpointWatch:
    """The state shared by the span and metric exporters of one ``instrument()`` call: is the endpoint up, has
    the user been told that it is not, and how many exports failed since the last ``force_flush``."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._lock = threading.Lock()
        self._listening: bool | None = None  # unknown until the first export
        self._told = False
        self.failed_exports = 0

    def for_url(self, url: str) -> EndpointWatch:
        """The watch for another signal's URL: this one when it names the same host and port (one warning for
        both), else a watch of its own."""
        other = EndpointWatch(url)
        return self if (other.host, other.port) == (self.host, self.port) else other

    def ready(self) -> bool:
        """Whether to hand a batch to the exporter: the endpoint accepted a TCP connection (probed before the
        first export and after a failed one)."""
        with self._lock:
            if self._listening:
                return True
        try:
            with socket.create_connection((self.host, self.port), timeout=_PROBE_TIMEOUT_S):
                pass
        except ConnectionRefusedError:
            self._refused()
            return False
        except OSError:  # a timeout or an unresolvable name: let the exporter try and report it itself
            return True
        with self._lock:
            self._listening = True
        return True

    def _refused(self) -> None:
        with self._lock:
            self._listening = False
            self.failed_exports += 1
            tell, self._told = not self._told, True
        if tell:
            logger.warning(
                "loratrace: nothing listens at %s (connection refused), so spans and metrics are dropped. Start a "
                "collector there (`loratrace collect --store ./traces`), or write spans straight into a folder "
                'with loratrace.instrument(store="./traces"). Set OTEL_METRICS_EXPORTER=none to export no metrics.',
                self.url,
            )

    def record(self, success: bool) -> None:
        with self._lock:
            if success:
                self._listening = True
            else:
                self._listening = None  # probe again before the next batch
                self.failed_exports += 1


class _Once:
    """True for the first caller only: ``uninstrument()`` shuts the exporters down itself when the providers'
    shutdown outlasts its deadline, and the providers' shutdown does it again later (the SDK warns on a second call)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False

    def first(self) -> bool:
        with self._lock:
            done, self._done = self._done, True
        return not done


class WatchedSpanExporter(SpanExporter):
    """A span exporter that skips its endpoint while nothing listens there and counts failed exports."""

    def __init__(self, exporter: SpanExporter, watch: EndpointWatch) -> None:
        self.exporter = exporter
        self.watch = watch
        self._shut_down = _Once()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self.watch.ready():
            return SpanExportResult.FAILURE
        result = self.exporter.export(spans)
        self.watch.record(result is SpanExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        if self._shut_down.first():
            self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.exporter.force_flush(timeout_millis)


class WatchedMetricExporter(MetricExporter):
    """A metric exporter that skips its endpoint while nothing listens there and counts failed exports."""

    def __init__(self, exporter: MetricExporter, watch: EndpointWatch) -> None:
        # the reader asks the exporter for its temporality and aggregation: the wrapped exporter's apply
        super().__init__(
            preferred_temporality=exporter._preferred_temporality,
            preferred_aggregation=exporter._preferred_aggregation,
        )
        self.exporter = exporter
        self.watch = watch
        self._shut_down = _Once()

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        if not self.watch.ready():
            return MetricExportResult.FAILURE
        result = self.exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.watch.record(result is MetricExportResult.SUCCESS)
        return result

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self._shut_down.first():
            self.exporter.shutdown(timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.exporter.force_flush(timeout_millis=timeout_millis)
