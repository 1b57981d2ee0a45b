"""``loratrace collect`` when a port is taken, and with one protocol turned off: real processes, real sockets."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from loratrace.store import query

from .conftest import free_port, start_collector

LORATRACE = str(Path(sys.executable).with_name("loratrace"))


def _collect(store: Path, http: str, grpc: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LORATRACE, "collect", "--store", str(store), "--http", http, "--grpc", grpc],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("taken", ["grpc", "http"])
def test_a_taken_port_is_named_and_no_store_is_left_behind(tmp_path: Path, taken: str) -> None:
    """Port 4317 taken (Phoenix, Jaeger, the OpenTelemetry Collector) ended in a 38-line traceback and left a
    store folder behind."""
    store = tmp_path / "traces"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        held = f"127.0.0.1:{holder.getsockname()[1]}"
        free = f"127.0.0.1:{free_port()}"
        result = _collect(store, http=held if taken == "http" else free, grpc=held if taken == "grpc" else free)
    assert result.returncode == 1
    protocol = "OTLP/gRPC" if taken == "grpc" else "OTLP/HTTP"
    assert f"Error: cannot bind {protocol} on {held}" in result.stderr
    assert f"--{taken} off" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not store.exists()


def test_a_taken_port_leaves_an_existing_store_alone(tmp_path: Path) -> None:
    store = tmp_path / "traces"
    first = start_collector(store)
    assert first.terminate() == 0
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        result = _collect(store, http=f"127.0.0.1:{free_port()}", grpc=f"127.0.0.1:{holder.getsockname()[1]}")
    assert result.returncode == 1
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before


def test_grpc_off_receives_over_http_only(tmp_path: Path) -> None:
    running = start_collector(tmp_path / "traces", "--grpc", "off")
    try:
        health = running.health()
        assert health["grpc_port"] is None
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{running.http}/v1/traces")))
        provider.get_tracer("t").start_span("over-http").end()
        provider.shutdown()
        running.wait_until_stored()
        assert query(running.store, "SELECT name FROM spans").rows() == [("over-http",)]
    finally:
        assert running.terminate() == 0
    log = (running.store.parent / f"collector-{running.http_port}.log").read_text()
    assert "OTLP/gRPC" not in log  # the ready line names only the receiver it started
    assert f"OTLP/HTTP on 127.0.0.1:{running.http_port}" in log


def test_both_protocols_off_is_refused(tmp_path: Path) -> None:
    result = _collect(tmp_path / "traces", http="off", grpc="off")
    assert result.returncode == 2
    assert "--http off and --grpc off leave nothing to receive on" in result.stderr
    assert not (tmp_path / "traces").exists()
