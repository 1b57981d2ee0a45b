"""``loratrace.instrument(store=DIR)`` end to end: spans from loratrace's own tracer provider, queryable after
``uninstrument()`` flushes them, in the same columns the collector fills."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind

import loratrace
from loratrace import semconv
from loratrace.store import query, scan_spans


@pytest.fixture
def clean_instrumentation():
    loratrace.uninstrument()
    yield
    loratrace.uninstrument()


@pytest.mark.usefixtures("clean_instrumentation")
def test_instrument_with_a_store_writes_queryable_genai_spans(tmp_path: Path) -> None:
    store = tmp_path / "traces"
    state = loratrace.instrument(store=store, libraries=[], service_name="embedded-svc")
    assert state.instrumentors == {}
    assert state.owns_tracer_provider
    tracer = state.tracer_provider.get_tracer("embedded-test")
    expected = []
    for adapter, tokens in (("a1", (5, 3)), ("a2", (8, 2)), ("a1", (13, 1))):
        with tracer.start_as_current_span(
            f"text_completion {adapter}",
            kind=SpanKind.CLIENT,
            attributes={
                semconv.GEN_AI_OPERATION_NAME: "text_completion",
                semconv.GEN_AI_PROVIDER_NAME: "huggingface",
                semconv.GEN_AI_REQUEST_MODEL: "tiny-llama",
                semconv.GEN_AI_RESPONSE_MODEL: adapter,
                semconv.GEN_AI_USAGE_INPUT_TOKENS: tokens[0],
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: tokens[1],
                semconv.ADAPTER_NAME: adapter,
            },
        ) as span:
            context = span.get_span_context()
            expected.append(
                (
                    format(context.span_id, "016x"),
                    f"text_completion {adapter}",
                    "CLIENT",
                    "embedded-svc",
                    "text_completion",
                    "huggingface",
                    adapter,
                    adapter,
                    tokens[0],
                    tokens[1],
                    "tiny-llama",
                )
            )
    # a BatchSpanProcessor: nothing has to be in the store before uninstrument() flushes it
    loratrace.uninstrument()
    rows = query(
        store,
        "SELECT span_id, name, kind, service_name, operation_name, provider_name, model, adapter_name, "
        "input_tokens, output_tokens, attributes['gen_ai.request.model'] AS requested "
        "FROM spans ORDER BY start_time",
    ).rows()
    assert rows == expected
    totals = query(
        store,
        "SELECT adapter_name, sum(input_tokens) AS i, sum(output_tokens) AS o FROM spans "
        "WHERE adapter_name = ? GROUP BY 1",
        ["a1"],
    ).rows()
    assert totals == [("a1", 18, 4)]
    assert scan_spans(store).select("span_id").collect()["span_id"].sort().to_list() == sorted(
        row[0] for row in expected
    )
    # after uninstrument() the provider is shut down: later spans go nowhere, the store is unchanged
    with state.tracer_provider.get_tracer("late").start_as_current_span("after-uninstrument"):
        pass
    assert query(store, "SELECT count(*) AS n FROM spans")["n"][0] == len(expected)
