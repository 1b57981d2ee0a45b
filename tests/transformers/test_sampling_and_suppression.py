"""The tracer provider's sampler rules generation spans and the spans started inside the call; OpenTelemetry's
``suppress_instrumentation()`` turns the wrappers off; root spans carry the W3C random-trace-id flag like the SDK's
own. Real transformers + PEFT on the tiny model, real SDK providers."""

from __future__ import annotations

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import TraceFlags

import loratrace
from loratrace.instrumentation.transformers import TransformersInstrumentor
from tests.support.hf import load_peft

PROMPT = "Invoices are due within"


@pytest.fixture
def instrumented():
    """Instrument with the tracer provider the test builds; undo afterwards."""
    made: list[TransformersInstrumentor] = []

    def instrument(provider: TracerProvider) -> None:
        instrumentor = TransformersInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        made.append(instrumentor)

    yield instrument
    for instrumentor in made:
        instrumentor.uninstrument()


def _provider(sampler) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


class _ChildInsideTheCall:
    """A logits processor starting a span inside ``generate``, as a library instrumented by another tracer
    (a tokenizer, an HTTP client) does: it is the generation's child."""

    def __init__(self, tracer) -> None:
        self.tracer = tracer
        self.parents: list = []

    def __call__(self, input_ids, scores):
        from opentelemetry import trace

        self.parents.append(trace.get_current_span().get_span_context())
        with self.tracer.start_as_current_span("inside the call"):
            pass
        return scores


def _generate(model, tokenizer, child: _ChildInsideTheCall | None = None):
    from transformers import LogitsProcessorList

    inputs = tokenizer([PROMPT], return_tensors="pt")
    processors = LogitsProcessorList([child]) if child is not None else None
    return model.generate(**inputs, max_new_tokens=2, do_sample=False, logits_processor=processors)


def test_a_sampler_that_drops_every_trace_drops_the_generation_and_its_children(instrumented, tiny_models, tokenizer):
    """Before: the generation announced itself sampled, so the children started inside the call were exported
    without their parent."""
    provider, exporter = _provider(ParentBased(TraceIdRatioBased(0.0)))
    instrumented(provider)
    child = _ChildInsideTheCall(provider.get_tracer("app"))
    _generate(load_peft(tiny_models, "a1"), tokenizer, child)
    loratrace.force_flush()
    assert exporter.get_finished_spans() == ()
    assert child.parents
    assert not child.parents[0].trace_flags.sampled


def test_a_sampled_root_generation_carries_the_flags_of_the_sdks_own_roots(instrumented, tiny_models, tokenizer):
    provider, exporter = _provider(ParentBased(ALWAYS_ON))
    instrumented(provider)
    with provider.get_tracer("app").start_as_current_span("an SDK root"):
        pass
    child = _ChildInsideTheCall(provider.get_tracer("app"))
    _generate(load_peft(tiny_models, "a1"), tokenizer, child)
    loratrace.force_flush()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    sdk_flags = spans["an SDK root"].context.trace_flags
    assert sdk_flags == TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)  # 0x03
    generation = spans["text_completion a1"]
    assert generation.parent is None
    assert generation.context.trace_flags == sdk_flags
    assert child.parents[0].trace_flags == sdk_flags  # what the call announced to its children
    assert spans["inside the call"].parent.span_id == generation.context.span_id


def test_suppress_instrumentation_turns_the_wrapper_off(instrumented, tiny_models, tokenizer):
    provider, exporter = _provider(ParentBased(ALWAYS_ON))
    instrumented(provider)
    model = load_peft(tiny_models, "a1")
    with suppress_instrumentation():
        _generate(model, tokenizer)
    loratrace.force_flush()
    assert exporter.get_finished_spans() == ()
    _generate(model, tokenizer)  # and on again outside it
    loratrace.force_flush()
    assert [span.name for span in exporter.get_finished_spans()] == ["text_completion a1"]
