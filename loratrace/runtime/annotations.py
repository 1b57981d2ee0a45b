"""Helpers that annotate the current generation: fallbacks, structured-output attempts and evaluations.

"The current generation" is, in order: the generation being produced right now (called from a streamer or a
logits processor), else the latest generation of the enclosing ``loratrace.context`` scope, which stays open for
exactly this until the next generation or the end of the scope.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span

from loratrace import semconv
from loratrace._values import evaluation_error
from loratrace.errors import ConfigurationError, LoratraceWarning
from loratrace.runtime.generation import Generation

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
from loratrace.runtime.release_scope import current_scope

_MAX_ERROR_LENGTH = 1024
_NO_GENERATION = (
    "loratrace.{helper}() found no current generation: call it inside `with loratrace.context(...)` after the "
    "model call it describes (or pass span=...); nothing was recorded"
)


def current_generation_span() -> Span | None:
    active = trace.get_current_span()  # inside the model call, the generation is the current span
    if isinstance(active, Generation) and active.is_recording():
        return active
    scope = current_scope()
    if scope is not None:
        pending = scope.current_generation()
        if pending is not None and pending.is_recording():
            return pending
    return None


def mark_fallback(reason: str | None = None) -> None:
    """Mark the request as fallen back (usually from an adapter to the base model).

    The fallback is counted once: the current generation (the answer given up on) gets ``loratrace.fallback=true``
    and ``loratrace.fallback.reason``; with no generation yet in the scope, the next generation gets them. Every
    generation started later in the same scope gets ``loratrace.served_after_fallback=true``: it answers the
    fallen-back request.
    """
    if reason is not None and not isinstance(reason, str):
        msg = f"loratrace.mark_fallback(reason=...) takes a string, got {type(reason).__name__} {reason!r}"
        raise ConfigurationError(msg)
    scope = current_scope()
    span = current_generation_span()
    if scope is not None:
        scope.set_fallback(reason, carried=span is not None)
    if span is not None:
        span.set_attribute(semconv.FALLBACK, True)
        if reason:
            span.set_attribute(semconv.FALLBACK_REASON, reason)
    elif scope is None:
        warnings.warn(_NO_GENERATION.format(helper="mark_fallback"), LoratraceWarning, stacklevel=2)


def record_schema_attempt(*, valid: bool, error: str | None = None) -> int:
    """Count one structured-output attempt in the scope and flag whether the current generation validated.

    Sets ``loratrace.schema.attempts`` (this attempt's number in the scope, so a retry has attempts > 1),
    ``loratrace.schema.valid`` and, for a failed attempt, ``loratrace.schema.error``. Returns the attempt number,
    or 0 when there was no generation to annotate.
    """
    if not isinstance(valid, bool):
        msg = f"loratrace.record_schema_attempt(valid=...) takes True or False, got {valid!r}"
        raise ConfigurationError(msg)
    span = current_generation_span()
    if span is None:
        warnings.warn(_NO_GENERATION.format(helper="record_schema_attempt"), LoratraceWarning, stacklevel=2)
        return 0
    scope = current_scope()
    attempts = scope.count_schema_attempt() if scope is not None else 1
    attributes: dict[str, Any] = {semconv.SCHEMA_ATTEMPTS: attempts, semconv.SCHEMA_VALID: valid}
    if error is not None:
        attributes[semconv.SCHEMA_ERROR] = str(error)[:_MAX_ERROR_LENGTH]
    span.set_attributes(attributes)
    return attempts


def record_eval(
    name: str,
    *,
    score: float | None = None,
    label: str | None = None,
    passed: bool | None = None,
    explanation: str | None = None,
    span: Span | ReadableSpan | None = None,
) -> None:
    """Emit a ``gen_ai.evaluation.result`` event for the current generation (or ``span``).

    When the target span has already ended, the event goes on a short child span named
    ``evaluation <name>`` that copies the generation's adapter and context attributes, so the evaluation still
    joins to the generation and groups by adapter.
    """
    problem = evaluation_error(name, score, passed, called="loratrace.record_eval")
    if problem is not None:
        raise ConfigurationError(problem)
    target = span if span is not None else current_generation_span()
    if target is None:
        warnings.warn(_NO_GENERATION.format(helper="record_eval"), LoratraceWarning, stacklevel=2)
        return
    attributes: dict[str, Any] = {semconv.GEN_AI_EVALUATION_NAME: name}
    if score is not None:
        attributes[semconv.GEN_AI_EVALUATION_SCORE_VALUE] = float(score)
    if label is not None:
        attributes[semconv.GEN_AI_EVALUATION_SCORE_LABEL] = str(label)
    if passed is not None:
        attributes[semconv.EVALUATION_PASSED] = passed
    if explanation is not None:
        attributes[semconv.GEN_AI_EVALUATION_EXPLANATION] = str(explanation)
    if isinstance(target, Span) and target.is_recording():
        target.add_event(semconv.GEN_AI_EVALUATION_RESULT_EVENT, attributes)
        return
    _record_on_child(target, name, attributes)


def _record_on_child(target: Span | ReadableSpan, name: str, attributes: dict[str, Any]) -> None:
    from loratrace._setup import tracer_provider_in_use

    inherited = {
        key: value
        for key, value in (getattr(target, "attributes", None) or {}).items()
        if key.startswith("loratrace.") or key in (semconv.GEN_AI_RESPONSE_MODEL, semconv.GEN_AI_REQUEST_MODEL)
    }
    inherited[semconv.GEN_AI_OPERATION_NAME] = "evaluation"
    tracer = tracer_provider_in_use().get_tracer("loratrace")
    parent = trace.set_span_in_context(trace.NonRecordingSpan(target.get_span_context() or trace.INVALID_SPAN_CONTEXT))
    with tracer.start_as_current_span(f"evaluation {name}", context=parent, attributes=inherited) as child:
        child.add_event(semconv.GEN_AI_EVALUATION_RESULT_EVENT, attributes)
