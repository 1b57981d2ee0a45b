"""``loratrace.uninstrument()`` returns in bounded time whatever the endpoint does: hangs, or refuses."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

import loratrace
from tests.support.ports import free_port


@pytest.fixture
def hung_endpoint() -> Iterator[str]:
    """A real TCP endpoint that takes connections (the kernel's backlog) and never answers a byte."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture
def refusing_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"  # closed again: connections are refused


@pytest.mark.parametrize("endpoint_fixture", ["hung_endpoint", "refusing_endpoint"])
def test_uninstrument_is_bounded(request: pytest.FixtureRequest, endpoint_fixture: str) -> None:
    endpoint = request.getfixturevalue(endpoint_fixture)
    state = loratrace.instrument(endpoint=endpoint, libraries=[])
    tracer = state.tracer_provider.get_tracer("uninstrument-test")
    for i in range(10):
        tracer.start_span(f"pending-{i}").end()
    started = time.monotonic()
    loratrace.uninstrument(timeout_millis=1_000)
    elapsed = time.monotonic() - started
    assert elapsed < 4.0, f"uninstrument took {elapsed:.1f} s"  # 17 s (hung) and 10.7 s (refused) before
    assert loratrace._setup._state is None


def test_no_exporter_goes_on_retrying_after_uninstrument_returns(caplog: pytest.LogCaptureFixture) -> None:
    """The shutdown left running at the deadline sends nothing more: once the endpoint refuses, its export ends
    without a retry (before, the exporter retried in the background for the rest of its 10 s timeout)."""
    caplog.set_level(logging.WARNING, logger="opentelemetry.exporter.otlp")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)  # takes the connection, never answers: the export is in flight at the deadline
        before = set(threading.enumerate())
        state = loratrace.instrument(endpoint=f"http://127.0.0.1:{server.getsockname()[1]}", libraries=[])
        tracer = state.tracer_provider.get_tracer("uninstrument-test")
        tracer.start_span("pending").end()
        loratrace.uninstrument(timeout_millis=500)
    # closed: the connection in its backlog is reset, and every new one refused
    exporting = [t for t in threading.enumerate() if t not in before and t.name.startswith("OtelBatch")]
    for thread in exporting:
        thread.join(5.0)
    assert not [t.name for t in exporting if t.is_alive()]
    assert not [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
