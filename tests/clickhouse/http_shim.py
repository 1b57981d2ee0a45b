"""A protocol shim over the real ClickHouse engine: ClickHouse's HTTP interface, the part clickhouse-connect
speaks, on a loopback port, every query executed by ClickHouse's own engine embedded through chdb.

Only the HTTP framing is ours: the SQL, its bound parameters (``param_<name>``), its output format (``FORMAT``
in the query or ``default_format``; Native, Arrow, TabSeparated ... all produced by the engine) and its errors are
ClickHouse's. It stands in for a server because no ClickHouse server recent enough runs offline here (Debian's
18.16 predates the SQL the analyses use); it is a test helper, never shipped. Authentication is checked the way a
server checks it (HTTP basic or the ``X-ClickHouse-User`` / ``X-ClickHouse-Key`` headers), so a wrong password
fails as it would against a server.
"""

from __future__ import annotations

import base64
import gzip
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# the shared embedded session of that data folder: chdb runs one session per process, and the test's own
# sources use the same one
from loratrace.sources.clickhouse import _Chdb


class ClickHouseHTTPShim:
    """ClickHouse's HTTP interface on ``127.0.0.1:port`` over the embedded engine's data folder ``path``."""

    def __init__(self, path: str, *, user: str, password: str) -> None:
        self._engine = _Chdb(path)
        self._lock = threading.Lock()
        self.user, self._password = user, password
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="clickhouse-http-shim", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> ClickHouseHTTPShim:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._engine.close()

    def _authorized(self, headers: Any) -> bool:
        user, key = headers.get("X-ClickHouse-User"), headers.get("X-ClickHouse-Key")
        basic = headers.get("Authorization", "")
        if basic.startswith("Basic "):
            user, _, key = base64.b64decode(basic[6:]).decode().partition(":")
        return user == self.user and key == self._password

    def run(self, sql: str, fmt: str, params: dict[str, str]) -> bytes:
        with self._lock:
            return self._engine._session.query(sql, fmt, params=params or None).bytes()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        shim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads ``shim.requests`` instead."""

            def do_GET(self) -> None:
                self._answer(b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                self._answer(body)

            def _answer(self, body: bytes) -> None:
                url = urlsplit(self.path)
                if url.path == "/ping":
                    return self._send(200, b"Ok.\n", {})
                args = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
                sql = "\n".join(part for part in (args.get("query", ""), body.decode()) if part.strip())
                shim.requests.append(sql)
                if not shim._authorized(self.headers):
                    message = (
                        f"Code: 516. DB::Exception: {self.headers.get('X-ClickHouse-User') or 'user'}: "
                        "Authentication failed: password is incorrect, or there is no user with such name. "
                        "(AUTHENTICATION_FAILED)\n"
                    )
                    return self._send(403, message.encode(), {"X-ClickHouse-Exception-Code": "516"})
                params = {k.removeprefix("param_"): v for k, v in args.items() if k.startswith("param_")}
                fmt = args.get("default_format", "TabSeparated")
                try:
                    data = shim.run(sql, fmt, params)
                except Exception as exc:  # the engine's own error, as a server reports it
                    text = str(exc)
                    code = text.split("Code: ", 1)[-1].split(".", 1)[0] if "Code: " in text else "1000"
                    return self._send(500, f"{text}\n".encode(), {"X-ClickHouse-Exception-Code": code})
                headers = {
                    "X-ClickHouse-Format": fmt,
                    "X-ClickHouse-Timezone": "UTC",
                    "X-ClickHouse-Query-Id": args.get("query_id", ""),
                    "X-ClickHouse-Summary": '{"read_rows":"0","read_bytes":"0","written_rows":"0","written_bytes":"0"}',
                }
                return self._send(200, data, headers)

            def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
