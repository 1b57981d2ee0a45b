"""OTLP/HTTP: ``POST /v1/traces`` and ``/v1/metrics`` (protobuf or JSON, optionally gzip), ``GET /health``."""

from __future__ import annotations

import gzip
import json
import logging
import ssl
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from google.rpc import status_pb2

from loratrace.collector.auth import bearer_matches
from loratrace.collector.ingest import ExportResult, Ingest

logger = logging.getLogger(__name__)

_PATHS: Final = {"/v1/traces": "traces", "/v1/metrics": "metrics"}
_STATUS: Final = {"ok": 200, "bad_request": 400, "overloaded": 503, "busy": 429, "unavailable": 503}
_GRPC_CODE: Final = {"bad_request": 3, "overloaded": 14, "busy": 8, "unavailable": 14}


# a TLS client gets this long to finish its handshake: a silent or plaintext peer must not hold a thread
TLS_HANDSHAKE_TIMEOUT_S: Final = 10.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    ingest: Ingest
    token: str | None
    max_request_bytes: int
    health: Callable[[], dict[str, Any]]
    tls_context: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, not in the accept loop: wrapping the
        # listening socket would handshake inside accept(), so one silent client would stall every other one.
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(TLS_HANDSHAKE_TIMEOUT_S)
        try:
            tls_socket = self.tls_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError) as exc:  # plaintext HTTP, a bad client certificate, a timeout
            logger.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            tls_socket.settimeout(None)
            super().finish_request(tls_socket, client_address)
        finally:
            tls_socket.close()


class OTLPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _authorised(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        return bearer_matches(self.headers.get("Authorization"), token)

    def _send(self, code: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code: int, message: str, *, json_body: bool, extra: dict[str, str] | None = None) -> None:
        status = status_pb2.Status(
            code=_GRPC_CODE.get("bad_request" if code < 500 else "unavailable", 2), message=message
        )
        if json_body:
            self._send(
                code,
                json.dumps({"code": status.code, "message": message}).encode(),
                "application/json",
                extra,
            )
        else:
            self._send(code, status.SerializeToString(), "application/x-protobuf", extra)

    def do_GET(self) -> None:
        if self.path in ("/health", "/", "/metrics"):
            if self.path != "/health" and not self._authorised():
                self._error(401, "missing or wrong bearer token", json_body=True)
                return
            self._send(200, json.dumps(self.server.health()).encode(), "application/json")
            return
        self._error(
            404,
            f"no such endpoint {self.path}; OTLP/HTTP takes POST /v1/traces and /v1/metrics",
            json_body=True,
        )

    def do_POST(self) -> None:
        signal = _PATHS.get(self.path.split("?", 1)[0])
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        json_body = content_type == "application/json"
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or length_header is None:
            self.close_connection = True
            self._error(411, "a Content-Length header is required", json_body=json_body)
            return
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            self._error(400, f"bad Content-Length {length_header!r}", json_body=json_body)
            return
        limit = self.server.max_request_bytes
        if length > limit:
            # not reading a huge body: answer and drop the connection
            self.close_connection = True
            self._error(413, f"request of {length} bytes is over the {limit}-byte limit", json_body=json_body)
            return
        body = self.rfile.read(length)
        if signal is None:
            self._error(404, f"no such endpoint {self.path}; use /v1/traces or /v1/metrics", json_body=json_body)
            return
        if not self._authorised():
            self._error(
                401,
                "missing or wrong bearer token",
                json_body=json_body,
                extra={"WWW-Authenticate": "Bearer"},
            )
            return
        if content_type not in ("application/x-protobuf", "application/protobuf", "application/json"):
            self._error(
                415,
                f"unsupported Content-Type {content_type!r}; send application/x-protobuf or application/json",
                json_body=False,
            )
            return
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding == "gzip":
            try:
                body = _gunzip(body, limit)
            except OverflowError:
                self._error(413, f"decompressed request is over the {limit}-byte limit", json_body=json_body)
                return
            except (OSError, EOFError, zlib.error):
                self._error(400, "the body is not valid gzip", json_body=json_body)
                return
        elif encoding not in ("identity", ""):
            self._error(415, f"unsupported Content-Encoding {encoding!r}; use gzip or none", json_body=json_body)
            return
        result = self.server.ingest.export(signal, body, json_body=json_body)  # type: ignore[arg-type]
        self._answer(result, json_body=json_body)

    def _answer(self, result: ExportResult, *, json_body: bool) -> None:
        code = _STATUS[result.outcome]
        if code == 200:
            if json_body:
                self._send(200, result.response_json.encode(), "application/json")
            else:
                self._send(200, result.response, "application/x-protobuf")
            return
        extra = {"Retry-After": str(result.retry_after)} if result.retry_after else None
        self._error(code, result.message, json_body=json_body, extra=extra)


def _gunzip(body: bytes, limit: int) -> bytes:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = decompressor.decompress(body, limit + 1)
    if len(out) > limit or decompressor.unconsumed_tail:
        raise OverflowError
    if not decompressor.eof:
        raise EOFError
    return out


def make_http_server(
    host: str,
    port: int,
    *,
    ingest: Ingest,
    token: str | None,
    max_request_bytes: int,
    health: Callable[[], dict[str, Any]],
    tls: tuple[str, str] | None = None,
) -> _Server:
    server = _Server((host, port), OTLPHandler)
    server.ingest = ingest
    server.token = token
    server.max_request_bytes = max_request_bytes
    server.health = health
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certfile=tls[0], keyfile=tls[1])
        server.tls_context = context
    return server


__all__ = ["OTLPHandler", "gzip", "make_http_server"]
