"""The issue's "done when": loratrace.instrument() in a script serving a PeftModel, and spans with the
adapter's name, id, rank and alpha arrive at an OTLP/HTTP endpoint (a receiver on 127.0.0.1)."""

from __future__ import annotations

import loratrace
from loratrace import semconv
from loratrace.instrumentation._adapter_identity import identity_from_directory
from tests.support.hf import SPECS, load_peft


def test_adapter_spans_arrive_over_otlp_http(tiny_models, tokenizer, monkeypatch, otlp_receiver):
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ):
        monkeypatch.delenv(name, raising=False)
    loratrace.instrument(endpoint=otlp_receiver.endpoint, libraries=["transformers"])
    try:
        model = load_peft(tiny_models, "a1", "a2")
        inputs = tokenizer(["Please reset my password"], return_tensors="pt")
        for name in ("a1", "a2"):
            model.set_adapter(name)
            model.generate(**inputs, max_new_tokens=4, do_sample=False)
        assert loratrace.force_flush(10_000)
    finally:
        loratrace.uninstrument()
    received = otlp_receiver.wait_for_spans(lambda span: semconv.ADAPTER_NAME in span.attributes, count=2)
    spans = [span.attributes for span in received]
    assert [span[semconv.ADAPTER_NAME] for span in spans] == ["a1", "a2"]
    for span in spans:
        name = span[semconv.ADAPTER_NAME]
        assert span[semconv.ADAPTER_ID] == identity_from_directory(tiny_models.adapters[name], name).id
        assert span[semconv.ADAPTER_RANK] == SPECS[name].rank
        assert span[semconv.ADAPTER_ALPHA] == SPECS[name].alpha
        assert span[semconv.BASE_MODEL_NAME] == "tiny-llama"
        assert span[semconv.GEN_AI_RESPONSE_MODEL] == name
