"""What an instrumentor's wrappers share while instrumented: tracer, recorders, metrics, content capture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.metrics import Histogram
from opentelemetry.trace import Tracer

from loratrace import semconv
from loratrace._version import __version__
from loratrace.instrumentation.patching import Patches
from loratrace.runtime.finisher import finisher
from loratrace.runtime.recorder import GenerationMetrics, GenerationRecorder, capture_content_enabled


@dataclass(frozen=True, kw_only=True)  # by name only: its two recorders have the same type, a position would swap
class Settings:
    """Fixed when instrumenting; the wrappers each instrumentor installs are built around one."""

    tracer: Tracer
    recorder: GenerationRecorder
    # read once when instrumenting: an environment lookup per call costs more than the rest of a wrapper
    capture_content: bool = False
    # For requests that name no model the server knows (vLLM's server): a span, but no metric sample, so an
    # unknown name typed by a client neither inflates the base model's error rate nor becomes a metric label.
    unmetered_recorder: GenerationRecorder | None = None
    # adapter load times (vLLM loads adapters itself)
    load_duration: Histogram | None = None

    def close(self) -> None:
        """Close the recorders (once their queued spans are built: after ``finisher.drain()``)."""
        self.recorder.close()
        if self.unmetered_recorder is not None:
            self.unmetered_recorder.close()


def build_settings(
    scope: str,
    provider: str,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    *,
    unmetered_recorder: bool = False,
    load_duration: bool = False,
) -> Settings:
    """Settings for the instrumentor whose instrumentation scope is ``scope``, recording as ``provider``."""
    from opentelemetry import metrics, trace

    tracer = trace.get_tracer(scope, __version__, tracer_provider, schema_url=None)
    meter = metrics.get_meter(scope, __version__, meter_provider)
    return Settings(
        tracer=tracer,
        recorder=GenerationRecorder(tracer, GenerationMetrics(meter), provider=provider),
        capture_content=capture_content_enabled(),
        unmetered_recorder=GenerationRecorder(tracer, None, provider=provider) if unmetered_recorder else None,
        load_duration=(
            meter.create_histogram(
                semconv.METRIC_ADAPTER_LOAD_DURATION, unit="s", description="Time to load a LoRA adapter"
            )
            if load_duration
            else None
        ),
    )


def stop_instrumenting(patches: Patches, settings: Settings | None) -> None:
    """Undo an instrumentor: unwrap its patches, then close its recorders once the spans of the calls made while
    instrumented are complete (they are when this returns)."""
    patches.disable()
    finisher.drain()
    if settings is not None:
        settings.close()
