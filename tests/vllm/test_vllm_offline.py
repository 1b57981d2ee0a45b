"""Offline vLLM (``LLM.generate`` / ``LLM.chat``) with loratrace: one in-process engine for the whole
module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import loratrace
from loratrace import semconv
from loratrace.demo.tiny_model import TinyModels
from loratrace.instrumentation._adapter_identity import identity_from_directory

pytestmark = pytest.mark.vllm

BASE = "tiny-llama"


class Engine:
    def __init__(self, llm: Any, exporter: InMemorySpanExporter, reader: InMemoryMetricReader, models: TinyModels):
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest

        self.llm = llm
        self.exporter = exporter
        self.reader = reader
        self.models = models
        self.a1 = LoRARequest("a1", 1, str(models.adapters["a1"]))
        self.a2 = LoRARequest("a2", 2, str(models.adapters["a2"]))
        self.greedy = SamplingParams(max_tokens=6, temperature=0.0)

    def spans(self) -> list[ReadableSpan]:
        loratrace.force_flush()  # generation spans are completed off the calling thread
        return list(self.exporter.get_finished_spans())


@pytest.fixture(scope="module")
def engine(tiny_models: TinyModels, vllm_env: dict[str, str]) -> Iterator[Engine]:
    saved = {key: os.environ.get(key) for key in [*vllm_env, "VLLM_ENABLE_V1_MULTIPROCESSING"]}
    os.environ.update(vllm_env, VLLM_ENABLE_V1_MULTIPROCESSING="0")  # in-process engine: ~2.5 s start-up
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    loratrace.instrument(
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
        libraries=["vllm"],
    )
    from vllm import LLM

    llm = LLM(
        model=str(tiny_models.base),
        served_model_name=BASE,
        dtype="float32",
        enforce_eager=True,
        enable_lora=True,
        max_lora_rank=8,
        max_loras=3,  # adapters + 1: vLLM's CPU slot bug (see the notes)
        max_model_len=256,
        disable_log_stats=False,  # per-request timing (queue, first token) on the outputs
    )
    try:
        yield Engine(llm, exporter, reader, tiny_models)
    finally:
        loratrace.uninstrument()
        del llm
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def spans(engine: Engine) -> Engine:
    engine.exporter.clear()
    return engine


def _requests(engine: Engine) -> list[ReadableSpan]:
    return [s for s in engine.spans() if s.name.startswith(("text_completion ", "chat "))]


def test_mixed_batch_names_the_adapter_of_each_request(spans: Engine) -> None:
    engine = spans
    prompts = ["Hello there", "The quick brown fox", "Invoices are due", "Paris is", "Please reset"]
    loras = [None, engine.a1, engine.a2, None, engine.a1]
    outputs = engine.llm.generate(prompts, engine.greedy, lora_request=loras, use_tqdm=False)

    (call,) = [s for s in engine.spans() if s.name == "vllm.LLM.generate"]
    requests = _requests(engine)
    assert len(requests) == len(prompts)
    # the call groups the generations and is not counted as one
    assert semconv.GEN_AI_OPERATION_NAME not in call.attributes
    assert call.attributes[semconv.BATCH_SIZE] == len(prompts)
    by_id = {s.attributes[semconv.GEN_AI_RESPONSE_ID]: s for s in requests}
    identities = {name: identity_from_directory(path, name) for name, path in engine.models.adapters.items()}
    for output, lora in zip(outputs, loras, strict=True):
        span = by_id[output.request_id]
        attributes = span.attributes
        assert span.parent is not None
        assert span.parent.span_id == call.context.span_id
        served = lora.lora_name if lora else BASE
        assert span.name == f"text_completion {served}"
        assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == served
        assert attributes[semconv.LLM_MODEL_NAME] == served
        assert attributes[semconv.BASE_MODEL_NAME] == BASE
        assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == len(output.prompt_token_ids)
        assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == len(output.outputs[0].token_ids)
        assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == (output.outputs[0].finish_reason,)
        assert attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 6
        if lora is None:
            assert attributes[semconv.VARIANT] == semconv.VARIANT_BASE
            assert semconv.ADAPTER_NAME not in attributes
        else:
            identity = identities[lora.lora_name]
            assert attributes[semconv.VARIANT] == semconv.VARIANT_ADAPTER
            assert attributes[semconv.ADAPTER_NAME] == lora.lora_name
            assert attributes[semconv.ADAPTER_ID] == identity.id
            assert attributes[semconv.ADAPTER_RANK] == identity.rank
            assert attributes[semconv.ADAPTER_ALPHA] == identity.alpha
            assert tuple(attributes[semconv.ADAPTER_TARGET_MODULES]) == identity.target_modules
            assert attributes[semconv.ADAPTER_SOURCE] == lora.lora_path
    assert (identities["a1"].rank, identities["a1"].alpha) == (4, 8.0)
    assert identities["a2"].target_modules == ("k_proj", "o_proj", "q_proj", "v_proj")


def test_request_timing_comes_from_vllm_stats(spans: Engine) -> None:
    engine = spans
    (output,) = engine.llm.generate(["Hello there"], engine.greedy, lora_request=engine.a2, use_tqdm=False)
    (span,) = _requests(engine)
    metrics = output.metrics
    assert span.start_time == int(metrics.arrival_time * 1e9)
    assert span.attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] == pytest.approx(metrics.first_token_latency)
    assert span.attributes[semconv.GEN_AI_LATENCY_TIME_IN_QUEUE] == pytest.approx(
        metrics.scheduled_ts - metrics.queued_ts
    )
    assert span.end_time >= span.start_time + int(metrics.first_token_latency * 1e9)


def test_chat_span(spans: Engine) -> None:
    engine = spans
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    (output,) = engine.llm.chat(messages, engine.greedy, lora_request=engine.a1, use_tqdm=False)
    (call,) = [s for s in engine.spans() if s.name == "vllm.LLM.chat"]
    (span,) = _requests(engine)
    assert span.name == "chat a1"
    assert span.parent.span_id == call.context.span_id
    assert span.attributes[semconv.GEN_AI_OPERATION_NAME] == semconv.OPERATION_CHAT
    assert span.attributes[semconv.ADAPTER_NAME] == "a1"
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == len(output.prompt_token_ids)
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == len(output.outputs[0].token_ids)
    # Content is off by default.
    assert semconv.INPUT_VALUE not in span.attributes
    assert semconv.GEN_AI_INPUT_MESSAGES not in span.attributes


def test_chat_content_only_when_capture_is_on(spans: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = spans
    monkeypatch.setenv(semconv.CAPTURE_CONTENT_ENV, "true")
    messages = [{"role": "user", "content": "Say hi"}]
    (output,) = engine.llm.chat(messages, engine.greedy, use_tqdm=False)
    (span,) = _requests(engine)
    assert span.attributes[semconv.OUTPUT_VALUE] == output.outputs[0].text
    assert span.attributes[semconv.GEN_AI_INPUT_MESSAGES] == '[{"role": "user", "content": "Say hi"}]'


def test_single_request_in_scope_takes_the_release_context(spans: Engine) -> None:
    engine = spans
    with loratrace.context(route="billing", cohort="enterprise"):
        engine.llm.generate("Invoices are due", engine.greedy, lora_request=engine.a2, use_tqdm=False)
        loratrace.mark_fallback("adapter timed out")
    (span,) = _requests(engine)
    assert span.attributes[semconv.ROUTE_NAME] == "billing"
    assert span.attributes[semconv.COHORT] == "enterprise"
    # The single request stayed the scope's current generation, so the fallback landed on it.
    assert span.attributes[semconv.FALLBACK] is True
    assert span.attributes[semconv.FALLBACK_REASON] == "adapter timed out"


def test_metrics_carry_adapter_name_not_id(spans: Engine) -> None:
    engine = spans
    engine.llm.generate(["Paris is"], engine.greedy, lora_request=engine.a1, use_tqdm=False)
    loratrace.force_flush()
    data = engine.reader.get_metrics_data()
    points = [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == semconv.METRIC_OPERATION_DURATION
        for point in metric.data.data_points
    ]
    labelled = [p for p in points if p.attributes.get(semconv.ADAPTER_NAME) == "a1"]
    assert labelled
    assert labelled[0].attributes[semconv.BASE_MODEL_NAME] == BASE
    for point in points:
        assert set(point.attributes) <= set(semconv.METRIC_LABELS)


def test_add_lora_records_a_load_span(spans: Engine) -> None:
    from vllm.lora.request import LoRARequest

    engine = spans
    path = str(engine.models.adapters["a1"])
    assert engine.llm.llm_engine.add_lora(LoRARequest("a1-copy", 7, path))
    (load,) = [s for s in engine.spans() if s.name == semconv.ADAPTER_LOAD_SPAN]
    assert load.attributes[semconv.ADAPTER_NAME] == "a1-copy"
    assert load.attributes[semconv.ADAPTER_ID] == identity_from_directory(path, "a1").id
    assert load.attributes[semconv.ADAPTER_LOAD_DURATION] > 0


def test_uninstrument_removes_every_patch_and_outputs_are_unchanged(spans: Engine) -> None:
    import wrapt
    from vllm import LLM
    from vllm.v1.engine.output_processor import OutputProcessor

    engine = spans
    prompts, loras = ["Hello there", "Invoices are due"], [engine.a1, None]
    traced = engine.llm.generate(prompts, engine.greedy, lora_request=loras, use_tqdm=False)
    state = loratrace._setup._state
    assert state is not None
    instrumentor = state.instrumentors["vllm"]
    assert isinstance(LLM.__dict__["generate"], wrapt.FunctionWrapper)
    assert isinstance(OutputProcessor.__dict__["do_tracing"], wrapt.FunctionWrapper)
    instrumentor.uninstrument()
    try:
        assert not isinstance(LLM.__dict__["generate"], wrapt.FunctionWrapper)
        assert not isinstance(OutputProcessor.__dict__["do_tracing"], wrapt.FunctionWrapper)
        engine.exporter.clear()
        plain = engine.llm.generate(prompts, engine.greedy, lora_request=loras, use_tqdm=False)
        assert engine.spans() == []
        assert [o.outputs[0].token_ids for o in plain] == [o.outputs[0].token_ids for o in traced]
    finally:
        instrumentor.instrument(tracer_provider=state.tracer_provider, meter_provider=state.meter_provider)
    engine.llm.generate(prompts[:1], engine.greedy, use_tqdm=False)
    assert len(_requests(engine)) == 1


def test_a_batch_larger_than_the_queues_keeps_every_request_span(
    spans: Engine, otlp_receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3,000 requests in one call, over real OTLP/HTTP through a BatchSpanProcessor (its queue holds 2,048), with
    loratrace's background queue bounded at 100 items: the batch is one item there, and the span processor is
    given time to export after every 512 spans, so nothing is dropped on either side."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from vllm import SamplingParams

    from loratrace.runtime import finisher as _finisher

    engine = spans
    monkeypatch.setattr(_finisher.finisher, "max_queued", 100)
    state = loratrace._setup._state
    assert state is not None
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_receiver.endpoint}/v1/traces")))
    loratrace.uninstrument()  # the module's providers are its own: nothing is shut down
    loratrace.instrument(tracer_provider=provider, meter_provider=state.meter_provider, libraries=["vllm"])
    count = 3000
    loras = [(None, engine.a1, engine.a2)[index % 3] for index in range(count)]
    try:
        outputs = engine.llm.generate(
            [f"Request number {index}" for index in range(count)],
            SamplingParams(max_tokens=1, temperature=0.0),
            lora_request=loras,
            use_tqdm=False,
        )
        assert loratrace.force_flush(timeout_millis=120_000)
    finally:
        loratrace.uninstrument()
        provider.shutdown()
        loratrace.instrument(
            tracer_provider=state.tracer_provider, meter_provider=state.meter_provider, libraries=["vllm"]
        )
    received = otlp_receiver.wait_for_spans(lambda span: span.name.startswith("text_completion "), count=count)
    assert _finisher.finisher.dropped == 0
    assert len(received) == count
    served = {
        span.attributes[semconv.GEN_AI_RESPONSE_ID]: span.attributes.get(semconv.ADAPTER_NAME) for span in received
    }
    expected = {
        output.request_id: (lora.lora_name if lora else None) for output, lora in zip(outputs, loras, strict=True)
    }
    assert served == expected


def test_suppress_instrumentation_turns_the_offline_wrappers_off(spans: Engine) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    engine = spans
    with suppress_instrumentation():
        engine.llm.generate(["Paris is"], engine.greedy, lora_request=engine.a1, use_tqdm=False)
    assert engine.spans() == []
    engine.llm.generate(["Paris is"], engine.greedy, lora_request=engine.a1, use_tqdm=False)
    assert sorted(s.name for s in engine.spans()) == ["text_completion a1", "vllm.LLM.generate"]
