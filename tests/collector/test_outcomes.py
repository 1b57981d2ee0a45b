"""One outcome table answers both protocols: the HTTP status, and the gRPC code in the body and over gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import status_pb2

from loratrace.collector.outcome import Outcome

from .conftest import RunningCollector, start_collector
from .faults_support import post

_GRPC_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def test_every_outcome_names_a_grpc_code_and_an_http_status() -> None:
    assert len({o.label for o in Outcome}) == len(Outcome)
    for outcome in Outcome:
        assert outcome.grpc_code in _GRPC_BY_NUMBER, outcome
        assert (outcome is Outcome.OK) == (outcome.http_status == 200), outcome


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[RunningCollector]:
    running = start_collector(tmp_path / "store", token="s3cret")
    yield running
    running.terminate()


def _grpc_refusal(running: RunningCollector, body: bytes, metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    channel = grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}")
    try:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as refused:
            export(body, metadata=metadata, timeout=10)
        return refused.value.code()
    finally:
        channel.close()


@pytest.mark.parametrize(
    ("outcome", "token", "body"),
    [
        pytest.param(Outcome.UNAUTHENTICATED, None, b"", id="unauthenticated"),
        pytest.param(Outcome.BAD_REQUEST, "s3cret", b"\xff\xff\xff", id="undecodable"),
    ],
)
def test_http_and_grpc_clients_are_given_the_same_code(
    guarded: RunningCollector, outcome: Outcome, token: str | None, body: bytes
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, answer = post(guarded.http_port, body, headers=headers)
    assert status == outcome.http_status
    assert status_pb2.Status.FromString(answer).code == outcome.grpc_code
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    assert _grpc_refusal(guarded, body, metadata) == _GRPC_BY_NUMBER[outcome.grpc_code]
