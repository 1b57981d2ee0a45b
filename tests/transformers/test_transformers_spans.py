"""One span per generate call (per prompt row of a batch), naming the adapter that actually served: base,
adapters, switching, disabling, merging, several adapters, batches, streamers, errors. Real tiny Llama + real PEFT
LoRA adapters."""

from __future__ import annotations

import json

import pytest
from opentelemetry.trace import StatusCode

from loratrace import semconv
from loratrace.instrumentation._adapter_identity import identity_from_directory
from tests.support.hf import SPECS, Telemetry, expected_completion, load_base, load_peft

ADAPTER_KEYS = {
    semconv.ADAPTER_NAME,
    semconv.ADAPTER_ID,
    semconv.ADAPTER_TYPE,
    semconv.ADAPTER_RANK,
    semconv.ADAPTER_ALPHA,
    semconv.ADAPTER_TARGET_MODULES,
    semconv.ADAPTER_MERGED,
    semconv.ADAPTER_SOURCE,
    semconv.ADAPTER_NAMES,
}
PROMPT = "Invoices are due within"


def _generate(model, tokenizer, prompt=PROMPT, **kwargs):
    inputs = tokenizer([prompt], return_tensors="pt")
    kwargs.setdefault("max_new_tokens", 6)
    kwargs.setdefault("do_sample", False)
    return inputs, model.generate(**inputs, **kwargs)


def _assert_adapter(attributes, tiny_models, name, *, merged=False):
    spec = SPECS[name]
    assert attributes[semconv.ADAPTER_NAME] == name
    assert attributes[semconv.ADAPTER_ID] == identity_from_directory(tiny_models.adapters[name], name).id
    assert attributes[semconv.ADAPTER_TYPE] == "lora"
    assert attributes[semconv.ADAPTER_RANK] == spec.rank
    assert attributes[semconv.ADAPTER_ALPHA] == spec.alpha
    assert attributes[semconv.ADAPTER_TARGET_MODULES] == tuple(sorted(spec.target_modules))
    assert attributes[semconv.ADAPTER_MERGED] is merged
    assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == name
    assert attributes[semconv.LLM_MODEL_NAME] == name
    assert attributes[semconv.GEN_AI_REQUEST_MODEL] == "tiny-llama"
    assert attributes[semconv.BASE_MODEL_NAME] == "tiny-llama"
    assert attributes[semconv.VARIANT] == "adapter"


def _assert_no_adapter(attributes):
    assert not ADAPTER_KEYS & set(attributes)
    assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == "tiny-llama"
    assert attributes[semconv.VARIANT] == "base"


def test_base_model_span(telemetry: Telemetry, tiny_models, tokenizer):
    model = load_base(tiny_models)
    inputs, output = _generate(model, tokenizer, max_new_tokens=6)
    span = telemetry.only_span()
    attributes = span.attributes
    prompt_tokens = len(tokenizer(PROMPT)["input_ids"])
    output_tokens, reasons = expected_completion(
        output,
        inputs["input_ids"].shape[1],
        eos=tokenizer.eos_token_id,
        pad=tokenizer.pad_token_id,
        max_new_tokens=6,
    )
    assert span.name == "text_completion tiny-llama"
    assert attributes[semconv.GEN_AI_OPERATION_NAME] == "text_completion"
    assert attributes[semconv.GEN_AI_PROVIDER_NAME] == "huggingface"
    assert attributes[semconv.OPENINFERENCE_SPAN_KIND] == "LLM"
    assert attributes[semconv.GEN_AI_REQUEST_MODEL] == "tiny-llama"
    assert attributes[semconv.BASE_MODEL_NAME] == "tiny-llama"
    _assert_no_adapter(attributes)
    assert attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 6
    assert json.loads(attributes[semconv.LLM_INVOCATION_PARAMETERS]) == {
        "max_new_tokens": 6,
        "do_sample": False,
    }
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == prompt_tokens
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == output_tokens
    assert attributes[semconv.LLM_TOKEN_COUNT_TOTAL] == prompt_tokens + output_tokens
    assert list(attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == reasons
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in attributes  # no streamer, no TTFT
    assert semconv.QUANTIZATION_METHOD not in attributes
    assert span.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("name", ["a1", "a2"])
def test_each_adapter_is_named_with_its_identity(telemetry: Telemetry, tiny_models, tokenizer, name):
    model = load_peft(tiny_models, name)
    _generate(model, tokenizer)
    attributes = telemetry.only_span().attributes  # PeftModel.generate -> base generate: still one span
    _assert_adapter(attributes, tiny_models, name)
    assert attributes[semconv.ADAPTER_SOURCE] == str(tiny_models.adapters[name])


def test_switching_adapters_is_reported_per_call(telemetry: Telemetry, tiny_models, tokenizer):
    model = load_peft(tiny_models, "a1", "a2")
    for name in ("a1", "a2", "a1"):
        model.set_adapter(name)
        _generate(model, tokenizer)
    spans = telemetry.finished()
    assert [span.attributes[semconv.ADAPTER_NAME] for span in spans] == ["a1", "a2", "a1"]
    for span, name in zip(spans, ("a1", "a2", "a1"), strict=True):
        _assert_adapter(span.attributes, tiny_models, name)


def test_an_adapter_reloaded_under_the_same_name_gets_its_new_identity(telemetry: Telemetry, tiny_models, tokenizer):
    """A release that swaps the weights behind a name (delete, load again) is reported with the new id."""
    model = load_peft(tiny_models, "a1")
    _generate(model, tokenizer)
    model.delete_adapter("a1")
    model.load_adapter(str(tiny_models.adapters["a2"]), adapter_name="a1")  # a2's weights, served as "a1"
    model.set_adapter("a1")
    _generate(model, tokenizer)
    before, after = (span.attributes for span in telemetry.finished())
    assert before[semconv.ADAPTER_ID] == identity_from_directory(tiny_models.adapters["a1"], "a1").id
    assert after[semconv.ADAPTER_NAME] == "a1"
    assert after[semconv.ADAPTER_ID] == identity_from_directory(tiny_models.adapters["a2"], "a1").id
    assert after[semconv.ADAPTER_RANK] == SPECS["a2"].rank
    assert after[semconv.ADAPTER_SOURCE] == str(tiny_models.adapters["a2"])


def test_disabled_adapter_is_the_base_model(telemetry: Telemetry, tiny_models, tokenizer):
    model = load_peft(tiny_models, "a2")
    with model.disable_adapter():
        _, disabled_output = _generate(model, tokenizer)
    _, adapter_output = _generate(model, tokenizer)
    _, base_output = _generate(load_base(tiny_models), tokenizer)
    disabled, enabled, _base = telemetry.finished()
    _assert_no_adapter(disabled.attributes)
    _assert_adapter(enabled.attributes, tiny_models, "a2")
    # what the span says is what served: the disabled call produced the base model's tokens
    assert disabled_output.tolist() == base_output.tolist()
    assert adapter_output.tolist() != base_output.tolist()


def test_disabled_adapter_layers_are_the_base_model(telemetry: Telemetry, tiny_models, tokenizer):
    model = load_peft(tiny_models, "a1")
    model.base_model.disable_adapter_layers()
    _generate(model, tokenizer)
    model.base_model.enable_adapter_layers()
    _generate(model, tokenizer)
    disabled, enabled = telemetry.finished()
    _assert_no_adapter(disabled.attributes)
    _assert_adapter(enabled.attributes, tiny_models, "a1")


def test_merged_layers_are_reported(telemetry: Telemetry, tiny_models, tokenizer):
    model = load_peft(tiny_models, "a1")
    model.merge_adapter()
    _generate(model, tokenizer)
    model.unmerge_adapter()
    _generate(model, tokenizer)
    merged, unmerged = telemetry.finished()
    _assert_adapter(merged.attributes, tiny_models, "a1", merged=True)
    _assert_adapter(unmerged.attributes, tiny_models, "a1", merged=False)


def test_merge_and_unload_keeps_the_adapter_attributed(telemetry: Telemetry, tiny_models, tokenizer):
    from transformers import LlamaForCausalLM

    model = load_peft(tiny_models, "a1", "a2")
    model.set_adapter("a2")
    _, adapter_output = _generate(model, tokenizer)
    merged_model = model.merge_and_unload()
    assert type(merged_model) is LlamaForCausalLM
    _, merged_output = _generate(merged_model, tokenizer)
    spans = telemetry.finished()
    _assert_adapter(spans[1].attributes, tiny_models, "a2", merged=True)
    assert spans[1].attributes[semconv.ADAPTER_SOURCE] == str(tiny_models.adapters["a2"])
    assert merged_output.tolist() == adapter_output.tolist()


def test_unload_drops_the_adapter(telemetry: Telemetry, tiny_models, tokenizer):
    model = load_peft(tiny_models, "a1")
    _generate(model, tokenizer)
    plain = model.unload()
    _generate(plain, tokenizer)
    with_adapter, unloaded = telemetry.finished()
    _assert_adapter(with_adapter.attributes, tiny_models, "a1")
    _assert_no_adapter(unloaded.attributes)


def test_generate_on_the_model_inside_a_peft_model_reports_its_live_adapter(
    telemetry: Telemetry, tiny_models, tokenizer
):
    model = load_peft(tiny_models, "a1")
    _generate(model.get_base_model(), tokenizer)  # LoRA layers are injected into this model
    _assert_adapter(telemetry.only_span().attributes, tiny_models, "a1")


def test_several_active_adapters_are_one_combined_adapter(telemetry: Telemetry, tiny_models, tokenizer):
    model = load_peft(tiny_models, "a2", "a1")
    model.base_model.set_adapter(["a2", "a1"])
    _generate(model, tokenizer)
    _generate(model, tokenizer)
    first, second = telemetry.finished()
    attributes = first.attributes
    member_ids = {identity_from_directory(path, name).id for name, path in tiny_models.adapters.items()}
    assert attributes[semconv.ADAPTER_NAME] == "a1+a2"
    assert attributes[semconv.ADAPTER_NAMES] == ("a1", "a2")
    assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == "a1+a2"
    assert attributes[semconv.ADAPTER_ID].startswith("sha256:")
    assert attributes[semconv.ADAPTER_ID] not in member_ids
    assert second.attributes[semconv.ADAPTER_ID] == attributes[semconv.ADAPTER_ID]
    assert attributes[semconv.ADAPTER_TYPE] == "lora"
    # ranks 4 and 8, alphas 8 and 16 differ: no single value is true for the combination
    assert semconv.ADAPTER_RANK not in attributes
    assert semconv.ADAPTER_ALPHA not in attributes
    union = sorted(set(SPECS["a1"].target_modules) | set(SPECS["a2"].target_modules))
    assert attributes[semconv.ADAPTER_TARGET_MODULES] == tuple(union)


def test_batch_of_prompts_with_padding_is_one_span_per_row(telemetry: Telemetry, tiny_models, tokenizer):
    prompts = ["Hello world", "The quick brown fox jumps"]
    model = load_peft(tiny_models, "a2")
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    spans = telemetry.finished()
    assert len(spans) == 2
    assert sum(len(tokenizer(prompt)["input_ids"]) for prompt in prompts) < inputs["input_ids"].numel()  # padded
    every_reason = []
    for row, (prompt, span) in enumerate(zip(prompts, spans, strict=True)):
        attributes = span.attributes
        output_tokens, reasons = expected_completion(
            output[row : row + 1],
            inputs["input_ids"].shape[1],
            eos=tokenizer.eos_token_id,
            pad=tokenizer.pad_token_id,
            max_new_tokens=8,
        )
        every_reason += reasons
        _assert_adapter(attributes, tiny_models, "a2")
        assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == len(tokenizer(prompt)["input_ids"])
        assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == output_tokens
        assert list(attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == reasons
        assert attributes[semconv.BATCH_SIZE] == 2
        assert attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 8
    # the fixture's adapter ends one row early, so both finish paths run
    assert sorted(every_reason) == ["length", "stop"]
    assert spans[0].context.span_id != spans[1].context.span_id
    (point,) = telemetry.metric_points()[semconv.METRIC_OPERATION_DURATION]
    assert point.count == 2  # one generation per row in the metrics too


def test_several_returned_sequences_and_dict_output(telemetry: Telemetry, tiny_models, tokenizer):
    import torch

    model = load_peft(tiny_models, "a1")
    prompts = ["Hello world", "Return a JSON object"]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    torch.manual_seed(7)
    output = model.generate(
        **inputs, max_new_tokens=5, do_sample=True, num_return_sequences=3, return_dict_in_generate=True
    )
    assert output.sequences.shape[0] == 6
    spans = telemetry.finished()
    assert len(spans) == 2  # one per prompt, each with its three returned sequences
    for row, span in enumerate(spans):
        attributes = span.attributes
        output_tokens, reasons = expected_completion(
            output.sequences[row * 3 : row * 3 + 3],
            inputs["input_ids"].shape[1],
            eos=tokenizer.eos_token_id,
            pad=tokenizer.pad_token_id,
            max_new_tokens=5,
        )
        assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == int(inputs["attention_mask"][row].sum())
        assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == output_tokens
        assert list(attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == reasons
        assert len(reasons) == 3
        assert attributes[semconv.GEN_AI_REQUEST_CHOICE_COUNT] == 3
        assert json.loads(attributes[semconv.LLM_INVOCATION_PARAMETERS]) == {
            "max_new_tokens": 5,
            "num_return_sequences": 3,
            "do_sample": True,
        }


def test_sampling_parameters_are_recorded(telemetry: Telemetry, tiny_models, tokenizer):
    model = load_base(tiny_models)
    _generate(model, tokenizer, max_new_tokens=3, do_sample=True, temperature=0.7, top_p=0.9, top_k=20)
    attributes = telemetry.only_span().attributes
    assert attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 3
    assert attributes[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.7
    assert attributes[semconv.GEN_AI_REQUEST_TOP_P] == 0.9
    assert attributes[semconv.GEN_AI_REQUEST_TOP_K] == 20


def test_streamer_gets_every_token_and_ttft_is_recorded(telemetry: Telemetry, tiny_models, tokenizer):
    from transformers.generation.streamers import BaseStreamer

    class Collector(BaseStreamer):
        def __init__(self):
            self.puts = []
            self.ended = 0

        def put(self, value):
            self.puts.append(value.reshape(-1).tolist())

        def end(self):
            self.ended += 1

    streamer = Collector()
    model = load_peft(tiny_models, "a1")
    _, output = _generate(model, tokenizer, streamer=streamer, max_new_tokens=6)
    span = telemetry.only_span()
    received = [token for put in streamer.puts for token in put]
    assert received == output[0].tolist()  # the prompt, then every generated token
    assert streamer.ended == 1
    ttft = span.attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert 0 < ttft < (span.end_time - span.start_time) / 1e9
    (point,) = telemetry.metric_points()[semconv.METRIC_TIME_TO_FIRST_TOKEN]
    assert point.count == 1
    assert point.sum == pytest.approx(ttft)


def test_error_is_recorded_and_reraised_unchanged(telemetry: Telemetry, tiny_models, tokenizer):
    model = load_peft(tiny_models, "a1")
    inputs = tokenizer([PROMPT], return_tensors="pt")
    with pytest.raises(ValueError, match="not used by the model") as raised:
        model.generate(**inputs, max_new_tokens=4, not_a_generate_argument=1)
    span = telemetry.only_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "ValueError"
    _assert_adapter(span.attributes, tiny_models, "a1")
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == str(raised.value)
    # raised by transformers itself, not re-created by a wrapper
    assert raised.traceback[-1].path.parts[-3:-1] == ("transformers", "generation")
    (point,) = telemetry.metric_points()[semconv.METRIC_OPERATION_DURATION]
    assert point.attributes[semconv.ERROR_TYPE] == "ValueError"


def test_quantization_config_as_transformers_stores_it_is_reported(telemetry: Telemetry, tiny_models, tokenizer):
    """The weights are not quantized (bitsandbytes needs a GPU); the config object is transformers' own."""
    from transformers import BitsAndBytesConfig

    model = load_base(tiny_models)
    model.config.quantization_config = BitsAndBytesConfig(load_in_4bit=True)
    _generate(model, tokenizer)
    attributes = telemetry.only_span().attributes
    assert attributes[semconv.QUANTIZATION_METHOD] == "bitsandbytes"
    assert attributes[semconv.QUANTIZATION_BITS] == 4


def test_metrics_carry_only_low_cardinality_labels(telemetry: Telemetry, tiny_models, tokenizer):
    import loratrace

    model = load_peft(tiny_models, "a1")
    with loratrace.context(route="billing", cohort="enterprise", prompt_version="v7"):
        _generate(model, tokenizer)
    span = telemetry.only_span()
    points = telemetry.metric_points()
    allowed = set(semconv.METRIC_LABELS) | {semconv.GEN_AI_TOKEN_TYPE}
    expected_labels = {
        semconv.GEN_AI_OPERATION_NAME: "text_completion",
        semconv.GEN_AI_PROVIDER_NAME: "huggingface",
        semconv.ADAPTER_NAME: "a1",
        semconv.BASE_MODEL_NAME: "tiny-llama",
        semconv.ROUTE_NAME: "billing",
        semconv.VARIANT: "adapter",
    }
    (duration,) = points[semconv.METRIC_OPERATION_DURATION]
    assert dict(duration.attributes) == expected_labels
    tokens = {point.attributes[semconv.GEN_AI_TOKEN_TYPE]: point for point in points[semconv.METRIC_TOKEN_USAGE]}
    assert tokens["input"].sum == span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS]
    assert tokens["output"].sum == span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]
    for name, metric_points in points.items():
        for point in metric_points:
            assert set(point.attributes) <= allowed, name


def test_adapter_source_includes_the_revision(telemetry: Telemetry, tiny_models, tokenizer):
    from peft import PeftModel

    path = tiny_models.adapters["a1"]
    model = PeftModel.from_pretrained(load_base(tiny_models), path, adapter_name="a1", revision="v3")
    _generate(model, tokenizer)
    assert telemetry.only_span().attributes[semconv.ADAPTER_SOURCE] == f"{path}@v3"
