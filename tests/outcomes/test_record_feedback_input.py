"""``loratrace.record_feedback`` refuses what it cannot send correctly, saying what to pass; nothing is recorded."""

from __future__ import annotations

import datetime as dt

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import loratrace
from loratrace import semconv
from loratrace.errors import ConfigurationError

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


@pytest.fixture
def provider():
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    provider.spans = spans
    return provider


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"kind": "thumbs down"}, "feedback kind must be", id="kind"),
        pytest.param({"trace_id": "xyz"}, "trace_id must be 32 hex characters", id="trace"),
        pytest.param({"trace_id": "0" * 32}, "not all zeros", id="zero-trace"),
        pytest.param({"span_id": "12"}, "span_id must be 16 hex characters", id="span"),
        pytest.param({"trace_id": None, "span_id": SPAN}, "needs trace_id= as well", id="span-alone"),
        pytest.param({"trace_id": None}, "needs trace_id=", id="no-target"),
        pytest.param({"at": dt.datetime(2026, 1, 1)}, "timezone-aware datetime", id="naive"),
        pytest.param({"value": [1, 2]}, "takes a number, bool or string", id="value"),
        pytest.param({"attributes": {semconv.FEEDBACK_KIND: "x"}}, "cannot set", id="reserved"),
    ],
)
def test_bad_arguments_raise_and_record_nothing(provider, kwargs, message) -> None:
    arguments = {"kind": "thumbs_down", "trace_id": TRACE, **kwargs}
    kind = arguments.pop("kind")
    with pytest.raises(ConfigurationError, match=message):
        loratrace.record_feedback(kind, tracer_provider=provider, **arguments)
    assert provider.spans.get_finished_spans() == ()


def test_the_span_carries_the_documented_names(provider) -> None:
    at = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.timezone.utc)
    identifier = loratrace.record_feedback(
        "escalation",
        trace_id=TRACE.upper(),
        span_id=SPAN,
        value=3,
        at=at,
        attributes={"ticket.system": "zendesk"},
        tracer_provider=provider,
    )
    (span,) = provider.spans.get_finished_spans()
    assert span.name == semconv.FEEDBACK_SPAN
    assert dict(span.attributes) == {
        "ticket.system": "zendesk",
        semconv.FEEDBACK_KIND: "escalation",
        semconv.FEEDBACK_ID: identifier,
        semconv.FEEDBACK_TRACE_ID: TRACE,
        semconv.FEEDBACK_SPAN_ID: SPAN,
        semconv.FEEDBACK_SOURCE: "api",
        semconv.FEEDBACK_VALUE: 3,
    }
    assert span.start_time == span.end_time == int(at.timestamp()) * 10**9
    assert span.parent is None
    (link,) = span.links
    assert (format(link.context.trace_id, "032x"), format(link.context.span_id, "016x")) == (TRACE, SPAN)


def test_without_a_tracer_provider_it_warns_that_nothing_was_recorded() -> None:
    from opentelemetry.trace import NoOpTracerProvider

    from loratrace.errors import LoratraceWarning

    with pytest.warns(LoratraceWarning, match="the feedback was not recorded"):
        loratrace.record_feedback("thumbs_down", trace_id=TRACE, tracer_provider=NoOpTracerProvider())
