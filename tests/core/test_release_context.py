"""Release context and the annotation helpers, on real SDK spans from the shared generation recorder."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import loratrace
from loratrace import semconv
from loratrace.errors import ConfigurationError, LoratraceWarning
from loratrace.runtime.recorder import GenerationMetrics, GenerationRecorder


def finished(exporter: InMemorySpanExporter) -> tuple:
    """The spans exported so far, once loratrace has completed the ones queued off the calling thread."""
    loratrace.force_flush()
    return exporter.get_finished_spans()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def recorder(provider: TracerProvider, metric_reader: InMemoryMetricReader) -> GenerationRecorder:
    meter_provider = MeterProvider(metric_readers=[metric_reader])
    return GenerationRecorder(
        provider.get_tracer("test"), GenerationMetrics(meter_provider.get_meter("test")), provider="test"
    )


def generate(recorder: GenerationRecorder, adapter: str | None = "a1", output_tokens: int = 3) -> None:
    """One generation the way an instrumentor drives it."""
    generation = recorder.start(
        operation="text_completion",
        request_model="tiny-llama",
        response_model=adapter or "tiny-llama",
        attributes={semconv.ADAPTER_NAME: adapter} if adapter else {},
        adapter_name=adapter,
        base_model="tiny-llama",
    )
    generation.activate()
    try:
        pass
    finally:
        generation.deactivate()
    generation.finish(input_tokens=5, output_tokens=output_tokens, finish_reasons=["stop"])


def test_context_values_land_on_generation_spans(recorder, exporter):
    with loratrace.context(route="billing", cohort="enterprise", prompt_version="v7", dataset_version="d3"):
        generate(recorder)
    (span,) = finished(exporter)
    attributes = dict(span.attributes)
    assert attributes[semconv.ROUTE_NAME] == "billing"
    assert attributes[semconv.COHORT] == "enterprise"
    assert attributes[semconv.PROMPT_VERSION] == "v7"
    assert attributes[semconv.DATASET_VERSION] == "d3"
    assert attributes[semconv.VARIANT] == "adapter"
    assert attributes[semconv.FALLBACK] is False
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    assert attributes[semconv.LLM_TOKEN_COUNT_TOTAL] == 8


def test_nested_scopes_inherit_and_override(recorder, exporter):
    with (
        loratrace.context(route="billing", cohort="smb"),
        loratrace.context(cohort="enterprise", tenant="acme"),
    ):
        generate(recorder)
    generate(recorder)  # outside any scope: no context attributes
    inner, outside = finished(exporter)
    assert inner.attributes[semconv.ROUTE_NAME] == "billing"
    assert inner.attributes[semconv.COHORT] == "enterprise"
    assert inner.attributes["loratrace.context.tenant"] == "acme"
    assert semconv.ROUTE_NAME not in outside.attributes
    assert semconv.COHORT not in outside.attributes


def test_variant_is_what_served_but_shadow_is_kept(recorder, exporter):
    with loratrace.context(variant="adapter"):
        generate(recorder, adapter=None)
    with loratrace.context(variant="shadow"):
        generate(recorder, adapter="a2")
    base, shadow = finished(exporter)
    assert base.attributes[semconv.VARIANT] == "base"
    assert shadow.attributes[semconv.VARIANT] == "shadow"


def test_decorator_on_sync_and_async_functions(recorder, exporter):
    @loratrace.context(route="sync-route")
    def handle() -> None:
        generate(recorder)

    @loratrace.context(route="async-route")
    async def handle_async() -> None:
        generate(recorder)

    handle()
    asyncio.run(handle_async())
    routes = [span.attributes[semconv.ROUTE_NAME] for span in finished(exporter)]
    assert routes == ["sync-route", "async-route"]


def test_context_follows_asyncio_tasks_and_threads_handed_the_context(recorder, exporter):
    async def in_task(cohort: str) -> None:
        with loratrace.context(cohort=cohort):
            await asyncio.sleep(0)
            generate(recorder)

    async def main() -> None:
        with loratrace.context(route="async-route"):
            await asyncio.gather(in_task("c1"), in_task("c2"))

    asyncio.run(main())
    with loratrace.context(route="thread-route"):
        copied = contextvars.copy_context()
        worker = threading.Thread(target=copied.run, args=(generate, recorder))
        worker.start()
        worker.join()
        with ThreadPoolExecutor(max_workers=2) as pool:
            pool.submit(contextvars.copy_context().run, generate, recorder).result()
    # a thread NOT handed the context sees none of it
    bare = threading.Thread(target=generate, args=(recorder,))
    with loratrace.context(route="not-inherited"):
        bare.start()
        bare.join()
    spans = finished(exporter)
    found = sorted(
        ((span.attributes.get(semconv.ROUTE_NAME), span.attributes.get(semconv.COHORT)) for span in spans),
        key=repr,
    )
    assert found == [
        ("async-route", "c1"),
        ("async-route", "c2"),
        ("thread-route", None),
        ("thread-route", None),
        (None, None),
    ]


def test_generation_stays_open_in_scope_for_annotations(recorder, exporter):
    with loratrace.context(route="extract"):
        generate(recorder, adapter="a1")
        assert finished(exporter) == ()  # still open: the answer is being judged
        assert loratrace.record_schema_attempt(valid=False, error="missing field 'seats'") == 1
        loratrace.mark_fallback(reason="schema_invalid")
        generate(recorder, adapter=None)
        assert loratrace.record_schema_attempt(valid=True) == 2
        loratrace.record_eval("exact_match", score=1.0, label="match", passed=True, explanation="equal")
    first, second = finished(exporter)
    assert first.attributes[semconv.SCHEMA_ATTEMPTS] == 1
    assert first.attributes[semconv.SCHEMA_VALID] is False
    assert first.attributes[semconv.SCHEMA_ERROR] == "missing field 'seats'"
    assert first.attributes[semconv.FALLBACK] is True
    assert first.attributes[semconv.FALLBACK_REASON] == "schema_invalid"
    assert second.attributes[semconv.SCHEMA_ATTEMPTS] == 2
    assert second.attributes[semconv.SCHEMA_VALID] is True
    assert second.attributes[semconv.FALLBACK] is False  # the fallback is counted once, on the first
    assert second.attributes[semconv.SERVED_AFTER_FALLBACK] is True
    assert second.attributes[semconv.VARIANT] == "base"
    (event,) = second.events
    assert event.name == semconv.GEN_AI_EVALUATION_RESULT_EVENT
    assert dict(event.attributes) == {
        semconv.GEN_AI_EVALUATION_NAME: "exact_match",
        semconv.GEN_AI_EVALUATION_SCORE_VALUE: 1.0,
        semconv.GEN_AI_EVALUATION_SCORE_LABEL: "match",
        semconv.EVALUATION_PASSED: True,
        semconv.GEN_AI_EVALUATION_EXPLANATION: "equal",
    }
    # the end time is when the call returned, not when the scope closed
    assert first.end_time <= second.start_time


def test_eval_on_an_ended_span_goes_on_a_child_that_keeps_the_adapter(recorder, exporter, provider):
    generate(recorder, adapter="a2")
    (generation,) = finished(exporter)
    loratrace.instrument(tracer_provider=provider, libraries=[])
    try:
        loratrace.record_eval("judge", score=0.25, passed=False, span=generation)
    finally:
        loratrace.uninstrument()
    _, child = finished(exporter)
    assert child.name == "evaluation judge"
    assert child.parent.span_id == generation.context.span_id
    assert child.context.trace_id == generation.context.trace_id
    assert child.attributes[semconv.ADAPTER_NAME] == "a2"
    assert child.events[0].attributes[semconv.EVALUATION_PASSED] is False


def test_helpers_without_a_generation_warn_and_record_nothing(exporter):
    with pytest.warns(LoratraceWarning, match="no current generation"):
        assert loratrace.record_schema_attempt(valid=True) == 0
    with pytest.warns(LoratraceWarning, match="no current generation"):
        loratrace.record_eval("x", score=1.0)
    with pytest.warns(LoratraceWarning, match="no current generation"):
        loratrace.mark_fallback(reason="timeout")
    assert finished(exporter) == ()


def test_fallback_marked_before_any_generation_applies_to_the_next(recorder, exporter):
    with loratrace.context(route="r"):
        loratrace.mark_fallback(reason="adapter_unavailable")
        generate(recorder, adapter=None)
    (span,) = finished(exporter)
    assert span.attributes[semconv.FALLBACK] is True
    assert span.attributes[semconv.FALLBACK_REASON] == "adapter_unavailable"
    assert span.attributes[semconv.SERVED_AFTER_FALLBACK] is True


def test_a_fallback_is_counted_once_and_the_answers_after_it_say_so(recorder, exporter, tmp_path):
    """``mark_fallback()`` flagged every later generation of the scope too, so ``WHERE fallback`` counted
    generations, not fallbacks: one column per meaning now."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from loratrace.collector.decode import RowBuffer

    with loratrace.context(route="extract"):
        generate(recorder, adapter="a2")  # its answer fails validation
        loratrace.mark_fallback(reason="schema_invalid")
        generate(recorder, adapter=None)  # the base model answers instead
        generate(recorder, adapter=None)  # and once more (a retry of the fallback)
    spans = sorted(finished(exporter), key=lambda span: span.start_time)
    facts = [
        (
            span.attributes[semconv.GEN_AI_RESPONSE_MODEL],
            span.attributes[semconv.FALLBACK],
            span.attributes.get(semconv.FALLBACK_REASON),
            span.attributes.get(semconv.SERVED_AFTER_FALLBACK, False),
        )
        for span in spans
    ]
    assert facts == [
        ("a2", True, "schema_invalid", False),
        ("tiny-llama", False, None, True),
        ("tiny-llama", False, None, True),
    ]
    buffer = RowBuffer()
    buffer.add_traces(encode_spans(spans))
    rows = buffer.take()["spans"].sort("start_time").select("fallback", "fallback_reason", "served_after_fallback")
    assert rows.rows() == [(True, "schema_invalid", None), (False, None, True), (False, None, True)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"variant": "canary"}, "must be one of base, adapter, shadow", id="bad-variant"),
        pytest.param({"route": ["a", "b"]}, "takes a str, bool, int or float", id="list-value"),
        pytest.param({"cohort": object()}, "takes a str, bool, int or float", id="object-value"),
    ],
)
def test_bad_context_values_are_rejected_clearly(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        loratrace.context(**kwargs)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda: loratrace.record_schema_attempt(valid="yes"), "True or False", id="schema-valid"),
        pytest.param(lambda: loratrace.record_eval("", score=1.0), "non-empty string", id="eval-name"),
        pytest.param(lambda: loratrace.record_eval("n", score="high"), "takes a number", id="eval-score"),
        pytest.param(lambda: loratrace.mark_fallback(reason=3), "takes a string", id="fallback-reason"),
    ],
)
def test_bad_helper_arguments_are_rejected_clearly(call, message):
    with pytest.raises(ConfigurationError, match=message):
        call()


def test_metrics_carry_only_low_cardinality_labels(recorder, metric_reader):
    with loratrace.context(route="billing", cohort="enterprise", tenant="acme"):
        generate(recorder, adapter="a1")
    loratrace.force_flush()
    data = metric_reader.get_metrics_data()
    seen: dict[str, list[dict]] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                seen[metric.name] = [dict(point.attributes) for point in metric.data.data_points]
    assert set(seen) == {semconv.METRIC_OPERATION_DURATION, semconv.METRIC_TOKEN_USAGE}
    allowed = set(semconv.METRIC_LABELS) | {semconv.GEN_AI_TOKEN_TYPE}
    for points in seen.values():
        for labels in points:
            assert set(labels) <= allowed
            assert labels[semconv.ADAPTER_NAME] == "a1"
            assert labels[semconv.ROUTE_NAME] == "billing"
    assert sorted(labels[semconv.GEN_AI_TOKEN_TYPE] for labels in seen[semconv.METRIC_TOKEN_USAGE]) == [
        "input",
        "output",
    ]


def test_failed_generation_reports_error(recorder, exporter):
    generation = recorder.start(
        operation="text_completion",
        request_model="tiny-llama",
        response_model="tiny-llama",
        attributes={},
        adapter_name=None,
        base_model="tiny-llama",
    )
    generation.fail(ValueError("bad input_ids"))
    (span,) = finished(exporter)
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[semconv.ERROR_TYPE] == "ValueError"
    assert span.events[0].name == "exception"


def test_values_set_during_the_call_win_over_the_start_attributes(recorder, exporter):
    """A fallback marked from inside the call (a streamer, a logits processor) survives the deferred completion."""
    generation = recorder.start(
        operation="text_completion",
        request_model="tiny-llama",
        response_model="a1",
        attributes={semconv.ADAPTER_NAME: "a1"},
        adapter_name="a1",
        base_model="tiny-llama",
    )
    generation.activate()
    loratrace.mark_fallback(reason="stream_stalled")
    generation.deactivate()
    generation.finish(input_tokens=1, output_tokens=1)
    (span,) = finished(exporter)
    assert span.attributes[semconv.FALLBACK] is True
    assert span.attributes[semconv.FALLBACK_REASON] == "stream_stalled"
    assert span.attributes[semconv.ADAPTER_NAME] == "a1"


def test_spans_started_during_the_call_are_children_of_the_generation(provider, recorder, exporter):
    """The generation's SDK span is built later, under the ids it announced while the call ran."""
    app_tracer = provider.get_tracer("app")
    with app_tracer.start_as_current_span("handle request") as request:
        generation = recorder.start(
            operation="text_completion",
            request_model="tiny-llama",
            response_model="tiny-llama",
            attributes={},
            adapter_name=None,
            base_model="tiny-llama",
        )
        generation.activate()
        with app_tracer.start_as_current_span("tokenize inside the call"):
            pass
        generation.deactivate()
        generation.finish(input_tokens=1, output_tokens=1)
    spans = {span.name: span for span in finished(exporter)}
    built = spans["text_completion tiny-llama"]
    assert built.context.span_id == generation.get_span_context().span_id
    assert built.context.trace_id == request.get_span_context().trace_id
    assert built.parent.span_id == request.get_span_context().span_id
    assert spans["tokenize inside the call"].parent.span_id == built.context.span_id


def test_the_providers_id_generator_makes_the_announced_ids(exporter):
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class Sequential(IdGenerator):  # stands for a vendor format (X-Ray's time-prefixed trace ids)
        def __init__(self) -> None:
            self.next = 0x1000

        def generate_span_id(self) -> int:
            self.next += 1
            return self.next

        def generate_trace_id(self) -> int:
            return 0xABC << 96

    provider = TracerProvider(id_generator=Sequential())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    recorder = GenerationRecorder(provider.get_tracer("test"), None, provider="test")
    generation = recorder.start(
        operation="text_completion",
        request_model="m",
        response_model="m",
        attributes={},
        adapter_name=None,
        base_model="m",
    )
    generation.finish()
    (span,) = finished(exporter)
    assert span.context.trace_id == 0xABC << 96
    assert span.context.span_id == 0x1001
