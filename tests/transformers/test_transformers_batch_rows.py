"""A batched generate is one generation span per prompt row, each in its own request scope when given one.
Real tiny Llama + real PEFT LoRA adapters, the SDK's in-memory exporter."""

from __future__ import annotations

import json
import warnings

import pytest
from opentelemetry.trace import StatusCode

import loratrace
from loratrace import semconv
from loratrace.errors import LoratraceWarning
from loratrace.instrumentation.transformers import TransformersInstrumentor
from tests.support.hf import Telemetry, load_base, load_peft

PROMPTS = ["Hello world", "The quick brown fox jumps", "Invoices are due within"]
CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


def _batch(model, tokenizer, prompts=PROMPTS, **kwargs):
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    kwargs.setdefault("max_new_tokens", 4)
    return model.generate(**inputs, do_sample=False, **kwargs)


def _by_example(spans):
    return {span.attributes.get(semconv.EXAMPLE_ID): span for span in spans}


def _evals(span):
    return [dict(event.attributes) for event in span.events if event.name == semconv.GEN_AI_EVALUATION_RESULT_EVENT]


def test_rows_are_served_in_their_request_scopes(telemetry: Telemetry, tiny_models, tokenizer):
    model = load_peft(tiny_models, "a1")
    contexts = [{"example_id": f"q{n}", "cohort": ("smb", "enterprise", "consumer")[n]} for n in range(3)]
    with loratrace.context(dataset_version="golden-v1"), loratrace.request_scopes(contexts) as scopes:
        with scopes.serving():
            _batch(model, tokenizer)
        for index in range(3):
            with scopes.request(index):
                loratrace.record_eval("exact_match", passed=index == 1)
                assert loratrace.record_schema_attempt(valid=True) == 1  # each row counts its own attempts
    spans = _by_example(telemetry.finished())
    assert set(spans) == {"q0", "q1", "q2"}
    for index, example in enumerate(("q0", "q1", "q2")):
        attributes = spans[example].attributes
        assert attributes[semconv.COHORT] == contexts[index]["cohort"]
        assert attributes[semconv.DATASET_VERSION] == "golden-v1"
        assert attributes[semconv.ADAPTER_NAME] == "a1"
        assert attributes[semconv.VARIANT] == "adapter"
        assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == len(tokenizer(PROMPTS[index])["input_ids"])
        assert attributes[semconv.SCHEMA_ATTEMPTS] == 1
        (evaluation,) = _evals(spans[example])
        assert evaluation[semconv.EVALUATION_PASSED] is (index == 1)


def test_serving_indices_map_rows_to_scopes_and_a_single_row_retry_uses_its_scope(
    telemetry: Telemetry, tiny_models, tokenizer
):
    model = load_peft(tiny_models, "a2")
    with loratrace.request_scopes([{"example_id": f"q{n}"} for n in range(4)]) as scopes:
        with scopes.serving([3, 1]):  # a retry of rows 3 and 1, in that order
            _batch(model, tokenizer, PROMPTS[:2])
        with scopes.serving([2]):  # one row: its scope, not the caller's
            _batch(model, tokenizer, PROMPTS[2:])
        with scopes.request(3):
            loratrace.record_eval("judge", score=0.5)
    spans = _by_example(telemetry.finished())
    assert set(spans) == {"q3", "q1", "q2"}
    assert spans["q3"].attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == len(tokenizer(PROMPTS[0])["input_ids"])
    assert spans["q1"].attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == len(tokenizer(PROMPTS[1])["input_ids"])
    assert spans["q2"].attributes[semconv.BATCH_SIZE] == 1
    assert [e[semconv.GEN_AI_EVALUATION_SCORE_VALUE] for e in _evals(spans["q3"])] == [0.5]
    assert not _evals(spans["q1"])


def test_a_batch_in_one_plain_context_is_no_single_generation_to_annotate(telemetry: Telemetry, tiny_models, tokenizer):
    model = load_base(tiny_models)
    with loratrace.context(cohort="smb"):
        model.generate(**tokenizer(["Hello world"], return_tensors="pt"), max_new_tokens=3, do_sample=False)
        _batch(model, tokenizer)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loratrace.record_eval("exact_match", passed=True)  # would have gone to the earlier single call
    assert [w.category for w in caught] == [LoratraceWarning]
    spans = telemetry.finished()
    assert len(spans) == 4
    assert all(span.attributes[semconv.COHORT] == "smb" for span in spans)
    assert not any(_evals(span) for span in spans)
    assert [span.attributes.get(semconv.BATCH_SIZE) for span in spans] == [None, 3, 3, 3]


def test_a_failed_batch_fails_every_row(telemetry: Telemetry, tiny_models, tokenizer):
    model = load_peft(tiny_models, "a1")
    with pytest.raises(ValueError, match="not used by the model"):
        _batch(model, tokenizer, not_a_generate_argument=1)
    spans = telemetry.finished()
    assert len(spans) == 3
    for span in spans:
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes[semconv.ERROR_TYPE] == "ValueError"
        assert span.attributes[semconv.ADAPTER_NAME] == "a1"


def test_content_is_captured_per_row_through_a_batched_pipeline(
    uninstrumented: Telemetry, tiny_models, tokenizer, monkeypatch
):
    from transformers import pipeline

    monkeypatch.setenv(CAPTURE, "true")
    TransformersInstrumentor().instrument(
        tracer_provider=uninstrumented.tracer_provider, meter_provider=uninstrumented.meter_provider
    )
    generator = pipeline("text-generation", model=load_peft(tiny_models, "a2"), tokenizer=tokenizer)
    answers = generator(PROMPTS[:2], max_new_tokens=4, do_sample=False, return_full_text=False, batch_size=2)
    spans = uninstrumented.finished()
    assert len(spans) == 2
    by_prompt = {span.attributes[semconv.INPUT_VALUE]: span for span in spans}
    assert set(by_prompt) == set(PROMPTS[:2])
    for prompt, (answer,) in zip(PROMPTS[:2], answers, strict=True):
        attributes = by_prompt[prompt].attributes
        assert attributes[semconv.ADAPTER_NAME] == "a2"
        assert attributes[semconv.BATCH_SIZE] == 2  # one generate over both prompts
        assert attributes[semconv.OUTPUT_VALUE].strip() == answer["generated_text"].strip()
        (message,) = json.loads(attributes[semconv.GEN_AI_INPUT_MESSAGES])
        assert message["parts"][0]["content"] == prompt
        assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == len(tokenizer(prompt)["input_ids"])
