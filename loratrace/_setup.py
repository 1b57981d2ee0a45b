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
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from loratrace._finisher import finisher
from loratrace.errors import ConfigurationError, LoratraceWarning, StoreError

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

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything recorded so far; True when every exporter confirmed in time. Returns within
        ``timeout_millis`` (the exports it started go on in the background)."""
        deadline = time.monotonic() + timeout_millis / 1000
        done = finisher.drain(timeout_millis / 1000)
        for provider in (self.tracer_provider, self.meter_provider):
            done = _flush_provider(provider, deadline) and done
        return done


def _flush_provider(provider: Any, deadline: float) -> bool:
    """``provider.force_flush``, waited for until ``deadline`` (monotonic) at most.

    The SDK's BatchSpanProcessor ignores the timeout it is given (opentelemetry-python#4568) and waits for every
    batch's export: with an endpoint that does not answer, each batch retries to the exporter's own timeout (10 s
    by default), so ``loratrace.force_flush(timeout_millis=5000)`` waited 52 s. The flush runs on a daemon thread
    instead, and what it has not finished by the deadline it finishes in the background.
    """
    flush = getattr(provider, "force_flush", None)
    if flush is None:
        return True
    remaining_s = max(0.0, deadline - time.monotonic())
    outcome: list[bool] = []

    def run() -> None:
        try:
            outcome.append(bool(flush(int(remaining_s * 1000))))
        except Exception:
            logger.warning("loratrace could not flush %r", provider, exc_info=True)
            outcome.append(False)

    thread = threading.Thread(target=run, name="loratrace-force-flush", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # Python 3.12+ starts no thread at interpreter shutdown (a flush from an atexit handler)
        run()
        return bool(outcome and outcome[0])
    thread.join(remaining_s)
    return bool(outcome and outcome[0])


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
    return Resource.create(attributes)  # merges OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES


def _resolve_protocol(protocol: str | None) -> Protocol:
    chosen = (
        protocol
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    )
    if chosen not in ("http/protobuf", "grpc"):
        msg = f"loratrace.instrument(protocol=...) must be 'http/protobuf' or 'grpc', got {chosen!r}"
        raise ConfigurationError(msg)
    return chosen  # type: ignore[return-value]


def _signal_endpoint(endpoint: str | None, protocol: Protocol, signal: str) -> str | None:
    """The per-signal URL for an explicit endpoint; None lets the exporter read OTEL_* or use our default."""
    env_base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    env_signal = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if endpoint is None and (env_signal or env_base):
        return None
    base = endpoint or (DEFAULT_GRPC_ENDPOINT if protocol == "grpc" else DEFAULT_HTTP_ENDPOINT)
    if not base.startswith(("http://", "https://")):
        msg = f"loratrace.instrument(endpoint=...) must start with http:// or https://, got {base!r}"
        raise ConfigurationError(msg)
    if protocol == "grpc":
        return base
    return base.rstrip("/") + f"/v1/{signal}"


def _span_exporter(endpoint: str | None, protocol: Protocol, headers: Mapping[str, str] | None) -> Any:
    url = _signal_endpoint(endpoint, protocol, "traces")
    kwargs: dict[str, Any] = {"headers": dict(headers)} if headers else {}
    if url is not None:
        kwargs["endpoint"] = url
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        if url is not None and url.startswith("http://"):
            kwargs["insecure"] = True
        return GrpcSpanExporter(**kwargs)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(**kwargs)


def _metric_reader(endpoint: str | None, protocol: Protocol, headers: Mapping[str, str] | None) -> Any:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    url = _signal_endpoint(endpoint, protocol, "metrics")
    kwargs: dict[str, Any] = {"headers": dict(headers)} if headers else {}
    if url is not None:
        kwargs["endpoint"] = url
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        if url is not None and url.startswith("http://"):
            kwargs["insecure"] = True
        return PeriodicExportingMetricReader(GrpcMetricExporter(**kwargs))
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return PeriodicExportingMetricReader(OTLPMetricExporter(**kwargs))


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
        if tracer_provider is None:
            global_provider = trace.get_tracer_provider()
            if isinstance(global_provider, TracerProvider) and store is None:
                tracer_provider = global_provider
            else:
                sdk_provider = TracerProvider(resource=_resource(service_name))
                if store is not None:
                    from loratrace.store.embedded import StoreSpanExporter

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
                    exporter = _span_exporter(endpoint, chosen_protocol, headers)
                    sdk_provider.add_span_processor(BatchSpanProcessor(exporter))
                tracer_provider, owns_tracer = sdk_provider, True
        if meter_provider is None:
            global_meter_provider = metrics.get_meter_provider()
            if isinstance(global_meter_provider, MeterProvider):
                meter_provider = global_meter_provider
            elif store is not None:
                meter_provider = metrics.NoOpMeterProvider()
            else:
                reader = _metric_reader(endpoint, chosen_protocol, headers)
                meter_provider = MeterProvider(metric_readers=[reader], resource=_resource(service_name))
                owns_meter = True
        state = Instrumentation(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            owns_tracer_provider=owns_tracer,
            owns_meter_provider=owns_meter,
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
    refused). What is still being exported at the deadline finishes, or is dropped, in the background.
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
        _call_until(state.tracer_provider.shutdown, deadline)  # type: ignore[attr-defined]
    if state.owns_meter_provider:
        _call_until(state.meter_provider.shutdown, deadline)  # type: ignore[attr-defined]


def _call_until(call: Any, deadline: float) -> None:
    """Run ``call`` on a daemon thread, waiting for it until ``deadline`` (monotonic) at most."""
    thread = threading.Thread(target=_logged(call), name="loratrace-shutdown", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # no new threads at interpreter shutdown (an atexit handler): run it here
        _logged(call)()
        return
    thread.join(max(0.0, deadline - time.monotonic()))


def _logged(call: Any) -> Any:
    def run() -> None:
        try:
            call()
        except Exception:
            logger.warning("loratrace could not shut down %r", call, exc_info=True)

    return run


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
