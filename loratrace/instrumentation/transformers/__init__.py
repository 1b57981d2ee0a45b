"""Hugging Face transformers + PEFT instrumentation: one span per generate call, naming the adapter.

\b
    from loratrace.instrumentation.transformers import TransformersInstrumentor
    TransformersInstrumentor().instrument(tracer_provider=provider, meter_provider=meter_provider)

``loratrace.instrument()`` does this for you. Patching waits until transformers / PEFT are imported.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from loratrace import semconv
from loratrace._version import __version__
from loratrace.instrumentation._generation import GenerationMetrics, GenerationRecorder
from loratrace.instrumentation.transformers import _patching
from loratrace.instrumentation.transformers.package import _instruments

__all__ = ["TransformersInstrumentor"]


class TransformersInstrumentor(BaseInstrumentor):
    """Traces ``generate`` on transformers models and PeftModels, with the active adapter's identity."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        tracer = trace.get_tracer(__name__, __version__, tracer_provider=kwargs.get("tracer_provider"))
        meter = metrics.get_meter(__name__, __version__, meter_provider=kwargs.get("meter_provider"))
        recorder = GenerationRecorder(tracer, GenerationMetrics(meter), provider=semconv.PROVIDER_HUGGINGFACE)
        _patching.enable(recorder)

    def _uninstrument(self, **kwargs: Any) -> None:
        _patching.disable()
