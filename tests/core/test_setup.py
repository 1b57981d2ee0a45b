"""loratrace.instrument() / uninstrument(): providers, endpoints, bad arguments, idempotence."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import loratrace
from loratrace import _setup, semconv
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
    assert processor._batch_processor._exporter.exporter._endpoint == "http://127.0.0.1:4318/v1/traces"
    assert state.tracer_provider.resource.attributes["service.name"] == "checkout"


def test_grpc_protocol_and_explicit_endpoint(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    state = loratrace.instrument(libraries=[], protocol="grpc", endpoint="http://127.0.0.1:14317")
    (processor,) = state.tracer_provider._active_span_processor._span_processors
    exporter = processor._batch_processor._exporter.exporter
    assert type(exporter).__module__.startswith("opentelemetry.exporter.otlp.proto.grpc")
    assert exporter._endpoint == "127.0.0.1:14317"


def test_standard_environment_variables_are_honoured(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:24318")
    state = loratrace.instrument(libraries=[])
    (processor,) = state.tracer_provider._active_span_processor._span_processors
    assert processor._batch_processor._exporter.exporter._endpoint == "http://127.0.0.1:24318/v1/traces"


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
    # submodules that importing the package (or an earlier test) brought in are attributes, not API
    import pkgutil

    submodules = {module.name for module in pkgutil.iter_modules(loratrace.__path__)}
    # iter_modules skips folders without __init__.py (namespace packages such as loratrace/instrumentation)
    submodules |= {p.name for p in Path(loratrace.__path__[0]).iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert public - exported <= submodules


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


def _clear_otel_environment(monkeypatch) -> None:
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_TRACES_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_SERVICE_NAME",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("suffix", ["", "/", "/v1/traces", "/v1/metrics"])
def test_an_endpoint_given_as_a_base_or_a_per_signal_url_reaches_the_receiver(monkeypatch, otlp_receiver, suffix):
    """Phoenix prints its per-signal URL (``http://host:6006/v1/traces``); given that, spans were posted to
    ``/v1/traces/v1/traces`` and lost."""
    _clear_otel_environment(monkeypatch)
    before = len(otlp_receiver.paths)  # the receiver serves the whole session
    state = loratrace.instrument(endpoint=otlp_receiver.endpoint + suffix, libraries=[])
    state.tracer_provider.get_tracer("t").start_span(f"span{suffix}").end()
    state.meter_provider.get_meter("t").create_histogram("h").record(1.0)
    assert loratrace.force_flush(timeout_millis=30_000)
    otlp_receiver.wait_for_spans(lambda span: span.name == f"span{suffix}")
    otlp_receiver.wait_for_points(lambda point: point.metric == "h")
    assert set(otlp_receiver.paths[before:]) == {"/v1/traces", "/v1/metrics"}


def test_otel_metrics_exporter_none_sends_no_metrics(monkeypatch, otlp_receiver):
    """A traces-only backend (Phoenix answers 405 on /v1/metrics) needs metrics off."""
    _clear_otel_environment(monkeypatch)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    before = len(otlp_receiver.paths)
    state = loratrace.instrument(endpoint=otlp_receiver.endpoint, libraries=[])
    assert not state.owns_meter_provider
    state.meter_provider.get_meter("t").create_histogram("h").record(1.0)
    state.tracer_provider.get_tracer("t").start_span("traced").end()
    assert loratrace.force_flush(timeout_millis=30_000)
    otlp_receiver.wait_for_spans(lambda span: span.name == "traced")
    loratrace.uninstrument()  # a final metrics export would happen here
    assert otlp_receiver.paths[before:] == ["/v1/traces"]


def test_otel_traces_exporter_none_and_console(monkeypatch, otlp_receiver, capfd):
    _clear_otel_environment(monkeypatch)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    before = len(otlp_receiver.paths)
    state = loratrace.instrument(endpoint=otlp_receiver.endpoint, libraries=[])
    assert state.tracer_provider._active_span_processor._span_processors == ()
    state.tracer_provider.get_tracer("t").start_span("nowhere").end()
    assert loratrace.force_flush(timeout_millis=30_000)
    loratrace.uninstrument()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    state = loratrace.instrument(endpoint=otlp_receiver.endpoint, libraries=[])
    state.tracer_provider.get_tracer("t").start_span("to-the-console").end()
    assert loratrace.force_flush(timeout_millis=30_000)
    loratrace.uninstrument()
    assert '"name": "to-the-console"' in capfd.readouterr().out
    assert otlp_receiver.paths[before:] == []


def test_an_unknown_exporter_name_is_rejected_naming_the_variable(monkeypatch):
    _clear_otel_environment(monkeypatch)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    with pytest.raises(ConfigurationError, match="OTEL_METRICS_EXPORTER must list otlp, console or none"):
        loratrace.instrument(libraries=[])
    assert _setup._state is None


def test_no_collector_listening_is_said_once_fails_fast_and_force_flush_reports_it(monkeypatch, caplog):
    """Before: eight SDK retry lines, 13-25 s of retries, and force_flush() returned True."""
    import logging
    import socket
    import time

    _clear_otel_environment(monkeypatch)
    with socket.socket() as sock:  # a loopback port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        caplog.set_level(logging.WARNING)
        started = time.monotonic()
        state = loratrace.instrument(endpoint=endpoint, libraries=[])
        tracer = state.tracer_provider.get_tracer("t")
        for batch in range(3):
            tracer.start_span(f"lost-{batch}").end()
            assert loratrace.force_flush(timeout_millis=30_000) is False
        loratrace.uninstrument()
        elapsed = time.monotonic() - started
    told = [record.getMessage() for record in caplog.records if "nothing listens" in record.getMessage()]
    assert len(told) == 1
    assert f"{endpoint}/v1/traces" in told[0]
    assert "loratrace collect --store" in told[0]
    assert 'instrument(store="./traces")' in told[0]
    assert not [record for record in caplog.records if "Transient error" in record.getMessage()]
    # the SDK's exporters took 13-25 s here (retries with backoff); a generous bound for a loaded machine
    assert elapsed < 10, f"{elapsed:.1f} s: the exporters retried an endpoint that refuses connections"


def test_force_flush_is_true_again_once_exports_succeed(monkeypatch, otlp_receiver):
    _clear_otel_environment(monkeypatch)
    state = loratrace.instrument(endpoint=otlp_receiver.endpoint, libraries=[])
    state.tracer_provider.get_tracer("t").start_span("ok").end()
    assert loratrace.force_flush(timeout_millis=30_000) is True


def test_the_phoenix_project_name_follows_the_service_name_unless_given(monkeypatch):
    _clear_otel_environment(monkeypatch)
    state = loratrace.instrument(libraries=[], service_name="billing-bot")
    assert state.tracer_provider.resource.attributes[semconv.OPENINFERENCE_PROJECT_NAME] == "billing-bot"
    loratrace.uninstrument()
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "openinference.project.name=release-42")
    state = loratrace.instrument(libraries=[], service_name="billing-bot")
    assert state.tracer_provider.resource.attributes[semconv.OPENINFERENCE_PROJECT_NAME] == "release-42"


def test_a_metrics_endpoint_elsewhere_is_watched_on_its_own(monkeypatch, otlp_receiver):
    """Traces to a receiver that listens, metrics (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) to a port where nothing
    does: the span export succeeds, the metric export fails, and force_flush() says so."""
    import socket

    _clear_otel_environment(monkeypatch)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"http://127.0.0.1:{sock.getsockname()[1]}/v1/m")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{otlp_receiver.endpoint}/v1/traces")
        state = loratrace.instrument(libraries=[])
        assert len(state.endpoint_watches) == 2
        state.tracer_provider.get_tracer("t").start_span("traced-elsewhere").end()
        state.meter_provider.get_meter("t").create_histogram("h").record(1.0)
        assert loratrace.force_flush(timeout_millis=30_000) is False
    otlp_receiver.wait_for_spans(lambda span: span.name == "traced-elsewhere")


def test_the_runtime_package_documents_each_of_its_modules():
    """``loratrace.runtime`` is the public toolkit for the next instrumentor: its docstring is the map, so every
    module it holds is on it and everything on it exists."""
    import pkgutil
    import re

    import loratrace.runtime

    modules = {module.name for module in pkgutil.iter_modules(loratrace.runtime.__path__)}
    documented = set(re.findall(r"^``(\w+)``", loratrace.runtime.__doc__ or "", re.MULTILINE))
    assert documented == modules
