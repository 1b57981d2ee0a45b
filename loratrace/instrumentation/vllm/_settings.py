"""What the wrappers share while instrumented: tracer, recorders and metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.metrics import Histogram
from opentelemetry.trace import Tracer

from loratrace import semconv
from loratrace._version import __version__
from loratrace.runtime.recorder import GenerationMetrics, GenerationRecorder


@dataclass(frozen=True)
class Settings:
    tracer: Tracer
    recorder: GenerationRecorder
    # For requests that name no model the server knows: a span, but no metric sample, so an unknown name
    # typed by a client neither inflates the base model's error rate nor becomes a metric label.
    unmetered_recorder: GenerationRecorder
    load_duration: Histogram


def build_settings(tracer_provider: Any = None, meter_provider: Any = None) -> Settings:
    from opentelemetry import metrics, trace

    tracer = trace.get_tracer("loratrace.instrumentation.vllm", __version__, tracer_provider, schema_url=None)
    meter = metrics.get_meter("loratrace.instrumentation.vllm", __version__, meter_provider)
    return Settings(
        tracer=tracer,
        recorder=GenerationRecorder(tracer, GenerationMetrics(meter), provider=semconv.PROVIDER_VLLM),
        unmetered_recorder=GenerationRecorder(tracer, None, provider=semconv.PROVIDER_VLLM),
        load_duration=meter.create_histogram(
            semconv.METRIC_ADAPTER_LOAD_DURATION, unit="s", description="Time to load a LoRA adapter"
        ),
    )
