"""Task verdicts written back to the store as ``gen_ai.evaluation.result`` events, through the collector.

A span cannot be changed once exported, so each verdict goes on a new span in the judged trace: a child of the
trace's last generation (its root span when there is none) named ``evaluation task_completion``, copying that
generation's adapter and release-context attributes. That is the shape ``loratrace.record_eval`` gives a late
evaluation, so the ``evals`` view, drift, report, alerts and gate read task completion like any evaluation. The
span is timestamped at the end of the span it judges, so windowed analyses count it with that answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from loratrace import semconv
from loratrace.runtime.span_sender import SpanSender
from loratrace.tasks.evaluate import TaskResult


def _inherited(attributes: dict[str, Any]) -> dict[str, Any]:
    kept = {
        key: value
        for key, value in attributes.items()
        if key.startswith("loratrace.") or key in (semconv.GEN_AI_RESPONSE_MODEL, semconv.GEN_AI_REQUEST_MODEL)
    }
    return {key: value for key, value in kept.items() if isinstance(value, str | bool | int | float | list)}


def send_results(results: Sequence[TaskResult], *, endpoint: str, auth_token: str | None = None) -> int:
    """Send one evaluation span per result to the collector at ``endpoint``; the number sent."""
    sender = SpanSender(endpoint, service_name="loratrace-evaluate-tasks", auth_token=auth_token)
    tracer = sender.tracer_provider.get_tracer("loratrace.tasks")
    for result in results:
        target = result.target
        parent = SpanContext(
            int(result.trace_id, 16),
            int(target.span_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        attributes = _inherited(dict(target.attributes))
        attributes[semconv.GEN_AI_OPERATION_NAME] = "evaluation"
        attributes[semconv.TASK_WORKFLOW] = result.workflow
        at = target.end_ns
        span = tracer.start_span(
            f"evaluation {semconv.TASK_COMPLETION_EVALUATION}",
            context=trace.set_span_in_context(NonRecordingSpan(parent)),
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=at,
        )
        span.add_event(
            semconv.GEN_AI_EVALUATION_RESULT_EVENT,
            {
                semconv.GEN_AI_EVALUATION_NAME: semconv.TASK_COMPLETION_EVALUATION,
                semconv.GEN_AI_EVALUATION_SCORE_VALUE: 1.0 if result.passed else 0.0,
                semconv.GEN_AI_EVALUATION_SCORE_LABEL: result.label,
                semconv.EVALUATION_PASSED: result.passed,
                semconv.GEN_AI_EVALUATION_EXPLANATION: result.explanation,
            },
            timestamp=at,
        )
        span.end(end_time=at)
    return sender.send()
