"""``loratrace status --store``: a real collector's counters, the store's size and newest span."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from loratrace.cli import cli
from loratrace.store import query

from .conftest import start_collector


def _status(store: Path, *extra: str) -> dict:
    result = CliRunner().invoke(cli, ["status", "--store", str(store), "--format", "json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_status_reports_the_running_collector_then_none(tmp_path: Path) -> None:
    running = start_collector(tmp_path / "traces")
    try:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{running.http}/v1/traces")))
        for index in range(3):
            provider.get_tracer("t").start_span(f"s{index}").end()
        provider.shutdown()
        running.wait_until_stored()
        found = _status(running.store)
        newest = query(running.store, "SELECT max(start_time) AS t FROM spans")["t"][0]
        assert found["spans"] == 3
        assert found["newest_span"] == newest.isoformat()
        assert found["segments"] >= 1
        on_disk = sum(p.stat().st_size for p in running.store.rglob("*") if p.is_file())
        assert 0 < found["size_bytes"] <= on_disk
        collector = found["collector"]
        assert collector["pid"] == running.process.pid
        assert collector["http"] == f"127.0.0.1:{running.http_port}"
        assert collector["grpc"] == f"127.0.0.1:{running.grpc_port}"
        assert collector["health"]["accepted_spans"] == 3
        assert collector["health"]["spans_written"] == 3
        text = CliRunner().invoke(cli, ["status", "--store", str(running.store)]).output
        assert "spans        3" in text
        assert f"pid {running.process.pid}" in text
        assert "accepted_spans" in text
    finally:
        assert running.terminate() == 0
    stopped = _status(running.store)
    assert stopped["collector"] is None
    assert stopped["spans"] == 3
    text = CliRunner().invoke(cli, ["status", "--store", str(running.store)]).output
    assert "collector    not running (start one: loratrace collect --store" in text


def test_status_of_a_folder_that_is_not_a_store_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LORATRACE_STORE", str(tmp_path))
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 1
    assert "is not a loratrace store" in result.output
