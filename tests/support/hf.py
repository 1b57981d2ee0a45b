"""Helpers the transformers + PEFT tests share: in-memory telemetry and the tiny models, bare or with adapters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import loratrace
from loratrace.demo.tiny_model import DEFAULT_ADAPTERS, AdapterSpec, TinyModels

SPECS: dict[str, AdapterSpec] = {spec.name: spec for spec in DEFAULT_ADAPTERS}


@dataclass
class Telemetry:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def finished(self) -> list[ReadableSpan]:
        loratrace.force_flush()  # generation spans are completed off the calling thread
        return list(self.spans.get_finished_spans())

    def only_span(self) -> ReadableSpan:
        (span,) = self.finished()
        return span

    def metric_points(self) -> dict[str, list[Any]]:
        loratrace.force_flush()
        data = self.metrics.get_metrics_data()
        points: dict[str, list[Any]] = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
        return points


def make_telemetry() -> Telemetry:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    return Telemetry(spans, reader, tracer_provider, MeterProvider(metric_readers=[reader]))


def load_base(tiny_models: TinyModels) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_models.base, dtype=torch.float32).eval()


def load_peft(tiny_models: TinyModels, *names: str) -> Any:
    """A PeftModel over a fresh base with ``names`` loaded in order; the first is active."""
    from peft import PeftModel

    first, *rest = names
    model = PeftModel.from_pretrained(load_base(tiny_models), tiny_models.adapters[first], adapter_name=first)
    for name in rest:
        model.load_adapter(tiny_models.adapters[name], adapter_name=name)
    return model.eval()


def expected_completion(
    sequences: Any, prompt_width: int, *, eos: int, pad: int, max_new_tokens: int
) -> tuple[int, list[str]]:
    """Output tokens and finish reasons by the rule the instrumentor documents, read row by row."""
    total = 0
    reasons = []
    for row in sequences[:, prompt_width:].tolist():
        if eos in row:
            total += row.index(eos) + 1
            reasons.append("stop")
            continue
        length = len(row)
        while length and row[length - 1] == pad:
            length -= 1
        total += length
        reasons.append("length" if length == max_new_tokens else "stop")
    return total, reasons
