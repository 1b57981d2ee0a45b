"""``loratrace.record_feedback``: a user outcome (thumbs-down, escalation, ...) about an earlier answer.

Feedback arrives minutes to days after the answer, often from another process or system, so it travels as its
own OTLP span (``loratrace.feedback``) rather than as an event on the answer's span, which has long been exported.
The span names its target by ``loratrace.feedback.trace_id`` / ``.span_id`` and links to it; the store's
``feedback`` view joins it to the generation it is about. Any language can send the same span.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
import warnings
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags

from loratrace import semconv
from loratrace.errors import ConfigurationError, LoratraceWarning

_KIND = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")

FeedbackValue = float | int | bool | str


def check_kind(kind: Any) -> str:
    """``kind`` when it is a usable feedback kind (it becomes the metric name ``feedback:<kind>``)."""
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        msg = f"feedback kind must be 1-64 letters, digits, '_', '.' or '-' (e.g. 'thumbs_down'), got {kind!r}"
        raise ConfigurationError(msg)
    return kind


def check_trace_id(trace_id: Any) -> str:
    """The trace id as 32 lower-case hex characters (the W3C / OTLP JSON form)."""
    return _hex_id(trace_id, _TRACE_ID, "trace_id must be 32 hex characters (a W3C trace id, not all zeros)")


def check_span_id(span_id: Any) -> str:
    """The span id as 16 lower-case hex characters."""
    return _hex_id(span_id, _SPAN_ID, "span_id must be 16 hex characters (not all zeros)")


def _hex_id(value: Any, pattern: re.Pattern[str], rule: str) -> str:
    text = value.strip().lower() if isinstance(value, str) else None
    if text is None or not pattern.fullmatch(text) or int(text, 16) == 0:
        msg = f"feedback {rule}, got {value!r}"
        raise ConfigurationError(msg)
    return text


def time_unix_nano(at: dt.datetime | float | int | None) -> int:
    """``at`` (an aware datetime, or seconds since the epoch; None for now) in nanoseconds since the epoch."""
    if at is None:
        return time.time_ns()
    if isinstance(at, dt.datetime):
        if at.tzinfo is None:
            msg = f"feedback at= needs a timezone-aware datetime (e.g. datetime.now(timezone.utc)), got {at!r}"
            raise ConfigurationError(msg)
        return int(at.timestamp() * 1_000_000) * 1000
    if isinstance(at, int | float) and not isinstance(at, bool):
        return int(at * 1_000_000) * 1000
    msg = f"feedback at= takes a timezone-aware datetime or seconds since the epoch, got {at!r}"
    raise ConfigurationError(msg)


def _current_target() -> tuple[str, str] | None:
    from loratrace.runtime.annotations import current_generation_span

    span = current_generation_span() or trace.get_current_span()
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def record_feedback(
    kind: str,
    *,
    trace_id: str | None = None,
    span_id: str | None = None,
    value: FeedbackValue | None = None,
    at: dt.datetime | float | None = None,
    attributes: Mapping[str, Any] | None = None,
    feedback_id: str | None = None,
    source: str = "api",
    tracer_provider: trace.TracerProvider | None = None,
) -> str:
    """Record a user outcome about an earlier answer; returns the feedback's id.

    Parameters
    ----------
    kind
        What happened: ``"thumbs_down"``, ``"escalation"``, ``"manual_review"``, ``"reopened"``...
    trace_id, span_id
        The answer it is about, as hex ids (``span_id`` optional: without it, the trace's last generation). When
        both are omitted, the current generation (or current span) of the calling code.
    value
        Optional rating, score or label.
    at
        When it happened (an aware datetime, or epoch seconds); now when omitted. Late feedback keeps its time.
    attributes
        Extra span attributes (e.g. ``{"ticket.system": "zendesk"}``); they cannot replace the feedback's own.
    feedback_id
        A stable id (a ticket event id): recording the same id twice keeps one row in the store. A random id
        when omitted.
    source
        Where it came from, kept as ``loratrace.feedback.source``.
    tracer_provider
        Where the span goes; by default loratrace's (``loratrace.instrument()``), else the global provider.

    \b
    Example::

        loratrace.instrument(endpoint="http://collector:4318", libraries=[])   # e.g. in a webhook handler
        loratrace.record_feedback("thumbs_down", trace_id=event["trace_id"], at=event["time"])
    """
    check_kind(kind)
    if trace_id is None and span_id is not None:
        msg = "loratrace.record_feedback(span_id=...) needs trace_id= as well: a span id is unique only in its trace"
        raise ConfigurationError(msg)
    if trace_id is None:
        target = _current_target()
        if target is None:
            msg = (
                "loratrace.record_feedback() needs trace_id= (and optionally span_id=) of the answer it is about, "
                "or to be called while that answer's span is current"
            )
            raise ConfigurationError(msg)
        trace_id, span_id = target
    trace_hex = check_trace_id(trace_id)
    span_hex = check_span_id(span_id) if span_id is not None else None
    if value is not None and not isinstance(value, FeedbackValue):
        msg = f"loratrace.record_feedback(value=...) takes a number, bool or string, got {value!r}"
        raise ConfigurationError(msg)
    if feedback_id is not None and (not isinstance(feedback_id, str) or not feedback_id):
        msg = f"loratrace.record_feedback(feedback_id=...) takes a non-empty string, got {feedback_id!r}"
        raise ConfigurationError(msg)
    start_ns = time_unix_nano(at)
    identifier = feedback_id or uuid.uuid4().hex
    span_attributes: dict[str, Any] = dict(attributes or {})
    reserved = [key for key in span_attributes if key.startswith("loratrace.feedback.")]
    if reserved:
        msg = f"loratrace.record_feedback(attributes=...) cannot set {sorted(reserved)}: pass them as arguments"
        raise ConfigurationError(msg)
    span_attributes.update(
        {
            semconv.FEEDBACK_KIND: kind,
            semconv.FEEDBACK_ID: identifier,
            semconv.FEEDBACK_TRACE_ID: trace_hex,
            semconv.FEEDBACK_SOURCE: source,
        }
    )
    if span_hex is not None:
        span_attributes[semconv.FEEDBACK_SPAN_ID] = span_hex
    if value is not None:
        span_attributes[semconv.FEEDBACK_VALUE] = value
    links = []
    if span_hex is not None:
        target_context = SpanContext(
            int(trace_hex, 16), int(span_hex, 16), is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
        )
        links.append(Link(target_context))
    if tracer_provider is None:
        from loratrace._setup import tracer_provider_in_use

        tracer_provider = tracer_provider_in_use()
    tracer = tracer_provider.get_tracer("loratrace.feedback")
    # a root span of its own: the answer's trace was exported long ago, and a feedback span inside it would count
    # as one of the answer's steps (task completion, "every span succeeded")
    span = tracer.start_span(
        semconv.FEEDBACK_SPAN,
        context=trace.set_span_in_context(trace.INVALID_SPAN),
        kind=SpanKind.INTERNAL,
        attributes=span_attributes,
        links=links,
        start_time=start_ns,
    )
    if not span.is_recording():
        warnings.warn(
            "loratrace.record_feedback() has no tracer provider to send with, so the feedback was not recorded: call "
            "loratrace.instrument(endpoint=..., libraries=[]) first, or pass tracer_provider=...",
            LoratraceWarning,
            stacklevel=2,
        )
    span.end(end_time=start_ns)
    return identifier
