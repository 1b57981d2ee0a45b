"""loratrace.instrument() / uninstrument(): providers, endpoints, bad arguments, idempotence."""

from __future__ import annotations

import threading

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import loratrace
from loratrace import _setup
from loratrace.errors import ConfigurationError, LoratraceWarning


@pytest.fixture(autouse=True)
def _clean_state():
    yield
    loratrace.uninstrument()


def test_reuses_the_providers_it_is_given():
    provider = TracerProvider()
    state = loratrace.instrument(tracer_provider=provider, libraries=[])
    assert state.tracer_provider is provider
    assert not state.owns_tracer_provider
    assert _setup.tracer_provider_in_use() is provider


def test_builds_its_own_otlp_pipeline_with_the_default_endpoint(monkeypatch):
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ):
        monkeypatch.delenv(name, raising=False)
    state = loratrace.instrument(libraries=[], service_name="checkout")
    assert state.owns_tracer_provider
    assert state.owns_meter_provider
    (processor,) = state.tracer_provider._active_span_processor._span_processors
    assert processor._batch_processor._exporter._endpoint == "http://127.0.0.1:4318/v1/traces"
    assert state.tracer_provider.resource.attributes["service.name"] == "checkout"


def test_grpc_protocol_and_explicit_endpoint(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    state = loratrace.instrument(libraries=[], protocol="grpc", endpoint="http://127.0.0.1:14317")
    (processor,) = state.tracer_provider._active_span_processor._span_processors
    exporter = processor._batch_processor._exporter
    assert type(exporter).__module__.startswith("opentelemetry.exporter.otlp.proto.grpc")
    assert exporter._endpoint == "127.0.0.1:14317"


def test_standard_environment_variables_are_honoured(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:24318")
    state = loratrace.instrument(libraries=[])
    (processor,) = state.tracer_provider._active_span_processor._span_processors
    assert processor._batch_processor._exporter._endpoint == "http://127.0.0.1:24318/v1/traces"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"protocol": "http/json"}, "must be 'http/protobuf' or 'grpc'", id="protocol"),
        pytest.param({"endpoint": "127.0.0.1:4318"}, "must start with http:// or https://", id="endpoint"),
        pytest.param({"libraries": ["torchserve"]}, "unknown \\['torchserve'\\]", id="library"),
        pytest.param({"endpoint": "http://x", "store": "dir"}, "endpoint= or store=, not both", id="both"),
    ],
)
def test_bad_arguments_are_rejected_clearly(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        loratrace.instrument(**kwargs)
    assert _setup._state is None  # nothing half-set-up is left behind


def test_instrumenting_twice_warns_and_keeps_the_first():
    provider = TracerProvider()
    first = loratrace.instrument(tracer_provider=provider, libraries=[])
    with pytest.warns(LoratraceWarning, match="already called"):
        second = loratrace.instrument(libraries=[])
    assert second is first


def test_uninstrument_shuts_down_only_what_it_created():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    loratrace.instrument(tracer_provider=provider, libraries=[])
    loratrace.uninstrument()
    with provider.get_tracer("app").start_as_current_span("still-works"):
        pass
    assert [span.name for span in exporter.get_finished_spans()] == ["still-works"]
    loratrace.uninstrument()  # a second call is harmless


def test_public_api_is_explicit_and_sorted():
    assert loratrace.__all__ == sorted(loratrace.__all__)
    public = {name for name in dir(loratrace) if not name.startswith("_")}
    exported = set(loratrace.__all__) - {"__version__"}
    # submodules that importing the package brings in are not API
    assert public - exported <= {
        *("errors", "semconv", "instrumentation", "cli", "demo", "store", "collector"),
        *("analysis", "doctor", "feedback", "tasks"),
    }


def test_a_store_path_that_is_a_file_is_rejected_clearly(tmp_path):
    from loratrace.errors import StoreError

    not_a_folder = tmp_path / "traces"
    not_a_folder.write_text("a file, not a folder")
    with pytest.raises(StoreError, match=r"cannot use .* as a store folder"):
        loratrace.instrument(store=not_a_folder, libraries=[])
    assert _setup._state is None
    assert not_a_folder.read_text() == "a file, not a folder"  # nothing overwritten


def test_force_flush_returns_within_its_timeout_when_the_endpoint_does_not_answer(monkeypatch, otlp_receiver):
    """The SDK's BatchSpanProcessor.force_flush ignores its timeout and waits for the exporter's own (10 s by
    default, per batch, retried); loratrace.force_flush returns False at its timeout and lets the export finish
    later."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "300")  # seconds: the exporters wait far past the join below
    gate = threading.Event()
    otlp_receiver.answer_gate = gate
    otlp_receiver.request_arrived.clear()
    try:
        state = loratrace.instrument(endpoint=otlp_receiver.endpoint, libraries=[])
        state.tracer_provider.get_tracer("flush-test").start_span("held").end()
        outcome: list[bool] = []
        flushing = threading.Thread(target=lambda: outcome.append(loratrace.force_flush(timeout_millis=500)))
        flushing.start()
        flushing.join(timeout=60)
        assert not flushing.is_alive()
        assert outcome == [False]
        assert otlp_receiver.request_arrived.is_set()  # the export did start; its answer never came
        assert not gate.is_set()
    finally:
        gate.set()
        otlp_receiver.answer_gate = None
    assert loratrace.force_flush(timeout_millis=30_000)
    otlp_receiver.wait_for_spans(lambda span: span.name == "held")
