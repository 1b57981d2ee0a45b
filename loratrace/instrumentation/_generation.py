"""The life of one generation span, shared by every instrumentor.

An instrumentor knows how to read its library (which adapter, how many tokens); this module knows what a
generation span is: its name, the release context it inherits, the variant and fallback rules, the metrics it
records, how errors are reported, and the deferred end inside a ``loratrace.context`` scope.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import Meter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from loratrace import semconv
from loratrace._finisher import finisher
from loratrace._release_context import active_generation, current_scope

logger = logging.getLogger(__name__)

_ACTIVE = active_generation()
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


class Generation:
    """One generation span: started by :meth:`GenerationRecorder.start`, then ``activate`` / ``finish``."""

    __slots__ = (
        "_active_token",
        "_context_token",
        "_labels",
        "_metrics",
        "_start_attributes",
        "_start_ns",
        "_start_s",
        "span",
    )

    def __init__(
        self,
        span: Span,
        labels: dict[str, Any],
        metrics: GenerationMetrics | None,
        start_time_ns: int | None = None,
        start_attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self.span = span
        # Applied with the outcome, off the caller's thread (see loratrace._finisher).
        self._start_attributes = start_attributes or {}
        self._labels = labels
        self._metrics = metrics
        self._start_s = time.perf_counter()
        # Set when the span was started after the fact (a batch request span built from vLLM's timestamps).
        self._start_ns = start_time_ns
        self._context_token: object | None = None
        self._active_token: object | None = None

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self._start_s

    def activate(self) -> None:
        """Make the span current for the wrapped call, so library spans and helpers nest under it."""
        self._context_token = otel_context.attach(trace.set_span_in_context(self.span))
        self._active_token = _ACTIVE.set(self.span)

    def deactivate(self) -> None:
        if self._active_token is not None:
            _ACTIVE.reset(self._active_token)  # type: ignore[arg-type]
            self._active_token = None
        if self._context_token is not None:
            otel_context.detach(self._context_token)  # type: ignore[arg-type]
            self._context_token = None

    def finish(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        finish_reasons: Sequence[str] | None = None,
        ttft_s: float | None = None,
        extra: Mapping[str, Any] | None = None,
        register_in_scope: bool = True,
        end_time: int | None = None,
    ) -> None:
        """Set the outcome, record metrics and end the span (deferred inside a scope).

        ``end_time`` (ns since the epoch) ends a span whose timing is known after the fact; the duration
        metric is then ``end_time`` minus the ``start_time`` the span was started with.
        """
        duration_s = self._duration_s(end_time)
        attributes: dict[str, Any] = dict(extra) if extra else {}
        if input_tokens is not None:
            attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
            attributes[semconv.LLM_TOKEN_COUNT_PROMPT] = input_tokens
        if output_tokens is not None:
            attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
            attributes[semconv.LLM_TOKEN_COUNT_COMPLETION] = output_tokens
        if input_tokens is not None and output_tokens is not None:
            attributes[semconv.LLM_TOKEN_COUNT_TOTAL] = input_tokens + output_tokens
        if finish_reasons:
            attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = list(finish_reasons)
        if ttft_s is not None:
            attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttft_s
        measurements = None
        if self._metrics is not None:
            measurements = {
                "duration_s": duration_s,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "ttft_s": ttft_s,
            }
        self._complete(attributes, None, measurements, register_in_scope, end_time)

    def fail(
        self,
        exception: BaseException,
        *,
        register_in_scope: bool = True,
        error_type: str | None = None,
        end_time: int | None = None,
    ) -> None:
        """Report the exception on the span (status ERROR, exception event) and end it. Never raises.

        ``error_type`` overrides the exception's class name, for errors a library returns instead of raising
        (vLLM's server answers an unknown model with an ``ErrorResponse`` of type ``NotFoundError``).
        """
        error_type = error_type or type(exception).__qualname__
        measurements = None
        if self._metrics is not None:
            measurements = {
                "duration_s": self._duration_s(end_time),
                "input_tokens": None,
                "output_tokens": None,
                "ttft_s": None,
                "error_type": error_type,
            }
        self._complete({semconv.ERROR_TYPE: error_type}, exception, measurements, register_in_scope, end_time)

    def _duration_s(self, end_time: int | None) -> float:
        if end_time is not None and self._start_ns is not None:
            return max(0.0, (end_time - self._start_ns) / 1e9)
        return self.elapsed_s

    def _complete(
        self,
        outcome: dict[str, Any],
        exception: BaseException | None,
        measurements: dict[str, Any] | None,
        register_in_scope: bool,
        end_time: int | None,
    ) -> None:
        """Queue the span's attributes, metrics and end; inside a scope the span stays open as its generation."""
        end_ns = end_time if end_time is not None else time.time_ns()
        scope = current_scope() if register_in_scope else None
        finisher.submit(
            _apply_outcome,
            self.span,
            self._start_attributes,
            outcome,
            exception,
            self._metrics,
            self._labels,
            measurements,
            None if scope is not None else end_ns,
        )
        if scope is not None:
            scope.adopt_generation(self.span, end_ns)


def _apply_outcome(
    span: Span,
    start_attributes: Mapping[str, Any],
    outcome: Mapping[str, Any],
    exception: BaseException | None,
    metrics: GenerationMetrics | None,
    labels: Mapping[str, Any],
    measurements: dict[str, Any] | None,
    end_ns: int | None,
) -> None:
    """Runs on the finisher thread. Values the serving code set meanwhile (a fallback marked from a streamer, a
    schema attempt) are newer than the start attributes and win over them."""
    existing = getattr(span, "attributes", None) or {}
    attributes = {key: value for key, value in start_attributes.items() if key not in existing}
    attributes.update(outcome)
    span.set_attributes(attributes)
    if exception is not None:
        span.record_exception(exception)
        span.set_status(Status(StatusCode.ERROR, f"{outcome[semconv.ERROR_TYPE]}: {exception}"))
    if metrics is not None and measurements is not None:
        metrics.record(labels, **measurements)
    if end_ns is not None:
        span.end(end_time=end_ns)


class GenerationRecorder:
    """Starts generation spans for one instrumentor (one provider), with its tracer and metrics."""

    def __init__(self, tracer: Tracer, metrics: GenerationMetrics | None, *, provider: str) -> None:
        self._tracer = tracer
        self._metrics = metrics
        self.provider = provider

    def start(
        self,
        *,
        operation: str,
        request_model: str,
        response_model: str,
        attributes: Mapping[str, Any],
        adapter_name: str | None,
        base_model: str | None,
        span_name: str | None = None,
        kind: SpanKind = SpanKind.CLIENT,
        parent: otel_context.Context | None = None,
        start_time: int | None = None,
    ) -> Generation:
        """Start a span carrying ``attributes`` (model and adapter), the release context and the common names.

        The variant is what actually served (``adapter`` when ``adapter_name`` is set, else ``base``), except that a
        scope declaring ``shadow`` keeps it: mirrored traffic is a routing fact the model call cannot see.
        """
        scope = current_scope()
        merged: dict[str, Any] = {
            semconv.GEN_AI_OPERATION_NAME: operation,
            semconv.GEN_AI_PROVIDER_NAME: self.provider,
            semconv.GEN_AI_REQUEST_MODEL: request_model,
            semconv.GEN_AI_RESPONSE_MODEL: response_model,
            semconv.OPENINFERENCE_SPAN_KIND: semconv.OPENINFERENCE_SPAN_KIND_LLM,
            semconv.LLM_MODEL_NAME: response_model,
            semconv.LLM_PROVIDER: self.provider,
            semconv.LLM_SYSTEM: self.provider,
            **attributes,
        }
        variant = semconv.VARIANT_ADAPTER if adapter_name else semconv.VARIANT_BASE
        fallback = False
        if scope is not None:
            merged.update(scope.attributes)
            if scope.attributes.get(semconv.VARIANT) != semconv.VARIANT_SHADOW:
                merged[semconv.VARIANT] = variant
            if scope.has_fallback:
                fallback = True
                if scope.fallback_reason:
                    merged[semconv.FALLBACK_REASON] = scope.fallback_reason
        else:
            merged[semconv.VARIANT] = variant
        merged[semconv.FALLBACK] = fallback
        # Started bare: attributes cost ~0.5 µs each in the SDK, so they are set with the outcome, off this thread.
        span = self._tracer.start_span(
            span_name or f"{operation} {request_model}",
            context=parent,
            kind=kind,
            start_time=start_time,
        )
        labels = {
            semconv.GEN_AI_OPERATION_NAME: operation,
            semconv.GEN_AI_PROVIDER_NAME: self.provider,
            semconv.VARIANT: merged[semconv.VARIANT],
        }
        if adapter_name:
            labels[semconv.ADAPTER_NAME] = adapter_name
        if base_model:
            labels[semconv.BASE_MODEL_NAME] = base_model
        route = merged.get(semconv.ROUTE_NAME)
        if route is not None:
            labels[semconv.ROUTE_NAME] = route
        return Generation(span, labels, self._metrics, start_time, merged)
