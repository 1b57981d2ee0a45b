"""OTLP/gRPC: TraceService and MetricsService ``Export``, taking the raw request bytes (one decode path)."""

from __future__ import annotations

import socket
from concurrent import futures
from typing import Any, Final

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from loratrace.collector.auth import bearer_matches
from loratrace.collector.ingest import Ingest, Signal
from loratrace.collector.outcome import Outcome

# google.rpc.Code number -> grpcio's enum member
_STATUS_CODES: Final = {code.value[0]: code for code in grpc.StatusCode}


def _handler(ingest: Ingest, signal: Signal, token: str | None) -> Any:
    def export(request: bytes, context: grpc.ServicerContext) -> bytes:
        if token is not None:
            # gRPC metadata keys are lower case: 'authorization: Bearer <token>' (what bearertokenauth sends)
            given = dict(context.invocation_metadata()).get("authorization")
            if not bearer_matches(given if isinstance(given, str) else None, token):
                context.abort(_STATUS_CODES[Outcome.UNAUTHENTICATED.grpc_code], "missing or wrong bearer token")
        result = ingest.export(signal, request)
        if result.outcome is Outcome.OK:
            return result.response
        code = _STATUS_CODES[result.outcome.grpc_code]
        if result.retry_after:
            # RetryInfo tells OTLP exporters how long to back off (the OTLP spec's throttling rule)
            retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=result.retry_after))
            status = status_pb2.Status(code=result.outcome.grpc_code, message=result.message)
            status.details.add().Pack(retry)
            context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
        context.abort(code, result.message)
        raise AssertionError  # unreachable: abort raises

    return grpc.unary_unary_rpc_method_handler(export)


def make_grpc_server(
    host: str,
    port: int,
    *,
    ingest: Ingest,
    token: str | None,
    max_request_bytes: int,
    tls: tuple[str, str] | None = None,
    workers: int = 16,
    max_concurrent_rpcs: int = 64,
    idle_timeout_ms: int = 120_000,
) -> tuple[grpc.Server, int]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="loratrace-grpc"),
        options=[
            ("grpc.max_receive_message_length", max_request_bytes),
            ("grpc.so_reuseport", 0),
            # the OpenTelemetry Collector's gRPC server settings: idle connections closed, a bound on what waits
            ("grpc.max_connection_idle_ms", idle_timeout_ms),
        ],
        # RPCs beyond this are answered RESOURCE_EXHAUSTED at once instead of queueing without bound
        maximum_concurrent_rpcs=max_concurrent_rpcs,
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "opentelemetry.proto.collector.trace.v1.TraceService",
                {"Export": _handler(ingest, "traces", token)},
            ),
            grpc.method_handlers_generic_handler(
                "opentelemetry.proto.collector.metrics.v1.MetricsService",
                {"Export": _handler(ingest, "metrics", token)},
            ),
        )
    )
    address = f"{host}:{port}"
    if _taken(host, port):
        return server, 0
    try:
        if tls is not None:
            with open(tls[0], "rb") as cert, open(tls[1], "rb") as key:
                credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
            bound = server.add_secure_port(address, credentials)
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError:  # grpcio raises RuntimeError("Failed to bind to address ...") for a taken port
        bound = 0
    return server, bound


def _taken(host: str, port: int) -> bool:
    """Whether another process listens on ``host:port``, asked before grpcio is: for a taken port grpcio's core
    logs its own error lines to stderr, around the one clear message the collector gives."""
    if port == 0:
        return False
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError:
        return False  # grpcio reports an unresolvable host itself
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpcio binds: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError:
            return True
    return False
