"""OTLP/HTTP: ``POST /v1/traces`` and ``/v1/metrics`` (protobuf or JSON, optionally gzip), ``GET /health``."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import logging
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from google.rpc import status_pb2

from loratrace.collector.auth import bearer_matches
from loratrace.collector.ingest import ExportResult, Ingest, Signal
from loratrace.collector.outcome import Outcome

logger = logging.getLogger(__name__)

_PATHS: Final[dict[str, Signal]] = {"/v1/traces": "traces", "/v1/metrics": "metrics"}


# a TLS client gets this long to finish its handshake: a silent or plaintext peer must not hold a thread
TLS_HANDSHAKE_TIMEOUT_S: Final = 10.0
# after an early answer (401, 413, ...) the body is read and thrown away, up to this much, so that clients which
# send the whole body before reading the answer (urllib) receive it instead of a broken pipe
DRAIN_MAX_BYTES: Final = 256 << 20
_CHUNK: Final = 1 << 16
_CONTENT_LENGTH: Final = re.compile(r"[0-9]{1,19}")
_BUSY_BODY: Final = json.dumps(
    {"code": Outcome.UNAVAILABLE.grpc_code, "message": "too many connections; retry after 1 s"}
).encode()
_BUSY: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)


@dataclass(frozen=True)
class HttpServerSettings:
    """Connection limits, like the OpenTelemetry Collector's confighttp server settings.

    A connection waiting for its next request is closed after ``idle_timeout_s``; once a request's first byte
    arrived, its request line and headers must be in within ``header_timeout_s`` and its body within
    ``body_timeout_s``; at most ``max_connections`` are open at once (more are answered 503 and closed).
    """

    idle_timeout_s: float = 60.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_connections: int = 256


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    ingest: Ingest
    token: str | None
    max_request_bytes: int
    health: Callable[[], dict[str, Any]]
    tls_context: ssl.SSLContext | None = None
    settings: HttpServerSettings

    def start_guard(self) -> None:
        """Connection accounting and the thread that closes connections past their deadline."""
        self._guard = threading.Lock()
        self._deadlines: dict[Any, float] = {}
        self._open = 0
        self._closed = threading.Event()
        threading.Thread(target=self._reap, name="loratrace-http-deadlines", daemon=True).start()

    def set_deadline(self, connection: Any, seconds: float | None) -> None:
        with self._guard:
            if seconds is None:
                self._deadlines.pop(connection, None)
            else:
                self._deadlines[connection] = time.monotonic() + seconds

    def _reap(self) -> None:
        # a per-read socket timeout is not enough: a client sending one byte every few seconds never trips it
        while not self._closed.wait(0.25):
            now = time.monotonic()
            with self._guard:
                late = [c for c, deadline in self._deadlines.items() if deadline <= now]
                for connection in late:
                    del self._deadlines[connection]
            for connection in late:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def open_connections(self) -> int:
        return self._open

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._guard:
            refuse = self._open >= self.settings.max_connections
            if not refuse:
                self._open += 1
        if refuse:
            if self.tls_context is None:
                with contextlib.suppress(OSError):
                    request.setblocking(False)
                    request.send(_BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._forget(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def _forget(self, request: Any) -> None:
        with self._guard:
            self._open -= 1
            self._deadlines.pop(request, None)

    def server_close(self) -> None:
        # also called by socketserver when binding fails, before start_guard ran
        closed = getattr(self, "_closed", None)
        if closed is not None:
            closed.set()
        super().server_close()

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
            tls_socket.settimeout(self.settings.idle_timeout_s)
            super().finish_request(tls_socket, client_address)
        finally:
            self.set_deadline(tls_socket, None)
            tls_socket.close()


class OTLPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    rfile: io.BufferedReader  # buffered (StreamRequestHandler.rbufsize is -1), so it can peek

    def setup(self) -> None:
        super().setup()
        # every read and write waits at most this long; the deadlines below bound whole phases
        self.connection.settimeout(self.server.settings.idle_timeout_s)
        self._sent_continue = False

    def handle_one_request(self) -> None:
        settings = self.server.settings
        self.server.set_deadline(self.connection, settings.idle_timeout_s)
        try:
            if not self.rfile.peek(1):  # the client closed its idle connection
                self.close_connection = True
                return
        except OSError:  # idle past the timeout, or reset
            self.close_connection = True
            return
        self.server.set_deadline(self.connection, settings.header_timeout_s)
        self._sent_continue = False
        super().handle_one_request()

    def handle_expect_100(self) -> bool:
        # "Expect: 100-continue" is answered once the request passed every check on its headers (do_POST), so
        # a refused client never sends its body
        return True

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

    def _error(self, outcome: Outcome, message: str, *, json_body: bool, extra: dict[str, str] | None = None) -> None:
        code = outcome.http_status
        status = status_pb2.Status(code=outcome.grpc_code, message=message)
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
                self._error(Outcome.UNAUTHENTICATED, "missing or wrong bearer token", json_body=True)
                return
            self._send(200, json.dumps(self.server.health()).encode(), "application/json")
            return
        self._error(
            Outcome.NOT_FOUND,
            f"no such endpoint {self.path}; OTLP/HTTP takes POST /v1/traces and /v1/metrics",
            json_body=True,
        )

    def do_POST(self) -> None:
        """Everything a request's headers decide is decided before a byte of its body is read."""
        signal = _PATHS.get(self.path.split("?", 1)[0])
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        json_body = content_type == "application/json"
        if signal is None:
            self._refuse(
                Outcome.NOT_FOUND, f"no such endpoint {self.path}; use /v1/traces or /v1/metrics", json_body=json_body
            )
            return
        if not self._authorised():
            self._refuse(
                Outcome.UNAUTHENTICATED,
                "missing or wrong bearer token",
                json_body=json_body,
                extra={"WWW-Authenticate": "Bearer"},
            )
            return
        if content_type not in ("application/x-protobuf", "application/protobuf", "application/json"):
            self._refuse(
                Outcome.UNSUPPORTED_MEDIA_TYPE,
                f"unsupported Content-Type {content_type!r}; send application/x-protobuf or application/json",
                json_body=False,
            )
            return
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("gzip", "identity", ""):
            unsupported = f"unsupported Content-Encoding {encoding!r}; use gzip or none"
            self._refuse(Outcome.UNSUPPORTED_MEDIA_TYPE, unsupported, json_body=json_body)
            return
        length = self._declared_length(json_body=json_body)
        if length is None:
            return
        limit = self.server.max_request_bytes
        if length > limit:
            self._refuse(
                Outcome.TOO_LARGE, f"request of {length} bytes is over the {limit}-byte limit", json_body=json_body
            )
            return
        chunked = length < 0
        reserved = limit if chunked else length
        budget = self.server.ingest.budget
        if not budget.reserve(reserved, timeout=self.server.ingest.budget_wait):
            self._refuse(
                Outcome.BUSY,
                "too many bytes of export requests in flight; retry after the delay",
                json_body=json_body,
                extra={"Retry-After": "1"},
            )
            return
        try:
            self._continue()
            self.server.set_deadline(self.connection, self.server.settings.body_timeout_s)
            try:
                body = self._read_chunked(limit) if chunked else self._read_exactly(length)
            except OverflowError:
                self._refuse(Outcome.TOO_LARGE, f"chunked request is over the {limit}-byte limit", json_body=json_body)
                return
            except ValueError as exc:
                self.close_connection = True
                self._error(Outcome.BAD_REQUEST, str(exc), json_body=json_body)
                return
            except OSError:  # the client went away, or its body took longer than the body timeout
                self.close_connection = True
                return
            self.server.set_deadline(self.connection, None)
            if encoding == "gzip":
                try:
                    body = _gunzip(body, limit)
                except OverflowError:
                    self._error(
                        Outcome.TOO_LARGE, f"decompressed request is over the {limit}-byte limit", json_body=json_body
                    )
                    return
                except (OSError, EOFError, zlib.error):
                    self._error(Outcome.BAD_REQUEST, "the body is not valid gzip", json_body=json_body)
                    return
            result = self.server.ingest.export(
                signal,
                body,
                json_body=json_body,
                reserved=reserved,
            )
            del body
            self.server.set_deadline(self.connection, self.server.settings.header_timeout_s)
            self._answer(result, json_body=json_body)
        finally:
            budget.release(reserved)

    def _declared_length(self, *, json_body: bool) -> int | None:
        """The body's Content-Length, -1 for a chunked body, None once a bad framing was answered."""
        lengths = self.headers.get_all("Content-Length") or []
        transfer = self.headers.get("Transfer-Encoding", "").strip().lower()
        if transfer:
            if transfer != "chunked" or lengths:
                self.close_connection = True
                self._error(
                    Outcome.BAD_REQUEST,
                    f"Transfer-Encoding {transfer!r} with Content-Length {lengths!r}: send one Content-Length, "
                    "or Transfer-Encoding: chunked alone",
                    json_body=json_body,
                )
                return None
            return -1
        if not lengths:
            self.close_connection = True
            self._error(
                Outcome.LENGTH_REQUIRED, "a Content-Length header (or a chunked body) is required", json_body=json_body
            )
            return None
        if len(set(lengths)) != 1 or not _CONTENT_LENGTH.fullmatch(lengths[0].strip()):
            self.close_connection = True
            self._error(Outcome.BAD_REQUEST, f"bad Content-Length {', '.join(lengths)!r}", json_body=json_body)
            return None
        return int(lengths[0])

    def _continue(self) -> None:
        if self.headers.get("Expect", "").strip().lower() == "100-continue" and not self._sent_continue:
            self.send_response_only(100)
            self.end_headers()
            self._sent_continue = True

    def _read_exactly(self, length: int) -> bytes:
        body = self.rfile.read(length)
        if len(body) != length:
            msg = f"the body ended after {len(body)} of its {length} bytes"
            raise OSError(msg)
        return body

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\n"):
                msg = "a chunk size line is missing or too long"
                raise ValueError(msg)
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                msg = f"bad chunk size {size_text[:32]!r}"
                raise ValueError(msg) from None
            if size < 0:
                msg = f"bad chunk size {size_text[:32]!r}"
                raise ValueError(msg)
            if size == 0:
                break
            total += size
            if total > limit:
                raise OverflowError
            parts.append(self._read_exactly(size))
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                msg = "a chunk is not followed by CRLF"
                raise ValueError(msg)
        for _ in range(64):  # trailers, up to the empty line
            if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                return b"".join(parts)
        msg = "too many trailer lines"
        raise ValueError(msg)

    def _refuse(self, outcome: Outcome, message: str, *, json_body: bool, extra: dict[str, str] | None = None) -> None:
        """Answer before reading the body, then read and discard it (bounded) so every client sees the answer."""
        self.close_connection = True
        self._error(outcome, message, json_body=json_body, extra={**(extra or {}), "Connection": "close"})
        expecting = self.headers.get("Expect", "").strip().lower() == "100-continue" and not self._sent_continue
        if expecting:
            return  # told not to continue: the client sends no body
        lengths = self.headers.get_all("Content-Length") or []
        declared = lengths[0].strip() if len(lengths) == 1 else ""
        chunked = self.headers.get("Transfer-Encoding", "").strip().lower() == "chunked"
        if not chunked and not _CONTENT_LENGTH.fullmatch(declared):
            return
        remaining = DRAIN_MAX_BYTES if chunked else min(int(declared), DRAIN_MAX_BYTES)
        self.server.set_deadline(self.connection, self.server.settings.body_timeout_s)
        with contextlib.suppress(OSError):
            while remaining > 0:
                chunk = self.rfile.read1(min(_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)

    def _answer(self, result: ExportResult, *, json_body: bool) -> None:
        if result.outcome is Outcome.OK:
            if json_body:
                self._send(200, result.response_json.encode(), "application/json")
            else:
                self._send(200, result.response, "application/x-protobuf")
            return
        extra = {"Retry-After": str(result.retry_after)} if result.retry_after else None
        self._error(result.outcome, result.message, json_body=json_body, extra=extra)


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
    settings: HttpServerSettings | None = None,
) -> _Server:
    server = _Server((host, port), OTLPHandler)
    server.settings = settings or HttpServerSettings()
    server.start_guard()
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


__all__ = ["HttpServerSettings", "OTLPHandler", "gzip", "make_http_server"]
