"""Instrumenting and uninstrumenting, content capture, pipelines, release context, annotations, fail open."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest
import wrapt
from opentelemetry.trace import StatusCode

import loratrace
from loratrace import semconv
from loratrace.errors import LoratraceWarning
from loratrace.instrumentation.transformers import TransformersInstrumentor, _content
from loratrace.instrumentation.transformers._wrappers import PATCHES
from tests.support.hf import SPECS, Telemetry, load_base, load_peft

PROMPT = "Invoices are due within"
CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
CONTENT_KEYS = {
    semconv.GEN_AI_INPUT_MESSAGES,
    semconv.GEN_AI_OUTPUT_MESSAGES,
    semconv.INPUT_VALUE,
    semconv.OUTPUT_VALUE,
}


def _instrument(telemetry: Telemetry) -> None:
    TransformersInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )


def _patched_methods(*, capture: bool = False) -> dict[tuple[type, str], object]:
    from peft.peft_model import PeftModel, PeftModelForCausalLM, PeftModelForSeq2SeqLM
    from peft.tuners.tuners_utils import BaseTuner
    from transformers.generation.utils import GenerationMixin
    from transformers.pipelines.base import Pipeline

    targets = [
        (GenerationMixin, "generate"),
        (PeftModel, "generate"),
        (PeftModelForCausalLM, "generate"),
        (PeftModelForSeq2SeqLM, "generate"),
        (PeftModel, "load_adapter"),
        (BaseTuner, "merge_and_unload"),
        (BaseTuner, "unload"),
    ]
    if capture:  # the pipeline is wrapped only to hand its tokenizer to content capture
        targets.append((Pipeline, "__call__"))
    return {(owner, name): owner.__dict__[name] for owner, name in targets}


@pytest.mark.parametrize("capture", [False, True], ids=["content-off", "content-on"])
def test_uninstrument_restores_the_original_methods(
    uninstrumented: Telemetry, tiny_models, tokenizer, monkeypatch, capture
):
    from transformers.pipelines.base import Pipeline

    monkeypatch.setenv(CAPTURE, "true" if capture else "false")
    originals = _patched_methods(capture=True)
    _instrument(uninstrumented)
    for key, wrapped in _patched_methods(capture=capture).items():
        assert isinstance(wrapped, wrapt.FunctionWrapper), key
        assert wrapped.__wrapped__ is originals[key]
    assert isinstance(Pipeline.__dict__["__call__"], wrapt.FunctionWrapper) is capture
    TransformersInstrumentor().uninstrument()
    assert _patched_methods(capture=True) == originals
    assert all(current is originals[key] for key, current in _patched_methods(capture=True).items())
    model = load_peft(tiny_models, "a1")
    model.generate(**tokenizer([PROMPT], return_tensors="pt"), max_new_tokens=3)
    assert uninstrumented.finished() == []
    # an import hook firing after uninstrument does nothing
    import transformers.generation.utils

    PATCHES._on_import(transformers.generation.utils)
    assert _patched_methods(capture=True) == originals
    # and instrumenting again works
    _instrument(uninstrumented)
    model.generate(**tokenizer([PROMPT], return_tensors="pt"), max_new_tokens=3)
    assert uninstrumented.only_span().attributes[semconv.ADAPTER_NAME] == "a1"


def test_instrumenting_again_reuses_the_tracer_without_stacking_id_generators(
    uninstrumented: Telemetry, tiny_models, tokenizer
):
    """The SDK caches one tracer per scope: each instrument() must not wrap the previous id generator again,
    and uninstrument() gives the tracer the provider's own generator back."""
    from loratrace._version import __version__
    from loratrace.instrumentation import transformers as instrumentation

    provider = uninstrumented.tracer_provider
    tracer = provider.get_tracer(instrumentation.__name__, __version__)
    assert tracer.id_generator is provider.id_generator
    model = load_peft(tiny_models, "a1")
    inputs = tokenizer([PROMPT], return_tensors="pt")
    for _ in range(3):
        _instrument(uninstrumented)
        assert tracer.id_generator.fallback is provider.id_generator
        model.generate(**inputs, max_new_tokens=2)
        TransformersInstrumentor().uninstrument()
        assert tracer.id_generator is provider.id_generator
    spans = uninstrumented.finished()
    assert len(spans) == 3
    assert len({span.context.span_id for span in spans}) == 3


def test_instrumenting_twice_warns_and_never_raises(telemetry: Telemetry, tiny_models, tokenizer, caplog):
    with caplog.at_level(logging.WARNING, logger="opentelemetry.instrumentation.instrumentor"):
        _instrument(telemetry)
    assert "already instrumented" in caplog.text
    load_base(tiny_models).generate(**tokenizer([PROMPT], return_tensors="pt"), max_new_tokens=2)
    assert len(telemetry.finished()) == 1  # still one span per call, not two


def test_loratrace_instrument_twice_warns(uninstrumented: Telemetry):
    try:
        loratrace.instrument(
            tracer_provider=uninstrumented.tracer_provider,
            meter_provider=uninstrumented.meter_provider,
            libraries=["transformers"],
        )
        with pytest.warns(LoratraceWarning, match="already called"):
            loratrace.instrument(libraries=["transformers"])
        assert TransformersInstrumentor().is_instrumented_by_opentelemetry
    finally:
        loratrace.uninstrument()
    assert not TransformersInstrumentor().is_instrumented_by_opentelemetry


def test_instrument_imports_nothing_heavy_and_works_without_peft(tiny_models):
    """In a fresh interpreter: instrument() leaves transformers unimported, and PEFT is optional."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["peft"] = None  # as if PEFT were not installed
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry.metrics import NoOpMeterProvider
        import loratrace
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        loratrace.instrument(
            tracer_provider=provider, meter_provider=NoOpMeterProvider(), libraries=["transformers"]
        )
        heavy = [name for name in ("torch", "transformers", "peft.peft_model") if sys.modules.get(name)]
        assert heavy == [], heavy
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained({str(tiny_models.base)!r})
        model = AutoModelForCausalLM.from_pretrained({str(tiny_models.base)!r})
        model.generate(**tokenizer(["Hello"], return_tensors="pt"), max_new_tokens=2, do_sample=False)
        loratrace.force_flush()
        (span,) = exporter.get_finished_spans()
        assert span.attributes["loratrace.base_model.name"] == "tiny-llama", dict(span.attributes)
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_content_is_not_captured_by_default(telemetry: Telemetry, tiny_models, tokenizer):
    load_base(tiny_models).generate(**tokenizer([PROMPT], return_tensors="pt"), max_new_tokens=4)
    assert not CONTENT_KEYS & set(telemetry.only_span().attributes)


def test_content_capture_on(uninstrumented: Telemetry, tiny_models, tokenizer, monkeypatch):
    monkeypatch.setenv(CAPTURE, "true")
    _instrument(uninstrumented)
    model = load_peft(tiny_models, "a1")
    inputs = tokenizer([PROMPT], return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    attributes = uninstrumented.only_span().attributes
    prompt = tokenizer.decode(inputs["input_ids"][0], skip_special_tokens=True)
    completion = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    (reason,) = attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]
    assert attributes[semconv.INPUT_VALUE] == prompt
    assert attributes[semconv.OUTPUT_VALUE] == completion
    assert json.loads(attributes[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": prompt}]}
    ]
    assert json.loads(attributes[semconv.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": completion}], "finish_reason": reason}
    ]


def test_pipeline_call_is_one_span_with_the_adapter_and_its_tokenizer(
    uninstrumented: Telemetry, tiny_models, tokenizer, monkeypatch
):
    from transformers import pipeline

    monkeypatch.setenv(CAPTURE, "true")
    _instrument(uninstrumented)
    model = load_peft(tiny_models, "a2")
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    (answer,) = generator(PROMPT, max_new_tokens=5, do_sample=False, return_full_text=False)
    span = uninstrumented.only_span()
    attributes = span.attributes
    assert attributes[semconv.ADAPTER_NAME] == "a2"
    assert attributes[semconv.ADAPTER_RANK] == SPECS["a2"].rank
    assert attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 5
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == len(tokenizer(PROMPT)["input_ids"])
    assert attributes[semconv.OUTPUT_VALUE].strip() == answer["generated_text"].strip()
    assert model not in _content._LOADED  # the pipeline's tokenizer was used, none was loaded from disk


def test_release_context_reaches_spans_across_threads_and_tasks(telemetry: Telemetry, tiny_models, tokenizer):
    model = load_peft(tiny_models, "a1")
    inputs = tokenizer([PROMPT], return_tensors="pt")

    def call():
        return model.generate(**inputs, max_new_tokens=3, do_sample=False)

    with loratrace.context(route="billing", cohort="enterprise"), ThreadPoolExecutor(1) as pool:
        pool.submit(contextvars.copy_context().run, call).result()

    async def serve(cohort: str) -> None:
        with loratrace.context(cohort=cohort):
            await asyncio.to_thread(call)

    async def main() -> None:
        await asyncio.gather(serve("free"), serve("pro"))

    with loratrace.context(route="support", prompt_version="v3"):
        asyncio.run(main())
    seen = sorted(
        (
            span.attributes[semconv.ROUTE_NAME],
            span.attributes[semconv.COHORT],
            span.attributes.get(semconv.PROMPT_VERSION),
        )
        for span in telemetry.finished()
    )
    assert seen == [("billing", "enterprise", None), ("support", "free", "v3"), ("support", "pro", "v3")]
    assert all(span.attributes[semconv.ADAPTER_NAME] == "a1" for span in telemetry.finished())


def test_annotations_land_on_the_generation(telemetry: Telemetry, tiny_models, tokenizer):
    model = load_peft(tiny_models, "a1")
    inputs = tokenizer([PROMPT], return_tensors="pt")
    with loratrace.context(route="extract", cohort="enterprise"):
        model.generate(**inputs, max_new_tokens=3)
        loratrace.record_schema_attempt(valid=False, error="missing field 'plan'")
        model.generate(**inputs, max_new_tokens=3)
        loratrace.record_schema_attempt(valid=True)
        loratrace.record_eval("json_valid", score=1.0, passed=True)
        loratrace.mark_fallback(reason="adapter answer needed a retry")
    first, second = telemetry.finished()
    assert first.attributes[semconv.SCHEMA_ATTEMPTS] == 1
    assert first.attributes[semconv.SCHEMA_VALID] is False
    assert first.attributes[semconv.SCHEMA_ERROR] == "missing field 'plan'"
    assert first.attributes[semconv.FALLBACK] is False
    assert second.attributes[semconv.SCHEMA_ATTEMPTS] == 2
    assert second.attributes[semconv.SCHEMA_VALID] is True
    assert second.attributes[semconv.FALLBACK] is True
    assert second.attributes[semconv.FALLBACK_REASON] == "adapter answer needed a retry"
    (event,) = second.events
    assert event.name == semconv.GEN_AI_EVALUATION_RESULT_EVENT
    assert dict(event.attributes) == {
        semconv.GEN_AI_EVALUATION_NAME: "json_valid",
        semconv.GEN_AI_EVALUATION_SCORE_VALUE: 1.0,
        semconv.EVALUATION_PASSED: True,
    }
    assert second.attributes[semconv.ADAPTER_NAME] == "a1"


def test_fails_open_when_the_output_is_not_what_it_reads(telemetry: Telemetry, tiny_models, tokenizer, caplog):
    """A custom decoding function may return anything; loratrace cannot count tokens but changes nothing."""
    returned = {"texts": ["an answer in a shape loratrace does not read"]}

    def custom_decoding(model, input_ids, **kwargs):
        return returned

    model = load_peft(tiny_models, "a1")
    # the outcome is read off the calling thread (loratrace.runtime.finisher): wait for it inside the log capture
    with caplog.at_level(logging.DEBUG, logger="loratrace"):
        result = model.generate(**tokenizer([PROMPT], return_tensors="pt"), custom_generate=custom_decoding)
        span = telemetry.only_span()
    assert result is returned
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes[semconv.ADAPTER_NAME] == "a1"
    assert semconv.GEN_AI_USAGE_OUTPUT_TOKENS not in span.attributes
    assert "could not read the outcome" in caplog.text


def test_stop_string_ends_with_stop_and_uses_the_given_tokenizer(
    uninstrumented: Telemetry, tiny_models, tokenizer, monkeypatch
):
    model = load_base(tiny_models)
    inputs = tokenizer([PROMPT], return_tensors="pt")
    width = inputs["input_ids"].shape[1]
    free_run = model.generate(**inputs, max_new_tokens=10, do_sample=False)  # not instrumented yet
    assert tokenizer.eos_token_id not in free_run[0, width:].tolist()  # unconstrained, it runs to the limit
    stop = tokenizer.decode(free_run[0, width + 2 : width + 3])
    monkeypatch.setenv(CAPTURE, "true")
    _instrument(uninstrumented)
    stopped = model.generate(**inputs, max_new_tokens=10, do_sample=False, stop_strings=[stop], tokenizer=tokenizer)
    generated = stopped.shape[1] - width
    assert generated <= 3
    attributes = uninstrumented.only_span().attributes
    assert list(attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == generated
    assert json.loads(attributes[semconv.LLM_INVOCATION_PARAMETERS])["stop_strings"] == [stop]
    assert attributes[semconv.OUTPUT_VALUE] == tokenizer.decode(stopped[0, width:], skip_special_tokens=True)
    assert model not in _content._LOADED  # generate(tokenizer=...) was used, none was loaded from disk


def test_pending_spans_keep_no_scores_or_cache_of_the_result_alive(telemetry: Telemetry, tiny_models, tokenizer):
    """Spans are finished off the calling thread, later; what waits for that holds the generated ids and the
    prompt, not the rest of a ``ModelOutput``: scores and a key-value cache can weigh gigabytes on a real model."""
    import gc
    import threading
    import weakref

    from loratrace.runtime.finisher import finisher

    model = load_peft(tiny_models, "a1")
    inputs = tokenizer([PROMPT], return_tensors="pt")
    release = threading.Event()
    finisher.submit(release.wait)  # the finisher thread blocks here: the generation below stays queued
    try:
        result = model.generate(
            **inputs, max_new_tokens=4, do_sample=False, return_dict_in_generate=True, output_scores=True
        )
        scores = weakref.ref(result.scores[0])
        cache = weakref.ref(result.past_key_values)
        sequences = result.sequences
        del result
        gc.collect()
        assert scores() is None
        assert cache() is None
    finally:
        release.set()
    span = telemetry.only_span()
    assert span.attributes[semconv.ADAPTER_NAME] == "a1"
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == sequences.shape[1] - inputs["input_ids"].shape[1]
