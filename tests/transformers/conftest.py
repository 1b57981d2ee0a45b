"""Fixtures for the transformers + PEFT instrumentor: SDK providers with in-memory exporters, tiny models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from loratrace.demo.tiny_model import TinyModels
from loratrace.instrumentation.transformers import TransformersInstrumentor
from tests.support.hf import Telemetry, make_telemetry


@pytest.fixture
def uninstrumented() -> Iterator[Telemetry]:
    """Providers only: the test instruments (after setting its environment); this fixture cleans up."""
    telemetry = make_telemetry()
    yield telemetry
    instrumentor = TransformersInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def telemetry(uninstrumented: Telemetry, monkeypatch: pytest.MonkeyPatch) -> Telemetry:
    """TransformersInstrumentor on, content capture off."""
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    TransformersInstrumentor().instrument(
        tracer_provider=uninstrumented.tracer_provider, meter_provider=uninstrumented.meter_provider
    )
    return uninstrumented


@pytest.fixture(scope="module")
def tokenizer(tiny_models: TinyModels) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_models.base)
