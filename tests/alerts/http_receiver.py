"""A real HTTP receiver on 127.0.0.1 for the sinks: answers 200, 500, or holds its answer past the client's timeout."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    url: str
    mode: str = "ok"  # "ok" | "error" | "hang"
    bodies: list[Any] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    attempts: int = 0
    times: list[float] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def http_receiver(mode: str = "ok") -> Iterator[Receiver]:
    receiver = Receiver(url="", mode=mode)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.attempts += 1
                receiver.times.append(time.monotonic())
            if receiver.mode == "hang":
                receiver.release.wait(30)
                return
            if receiver.mode == "error":
                self.send_response(500)
                self.end_headers()
                return
            with receiver.lock:
                receiver.bodies.append(json.loads(body))
                receiver.paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook/secret-token-123"
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
