"""``loratrace.instrument()`` / ``uninstrument()``: providers, exporters and the installed instrumentors.

loratrace reuses the tracer and meter providers the application configured (passed in, or set globally). When
there are none it builds its own, exporting over OTLP (or into a local store with ``store=``), and keeps them to
itself instead of setting them globally: OpenTelemetry allows a global provider to be set only once, and
``uninstrument()`` must be able to undo everything.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from opentelemetry import metrics, trace

# instrumentor.py opens with a file-wide `# type: ignore`, so mypy sees none of its names
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from loratrace.errors import ConfigurationError, LoratraceWarning, StoreError
from loratrace.runtime.finisher import finisher
from loratrace.runtime.watched_exporters import EndpointWatch, WatchedMetricExporter, WatchedSpanExporter
from loratrace.runtime.worker import CallRunner
from loratrace.semconv import OPENINFERENCE_PROJECT_NAME

logger = logging.getLogger(__name__)

Protocol = Literal["http/protobuf", "grpc"]
DEFAULT_HTTP_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_GRPC_ENDPOINT = "http://127.0.0.1:4317"

# name -> (module of the instrumentor, class, the module that must be importable for it to apply)
_INSTRUMENTORS: dict[str, tuple[str, str, str]] = {
    "transformers": ("loratrace.instrumentation.transformers", "TransformersInstrumentor", "transformers"),
    "vllm": ("loratrace.instrumentation.vllm", "VLLMInstrumentor", "vllm"),
}


@dataclass
class Instrumentation:
    """What ``loratrace.instrument()`` set up; ``loratrace.uninstrument()`` undoes exactly this."""

    tracer_provider: trace.TracerProvider
    meter_provider: metrics.MeterProvider
    instrumentors: dict[str, BaseInstrumentor] = field(default_factory=dict)
    owns_tracer_provider: bool = False
    owns_meter_provider: bool = False
    # the endpoints of loratrace's own OTLP exporters (one per distinct host and port): their failed exports
    endpoint_watches: tuple[EndpointWatch, ...] = ()
    # loratrace's own OTLP exporters, stopped by uninstrument() at its deadline so that none goes on retrying
    own_exporters: tuple[WatchedSpanExporter | WatchedMetricExporter, ...] = ()
    _failures_reported: int = 0

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything recorded so far; True when every exporter confirmed in time and no export of
        loratrace's own exporters failed since the last flush. Returns within ``timeout_millis`` (the exports it
        started go on in the background)."""
        deadline = time.monotonic() + timeout_millis / 1000
        done = finisher.drain(timeout_millis / 1000)
        for provider in (self.tracer_provider, self.meter_provider):
            done = _flush_provider(provider, deadline) and done
        if self.endpoint_watches:
            failures = sum(watch.failed_exports for watch in self.endpoint_watches)
            done = done and failures == self._failures_reported
            self._failures_reported = failures
        return done


def _flush_provider(provider: Any, deadline: float) -> bool:
    """``provider.force_flush``, waited for until ``deadline`` (monotonic) at most.

    The SDK's BatchSpanProcessor ignores the timeout it is given (opentelemetry-python#4568) and waits for every
    batch's export: with an endpoint that does not answer, each batch retries to the exporter's own timeout (10 s
    by default), so ``loratrace.force_flush(timeout_millis=5000)`` waited 52 s. The flush runs on
    loratrace's flush thread instead, and what it has not finished by the deadline it finishes in the background.
    """
    flush = getattr(provider, "force_flush", None)
    if flush is None:
        return True
    remaining_s = max(0.0, deadline - time.monotonic())

    def run() -> bool:
        try:
            return bool(flush(int(remaining_s * 1000)))
        except Exception:
            logger.warning("loratrace could not flush %r", provider, exc_info=True)
            return False

    finished, flushed = _calls.call(run, remaining_s)
    return finished and bool(flushed)


# the providers' force_flush and shutdown: calls that can hang on the network, waited for until a deadline
_calls = CallRunner("loratrace-flush")


_lock = threading.Lock()
_state: Instrumentation | None = None


def tracer_provider_in_use() -> trace.TracerProvider:
    """loratrace's tracer provider while instrumented, else the global one."""
    state = _state
    return state.tracer_provider if state is not None else trace.get_tracer_provider()


def _resource(service_name: str | None) -> Resource:
    attributes: dict[str, Any] = {}
    if service_name:
        attributes[SERVICE_NAME] = service_name
    resource = Resource.create(attributes)  # merges OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES
    if OPENINFERENCE_PROJECT_NAME in resource.attributes:
        return resource
    # Phoenix files spans by this project name and puts every service without one in "default"
    return resource.merge(Resource({OPENINFERENCE_PROJECT_NAME: resource.attributes[SERVICE_NAME]}))


def _resolve_protocol(protocol: str | None) -> Protocol:
    chosen = (
        protocol
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    )
    if chosen not in ("http/protobuf", "grpc"):
        msg = f"loratrace.instrument(protocol=...) must be 'http/protobuf' or 'grpc', got {chosen!r}"
        raise ConfigurationError(msg)
    return chosen  # type: ignore[return-value]  # one of the Literal's values, checked just above


_SIGNAL_PATHS = ("/v1/traces", "/v1/metrics")


def _signal_endpoint(endpoint: str | None, protocol: Protocol, signal: str) -> str | None:
    """The per-signal URL for an explicit endpoint; None lets the exporter read OTEL_* or use our default.

    ``endpoint`` is a base URL (``http://host:4318``, like ``OTEL_EXPORTER_OTLP_ENDPOINT``) or a per-signal one
    (``http://host:6006/v1/traces``, like ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, and what Phoenix prints): the
    signal path is taken off and each signal's own put on, so neither form posts to ``/v1/traces/v1/traces``.
    """
    env_base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    env_signal = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if endpoint is None and (env_signal or env_base):
        return None
    base = endpoint or (DEFAULT_GRPC_ENDPOINT if protocol == "grpc" else DEFAULT_HTTP_ENDPOINT)
    if not base.startswith(("http://", "https://")):
        msg = f"loratrace.instrument(endpoint=...) must start with http:// or https://, got {base!r}"
        raise ConfigurationError(msg)
    base = base.rstrip("/")
    for path in _SIGNAL_PATHS:
        if base.endswith(path):
            base = base[: -len(path)]
            break
    if protocol == "grpc":
        return base
    return base + f"/v1/{signal}"


def _effective_url(endpoint: str | None, protocol: Protocol, signal: str) -> str:
    """The URL the exporter of ``signal`` will post to, for telling the user when nothing listens there."""
    url = _signal_endpoint(endpoint, protocol, signal)
    if url is not None:
        return url
    env_signal = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if env_signal:
        return env_signal
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").rstrip("/")
    return base if protocol == "grpc" else f"{base}/v1/{signal}"


ExporterName = Literal["otlp", "console", "none"]
_EXPORTER_NAMES: tuple[ExporterName, ...] = ("otlp", "console", "none")


def _exporters(signal: str) -> list[ExporterName]:
    """``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``: a comma-separated list, ``otlp`` by default."""
    variable = f"OTEL_{signal.upper()}_EXPORTER"
    raw = os.environ.get(variable, "").strip() or "otlp"
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in _EXPORTER_NAMES]
    if unknown:
        msg = f"{variable} must list otlp, console or none (comma-separated), got {raw!r}"
        raise ConfigurationError(msg)
    if "none" in names:
        return []
    return names  # type: ignore[return-value]  # each one of the Literal's values, checked above


# signal -> (the OTLP exporter module under opentelemetry.exporter.otlp.proto.<transport>, its class)
_OTLP_EXPORTERS = {
    "traces": ("trace_exporter", "OTLPSpanExporter"),
    "metrics": ("metric_exporter", "OTLPMetricExporter"),
}


def _otlp_exporter(signal: str, endpoint: str | None, protocol: Protocol, headers: Mapping[str, str] | None) -> Any:
    """The OTLP exporter of ``signal`` (``traces`` or ``metrics``) for ``protocol``, imported on use (the gRPC
    exporters load grpcio)."""
    url = _signal_endpoint(endpoint, protocol, signal)
    kwargs: dict[str, Any] = {"headers": dict(headers)} if headers else {}
    if url is not None:
        kwargs["endpoint"] = url
    transport = "grpc" if protocol == "grpc" else "http"
    if transport == "grpc" and url is not None and url.startswith("http://"):
        kwargs["insecure"] = True
    module_name, class_name = _OTLP_EXPORTERS[signal]
    module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{transport}.{module_name}")
    return getattr(module, class_name)(**kwargs)


@dataclass(frozen=True)
class _OwnExport:
    """Where loratrace's own providers export: the OTLP endpoint, protocol and headers, the resource they
    describe, and the list their OTLP exporters are added to (to shut down with the set-up)."""

    endpoint: str | None
    protocol: Protocol
    headers: Mapping[str, str] | None
    resource: Resource
    built: list[WatchedSpanExporter | WatchedMetricExporter]

    def otlp_exporter(self, signal: str) -> Any:
        return _otlp_exporter(signal, self.endpoint, self.protocol, self.headers)


def _own_tracer_provider(export: _OwnExport, watch: EndpointWatch) -> TracerProvider:
    """loratrace's tracer provider, exporting as ``OTEL_TRACES_EXPORTER`` says (OTLP by default); its OTLP
    exporters are added to ``export.built``."""
    provider = TracerProvider(resource=export.resource)
    for name in _exporters("traces"):
        if name == "otlp":
            watched = WatchedSpanExporter(export.otlp_exporter("traces"), watch)
            export.built.append(watched)
            exporter: SpanExporter = watched
        else:
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporter = ConsoleSpanExporter(out=sys.stdout)  # the stdout of now, not of the SDK's import
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _own_meter_provider(export: _OwnExport, watch: EndpointWatch) -> MeterProvider | None:
    """loratrace's meter provider, exporting as ``OTEL_METRICS_EXPORTER`` says; None for ``none``. Its OTLP
    exporters are added to ``export.built``."""
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

    readers = []
    for name in _exporters("metrics"):
        if name == "otlp":
            exporter: Any = WatchedMetricExporter(export.otlp_exporter("metrics"), watch)
            export.built.append(exporter)
        else:
            exporter = ConsoleMetricExporter(out=sys.stdout)
        readers.append(PeriodicExportingMetricReader(exporter))
    if not readers:
        return None
    return MeterProvider(metric_readers=readers, resource=export.resource)


def _available(names: Sequence[str] | None) -> list[str]:
    if names is None:
        return [name for name, (_, _, target) in _INSTRUMENTORS.items() if importlib.util.find_spec(target)]
    unknown = [name for name in names if name not in _INSTRUMENTORS]
    if unknown:
        msg = f"loratrace.instrument(libraries=...) got unknown {unknown!r}; choose from {sorted(_INSTRUMENTORS)}"
        raise ConfigurationError(msg)
    return list(names)


def instrument(
    *,
    endpoint: str | None = None,
    protocol: Protocol | None = None,
    headers: Mapping[str, str] | None = None,
    store: str | os.PathLike[str] | None = None,
    service_name: str | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    libraries: Sequence[str] | None = None,
) -> Instrumentation:
    """Turn loratrace on: adapter-tagged spans and metrics for every supported library that is installed.

    \b
    Example::

        import loratrace
        loratrace.instrument()                                # OTLP/HTTP to http://127.0.0.1:4318
        loratrace.instrument(endpoint="http://collector:4318")
        loratrace.instrument(store="./traces")                # straight into a local loratrace store

    Providers: ``tracer_provider`` / ``meter_provider`` when given, else the application's global SDK providers
    when it configured them, else loratrace's own. Endpoint: the argument, else the standard
    ``OTEL_EXPORTER_OTLP_*`` variables, else ``http://127.0.0.1:4318`` (``:4317`` for gRPC). With ``store=`` spans
    are written into that folder in the collector's layout, and no metrics are exported (every figure the metrics
    carry is on the spans). Calling it again while instrumented warns and returns the existing setup.
    """
    global _state
    with _lock:
        if _state is not None:
            warnings.warn(
                "loratrace.instrument() was already called; call loratrace.uninstrument() first to change the "
                "set-up. Keeping the existing one.",
                LoratraceWarning,
                stacklevel=2,
            )
            return _state
        if store is not None and endpoint is not None:
            msg = "loratrace.instrument() takes endpoint= or store=, not both: spans go to one place"
            raise ConfigurationError(msg)
        chosen = _available(libraries)
        chosen_protocol = _resolve_protocol(protocol)
        owns_tracer = owns_meter = False
        traces_watch = EndpointWatch(_effective_url(endpoint, chosen_protocol, "traces"))
        metrics_watch = traces_watch.for_url(_effective_url(endpoint, chosen_protocol, "metrics"))
        watches: list[EndpointWatch] = []
        own_exporters: list[WatchedSpanExporter | WatchedMetricExporter] = []
        resource = _resource(service_name)
        own_export = _OwnExport(endpoint, chosen_protocol, headers, resource, own_exporters)
        if tracer_provider is None:
            global_provider = trace.get_tracer_provider()
            if isinstance(global_provider, TracerProvider) and store is None:
                tracer_provider = global_provider
            else:
                sdk_provider = TracerProvider(resource=resource)
                if store is not None:
                    from loratrace.collector.embedded import StoreSpanExporter

                    try:
                        store_exporter = StoreSpanExporter(store)
                    except OSError as exc:
                        msg = (
                            f"loratrace.instrument(store=...) cannot use {os.fspath(store)!r} as a store folder "
                            f"({exc.strerror or exc}); pass a folder path, created when missing"
                        )
                        raise StoreError(msg) from exc
                    sdk_provider.add_span_processor(BatchSpanProcessor(store_exporter))
                else:
                    sdk_provider = _own_tracer_provider(own_export, traces_watch)
                    watches.append(traces_watch)
                tracer_provider, owns_tracer = sdk_provider, True
        if meter_provider is None:
            global_meter_provider = metrics.get_meter_provider()
            own_meter = None
            if isinstance(global_meter_provider, MeterProvider):
                meter_provider = global_meter_provider
            elif store is None:
                try:
                    own_meter = _own_meter_provider(own_export, metrics_watch)
                except Exception:
                    # no set-up is kept, so nothing would ever shut down the tracer provider built above
                    if owns_tracer:
                        _call_until(tracer_provider.shutdown, time.monotonic() + 5.0)  # type: ignore[attr-defined]
                    raise
            if own_meter is not None:
                meter_provider, owns_meter = own_meter, True
                if metrics_watch not in watches:
                    watches.append(metrics_watch)
            elif meter_provider is None:
                meter_provider = metrics.NoOpMeterProvider()
        state = Instrumentation(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            owns_tracer_provider=owns_tracer,
            owns_meter_provider=owns_meter,
            endpoint_watches=tuple(watches),
            own_exporters=tuple(own_exporters),
        )
        for name in chosen:
            module_name, class_name, _ = _INSTRUMENTORS[name]
            instrumentor = getattr(importlib.import_module(module_name), class_name)()
            if instrumentor.is_instrumented_by_opentelemetry:
                warnings.warn(
                    f"the {name} library is already instrumented by loratrace (opentelemetry-instrument?); "
                    "leaving that instrumentation in place",
                    LoratraceWarning,
                    stacklevel=2,
                )
                continue
            instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
            if instrumentor.is_instrumented_by_opentelemetry:
                state.instrumentors[name] = instrumentor
        _state = state
        return state


def uninstrument(*, timeout_millis: int = 5_000) -> None:
    """Undo ``loratrace.instrument()``: remove every patch, flush and shut down the providers it created.

    Returns within ``timeout_millis``: the providers' shutdown exports what is pending, and with an endpoint that
    hangs (or refuses, and is retried) the SDK waits its exporter's timeout per batch (17 s, 10.7 s when
    refused). At the deadline loratrace's own OTLP exporters are shut down: what is still being exported is
    dropped, the request in flight ends at its socket's timeout, and no exporter goes on retrying.
    """
    global _state
    with _lock:
        state, _state = _state, None
    if state is None:
        return
    deadline = time.monotonic() + timeout_millis / 1000
    for instrumentor in state.instrumentors.values():
        instrumentor.uninstrument()
    finisher.drain(max(0.0, deadline - time.monotonic()))
    if state.owns_tracer_provider:
        # owned: the SDK providers loratrace built, which have shutdown (the API types do not)
        _call_until(state.tracer_provider.shutdown, deadline)  # type: ignore[attr-defined]
    if state.owns_meter_provider:
        _call_until(state.meter_provider.shutdown, deadline)  # type: ignore[attr-defined]
    if state.own_exporters:
        # A provider's shutdown that outlasted the deadline goes on in the background, and its exporter would go on
        # retrying for its whole timeout. Shut down, an OTLP/HTTP exporter stops retrying at once; a gRPC one first
        # waits for its export in flight, hence the thread.
        _call_until(lambda: [exporter.shutdown() for exporter in state.own_exporters], deadline)


def _call_until(call: Any, deadline: float) -> None:
    """Run ``call`` on the flush thread, waiting for it until ``deadline`` (monotonic) at most."""

    def run() -> None:
        try:
            call()
        except Exception:
            logger.warning("loratrace could not shut down %r", call, exc_info=True)

    _calls.call(run, deadline - time.monotonic())


def force_flush(timeout_millis: int = 30_000) -> bool:
    """Export every span and metric recorded so far (useful at the end of a script or a test).

    Generation spans are completed off the serving thread; this first waits for that, then flushes the providers.
    """
    deadline = time.monotonic() + timeout_millis / 1000
    if not finisher.drain(timeout_millis / 1000):
        return False
    state = _state
    if state is None:
        return _flush_provider(trace.get_tracer_provider(), deadline)
    return state.force_flush(max(0, int((deadline - time.monotonic()) * 1000)))
