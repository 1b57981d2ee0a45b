"""A generation's profile, its metrics, and the recorder an instrumentor starts generations with.

The profile is what a generation serves and how it is named (model, adapter, start attributes, the variant and
fallback rules); the metrics are the GenAI histograms; the recorder binds one instrumentor's tracer, metrics and
provider name, and starts ``Generation`` spans (``loratrace.runtime.generation``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.metrics import Meter
from opentelemetry.trace import SpanKind, Tracer

from loratrace import semconv
from loratrace.runtime.generation import (
    AnnouncedIds,
    Generation,
    export_request,
    lend_announced_ids,
    return_announced_ids,
)

_TRUTHY = frozenset({"true", "1", "yes", "on"})


def capture_content_enabled() -> bool:
    """Prompt and completion text are recorded only when the GenAI capture variable is true."""
    return os.environ.get(semconv.CAPTURE_CONTENT_ENV, "").strip().lower() in _TRUTHY


class GenerationMetrics:
    """The GenAI histograms, labelled only with low-cardinality values."""

    def __init__(self, meter: Meter) -> None:
        self.duration = meter.create_histogram(
            semconv.METRIC_OPERATION_DURATION, unit="s", description="Duration of a generation call"
        )
        self.tokens = meter.create_histogram(
            semconv.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Input and output tokens per generation call",
        )
        self.ttft = meter.create_histogram(
            semconv.METRIC_TIME_TO_FIRST_TOKEN, unit="s", description="Time to the first generated token"
        )

    def record(
        self,
        labels: Mapping[str, Any],
        *,
        duration_s: float,
        input_tokens: int | None,
        output_tokens: int | None,
        ttft_s: float | None,
        error_type: str | None = None,
    ) -> None:
        if error_type is not None:
            labels = {**labels, semconv.ERROR_TYPE: error_type}
        self.duration.record(duration_s, labels)
        if input_tokens is not None:
            self.tokens.record(input_tokens, {**labels, semconv.GEN_AI_TOKEN_TYPE: "input"})
        if output_tokens is not None:
            self.tokens.record(output_tokens, {**labels, semconv.GEN_AI_TOKEN_TYPE: "output"})
        if ttft_s is not None:
            self.ttft.record(ttft_s, labels)


@dataclass(slots=True, kw_only=True, eq=False)  # eq=False: profiles compare and hash by identity
class GenerationProfile:
    """What a generation serves and how it is named: its model, adapter and start attributes.

    The same for every call of one model with one adapter state, so an instrumentor can build it once and reuse it
    (the Hugging Face wrapper keeps one per model and adapter reading); the start attributes and metric labels of
    a generation outside any ``loratrace.context`` scope are then merged once per profile too.
    """

    operation: str
    request_model: str
    response_model: str | None
    attributes: Mapping[str, Any]
    adapter_name: str | None
    base_model: str | None
    _plain: tuple[str, dict[str, Any], dict[str, Any]] | None = field(default=None, init=False, repr=False)

    def span_name(self) -> str:
        """``{operation} {model that served}``: backends list spans by name (Phoenix showed
        ``text_completion tiny-llama`` for every adapter of a PeftModel). The asked-for model when none served."""
        return f"{self.operation} {self.response_model or self.request_model}"

    def start_attributes(
        self,
        provider: str,
        scope_attributes: Mapping[str, Any] | None = None,
        served_after_fallback: bool = False,
        carries_fallback: bool = False,
        fallback_reason: str | None = None,
    ) -> dict[str, Any]:
        """The start attributes (a new dict). The variant is what actually served (``adapter`` when an adapter did,
        else ``base``), except that a scope declaring ``shadow`` keeps it: mirrored traffic is a routing fact the
        model call cannot see. ``loratrace.fallback`` is true only on the generation that carries a fallback
        (see ``mark_fallback``); ``loratrace.served_after_fallback`` on every generation after one."""
        merged: dict[str, Any] = {
            semconv.GEN_AI_OPERATION_NAME: self.operation,
            semconv.GEN_AI_PROVIDER_NAME: provider,
            semconv.GEN_AI_REQUEST_MODEL: self.request_model,
            semconv.OPENINFERENCE_SPAN_KIND: semconv.OPENINFERENCE_SPAN_KIND_LLM,
            semconv.LLM_PROVIDER: provider,
            semconv.LLM_SYSTEM: provider,
            **self.attributes,
        }
        if scope_attributes:
            merged.update(scope_attributes)
        if self.response_model is None:
            # nothing served (a request for a model the server does not have): no response model, no variant
            merged.pop(semconv.VARIANT, None)
        else:
            merged[semconv.GEN_AI_RESPONSE_MODEL] = self.response_model
            merged[semconv.LLM_MODEL_NAME] = self.response_model
            if merged.get(semconv.VARIANT) != semconv.VARIANT_SHADOW:
                merged[semconv.VARIANT] = semconv.VARIANT_ADAPTER if self.adapter_name else semconv.VARIANT_BASE
        merged[semconv.FALLBACK] = carries_fallback
        if carries_fallback and fallback_reason:
            merged[semconv.FALLBACK_REASON] = fallback_reason
        if served_after_fallback:
            merged[semconv.SERVED_AFTER_FALLBACK] = True
        return merged

    def labels(self, provider: str, merged: Mapping[str, Any]) -> dict[str, Any]:
        """Metric labels: low-cardinality values only."""
        labels = {
            semconv.GEN_AI_OPERATION_NAME: self.operation,
            semconv.GEN_AI_PROVIDER_NAME: provider,
        }
        variant = merged.get(semconv.VARIANT)
        if variant is not None:
            labels[semconv.VARIANT] = variant
        if self.adapter_name:
            labels[semconv.ADAPTER_NAME] = self.adapter_name
        if self.base_model:
            labels[semconv.BASE_MODEL_NAME] = self.base_model
        route = merged.get(semconv.ROUTE_NAME)
        if route is not None:
            labels[semconv.ROUTE_NAME] = route
        return labels

    def plain(self, provider: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start attributes and labels of a generation outside any scope, merged once (callers copy before
        changing them). Two threads racing here only merge them twice."""
        plain = self._plain
        if plain is None or plain[0] != provider:
            attributes = self.start_attributes(provider)
            plain = self._plain = (provider, attributes, self.labels(provider, attributes))
        return plain[1], plain[2]


class GenerationRecorder:
    """Starts generation spans for one instrumentor (one provider), with its tracer and metrics."""

    def __init__(self, tracer: Tracer, metrics: GenerationMetrics | None, *, provider: str) -> None:
        self.tracer = tracer
        self.metrics = metrics
        self.provider = provider
        self.announced_ids: AnnouncedIds | None
        self.announced_ids, self.new_ids = lend_announced_ids(tracer)
        # Asked for after each burst of the finisher, so a burst's spans are exported together at once instead of
        # waiting in a BatchSpanProcessor for its schedule delay (5 s by default). While ~400 finished spans
        # waited there, the serving thread's model calls ran slower: PeftModel.generate's own work by ~25 µs at
        # the median, 40-60 µs in the 3 s after a burst (bench/bench_transformers_two_cores.py, docs/benchmarks.md);
        # with them exported at once, by none. The export runs on loratrace's export thread, so an exporter waiting
        # on an unreachable endpoint holds no call and the next burst for at most a bounded wait.
        self.request_export: Callable[[], object] | None = export_request(tracer)

    def close(self) -> None:
        """Give the tracer its own id generator back once no recorder needs announced ids (at uninstrument)."""
        announced, self.announced_ids = self.announced_ids, None
        if announced is not None:
            return_announced_ids(self.tracer, announced)

    def start(
        self,
        *,
        span_name: str | None = None,
        kind: SpanKind = SpanKind.CLIENT,
        parent: otel_context.Context | None = None,
        start_time: int | None = None,
        **profile: Any,
    ) -> Generation:
        """Start a generation serving ``GenerationProfile(**profile)`` (operation, models, adapter, attributes).

        The span carries the profile's attributes, the release context and the common names. The variant is what
        actually served (``adapter`` when ``adapter_name`` is set, else ``base``), except that a scope declaring
        ``shadow`` keeps it: mirrored traffic is a routing fact the model call cannot see.
        """
        generation_profile = GenerationProfile(**profile)
        return Generation(self, generation_profile, parent, start_time_ns=start_time, name=span_name, kind=kind)
