"""The collector: receivers in this process, the store writer in a child, a write-ahead log between."""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loratrace._shutdown_signals import ShutdownSignals
from loratrace.collector.grpc_receiver import make_grpc_server
from loratrace.collector.http_receiver import HttpServerSettings, make_http_server
from loratrace.collector.ingest import Ingest
from loratrace.collector.limits import AttributeLimits
from loratrace.collector.store_writer import process as store_writer
from loratrace.collector.store_writer import settings as writer_stats
from loratrace.collector.store_writer.settings import StoreWriterSettings
from loratrace.collector.wal import WalReader, WalWriter
from loratrace.collector.writer_lock import WriterLock
from loratrace.errors import CollectorError
from loratrace.store import layout
from loratrace.store import status as store_status
from loratrace.store.catalog import ensure_store

logger = logging.getLogger(__name__)

TOKEN_ENV = "LORATRACE_AUTH_TOKEN"

# a store writer that dies more often than this within the window is not restarted again
WRITER_RESTARTS = 5
WRITER_RESTART_WINDOW_S = 60.0
# RPCs in progress at shutdown get this long to finish, then are cancelled
GRPC_GRACE_S = 5.0
GRPC_STOP_WAIT_S = GRPC_GRACE_S + 5.0


@dataclass(frozen=True)
class CollectorSettings:
    store: str
    http: tuple[str, int] | None = ("127.0.0.1", 4318)
    grpc: tuple[str, int] | None = ("127.0.0.1", 4317)
    auth_token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    max_request_bytes: int = 32 << 20
    retention_days: int | None = None
    flush_interval: float = 1.0
    compact_interval: float = 30.0
    max_backlog_bytes: int = 1 << 30
    fsync: bool = True
    # bytes every request in flight may hold together: bodies being received and the messages being parsed
    max_in_flight_bytes: int = 512 << 20
    attribute_limits: AttributeLimits = field(default_factory=AttributeLimits)
    http_server: HttpServerSettings = field(default_factory=HttpServerSettings)
    # distinct per collector when several write one store (shared folder): names its log and segments
    writer_id: str = layout.DEFAULT_WRITER


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_security(settings: CollectorSettings) -> None:
    hosts = [addr[0] for addr in (settings.http, settings.grpc) if addr is not None]
    exposed = [h for h in hosts if not is_loopback(h)]
    if exposed and not (settings.auth_token or "").strip():
        msg = (
            f"binding {', '.join(exposed)} exposes the collector beyond this machine; pass --auth-token "
            f"(or set {TOKEN_ENV}) so exporters must send 'Authorization: Bearer <token>'"
        )
        raise CollectorError(msg)
    token = settings.auth_token
    if token is not None and (token != token.strip() or not token or any(c.isspace() for c in token)):
        msg = "--auth-token (or LORATRACE_AUTH_TOKEN) must be a non-empty token without whitespace"
        raise CollectorError(msg)
    if (settings.tls_cert is None) != (settings.tls_key is None):
        msg = "TLS needs both --tls-cert and --tls-key"
        raise CollectorError(msg)
    for path in (settings.tls_cert, settings.tls_key):
        if path is not None and not Path(path).is_file():
            msg = f"TLS file {path!r} does not exist"
            raise CollectorError(msg)
    if settings.tls_cert is not None and settings.tls_key is not None:
        try:  # fail at start with the file names, not at the first client's handshake
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(settings.tls_cert, settings.tls_key)
        except (ssl.SSLError, ValueError) as exc:
            msg = (
                f"cannot use --tls-cert {settings.tls_cert!r} with --tls-key {settings.tls_key!r}: {exc} "
                "(both must be PEM, the key unencrypted and matching the certificate)"
            )
            raise CollectorError(msg) from exc
    elif exposed:
        logger.warning(
            "serving %s without TLS: the bearer token crosses the network in clear (see --tls-cert)",
            ", ".join(exposed),
        )


class Collector:
    def __init__(self, settings: CollectorSettings) -> None:
        check_security(settings)
        self.settings = settings
        # a collector that cannot start leaves no new store folder behind (see ``start``)
        self._store_is_new = not Path(settings.store).exists()
        # before ensure_store: it deletes temporary files, which would be the running collector's
        self.writer_lock = WriterLock(Path(settings.store).resolve(), writer_id=settings.writer_id)
        try:
            self.store = ensure_store(settings.store)
            self.wal = WalWriter(layout.wal_dir(self.store, settings.writer_id), fsync=settings.fsync)
        except BaseException:
            self.writer_lock.release()
            raise
        self.wal_reader = WalReader(layout.wal_dir(self.store, settings.writer_id))
        self.started = time.time()
        self._stopped = threading.Event()
        self.http_server: Any = None
        self.grpc_server: Any = None
        self.http_port: int | None = None
        self.grpc_port: int | None = None
        self.store_writer_settings = StoreWriterSettings(
            store=str(self.store),
            flush_interval=settings.flush_interval,
            compact_interval=settings.compact_interval,
            retention_days=settings.retention_days,
            writer_id=settings.writer_id,
        )
        self.process, self.stats, self.stop_event = store_writer.start_store_writer(self.store_writer_settings)
        self.writer_restarts: deque[float] = deque()
        self.writer_failed = False
        self.ingest = Ingest(
            self.wal,
            backlog=lambda: self.wal.end - int(self.stats[writer_stats.STAT_CHECKPOINT]),
            max_backlog_bytes=settings.max_backlog_bytes,
            max_in_flight_bytes=settings.max_in_flight_bytes,
            attribute_limits=settings.attribute_limits,
        )

    def start(self) -> None:
        try:
            self._start_receivers()
        except BaseException:
            self.stop()
            if self._store_is_new:
                shutil.rmtree(self.store, ignore_errors=True)
            raise

    def _start_receivers(self) -> None:
        cert, key = self.settings.tls_cert, self.settings.tls_key
        tls = (cert, key) if cert and key else None  # validated above: both or neither
        try:
            if self.settings.http is not None:
                host, port = self.settings.http
                try:
                    self.http_server = make_http_server(
                        host,
                        port,
                        ingest=self.ingest,
                        token=self.settings.auth_token,
                        max_request_bytes=self.settings.max_request_bytes,
                        health=self.health,
                        tls=tls,
                        settings=self.settings.http_server,
                    )
                except OSError as exc:
                    msg = (
                        f"cannot bind OTLP/HTTP on {host}:{port} ({exc.strerror or exc}); pick another --http, "
                        "or --http off to receive gRPC only"
                    )
                    raise CollectorError(msg) from exc
                self.http_port = self.http_server.server_address[1]
                threading.Thread(target=self.http_server.serve_forever, name="loratrace-http", daemon=True).start()
            if self.settings.grpc is not None:
                host, port = self.settings.grpc
                self.grpc_server, self.grpc_port = make_grpc_server(
                    host,
                    port,
                    ingest=self.ingest,
                    token=self.settings.auth_token,
                    max_request_bytes=self.settings.max_request_bytes,
                    tls=tls,
                )
                if not self.grpc_port:
                    msg = (
                        f"cannot bind OTLP/gRPC on {host}:{port} (in use? Phoenix, Jaeger and the OpenTelemetry "
                        "Collector listen on 4317 too); pick another --grpc, or --grpc off to receive HTTP only"
                    )
                    raise CollectorError(msg)
                self.grpc_server.start()
        except OSError as exc:
            self.stop()
            msg = f"cannot start the collector's receivers: {exc} (port in use? pick another --http / --grpc)"
            raise CollectorError(msg) from exc

    def supervise(self) -> bool:
        """Restart a dead store writer; False once it died too often to go on (the collector must exit).

        The log holds everything acknowledged, so a restarted writer replays from its checkpoint and loses
        nothing; a writer that dies again and again (more than ``WRITER_RESTARTS`` times in
        ``WRITER_RESTART_WINDOW_S``) is a fault no restart fixes, and a supervisor should see the collector fail.
        """
        if self.process.is_alive() or self._stopped.is_set():
            return True
        now = time.monotonic()
        while self.writer_restarts and now - self.writer_restarts[0] > WRITER_RESTART_WINDOW_S:
            self.writer_restarts.popleft()
        if len(self.writer_restarts) >= WRITER_RESTARTS:
            self.writer_failed = True
            logger.error(
                "the store writer died %d times in %.0f s (last exit code %s); the collector stops",
                len(self.writer_restarts) + 1,
                WRITER_RESTART_WINDOW_S,
                self.process.exitcode,
            )
            return False
        logger.error("the store writer died (exit code %s); restarting it", self.process.exitcode)
        self.writer_restarts.append(now)
        self.process, self.stats, self.stop_event = store_writer.start_store_writer(
            self.store_writer_settings, stats=self.stats
        )
        return True

    def _writer_state(self) -> str:
        if self.writer_failed:
            return "failed"
        if not self.process.is_alive():
            return "dead"
        return "running" if self.stats[writer_stats.STAT_READY] else "starting"

    def health(self) -> dict[str, Any]:
        stats = self.stats
        flushed = int(stats[writer_stats.STAT_CHECKPOINT])
        writer = self._writer_state()
        status = {"running": "ok", "starting": "starting"}.get(writer, "degraded")
        if status == "ok" and stats[writer_stats.STAT_DISK_FULL]:
            status = "degraded"
        return {
            "status": status,
            "store_writer": writer,
            "store_writer_restarts": len(self.writer_restarts),
            "store_disk_full": bool(stats[writer_stats.STAT_DISK_FULL]),
            "writer_id": self.settings.writer_id,
            "uptime_s": round(time.time() - self.started, 3),
            **self.ingest.counters.snapshot(),
            "in_flight_bytes": self.ingest.budget.used,
            "http_connections": self.http_server.open_connections() if self.http_server is not None else 0,
            "wal_end_offset": self.wal.end,
            "wal_durable_offset": self.wal.synced,
            "wal_bytes_on_disk": self.wal_reader.size(),
            "wal_backlog_bytes": self.wal.end - flushed,
            "store_checkpoint_offset": flushed,
            "spans_written": int(stats[writer_stats.STAT_SPANS_WRITTEN]),
            "metric_points_written": int(stats[writer_stats.STAT_METRIC_POINTS]),
            "duplicate_spans_dropped": int(stats[writer_stats.STAT_DUPLICATES]),
            "flushes": int(stats[writer_stats.STAT_FLUSHES]),
            "last_flush_ms": round(stats[writer_stats.STAT_LAST_FLUSH_S] * 1000, 3),
            "max_flush_ms": round(stats[writer_stats.STAT_MAX_FLUSH_S] * 1000, 3),
            "compactions": int(stats[writer_stats.STAT_COMPACTIONS]),
            "decode_errors": int(stats[writer_stats.STAT_DECODE_ERRORS]),
            "store_writer_alive": self.process.is_alive(),
            "store_writer_pid": self.process.pid,
            "http_port": self.http_port,
            "grpc_port": self.grpc_port,
        }

    def wait(self) -> None:
        self._stopped.wait()

    def stop(self) -> int | None:
        """Stop receiving, make the log durable, let the store writer drain it into segments, then exit.

        Returns the store writer's exit code (None when it had to be killed), so the caller can fail loudly.
        """
        if self._stopped.is_set():
            return 0
        self.ingest.closed = True
        if self.grpc_server is not None and not self.grpc_server.stop(grace=GRPC_GRACE_S).wait(GRPC_STOP_WAIT_S):
            logger.warning("the gRPC server did not stop within %.0f s; going on with the shutdown", GRPC_STOP_WAIT_S)
        if self.http_server is not None:
            self.http_server.shutdown()
            self.http_server.server_close()
        self.wal.close()
        code = store_writer.stop_store_writer(self.process, self.stop_event)
        self.writer_lock.release()
        self._stopped.set()
        return code


def run_collector(settings: CollectorSettings, *, on_ready: Any = None) -> None:
    """Run until SIGTERM / SIGINT, then flush everything acknowledged into the store.

    The signal handlers are in place before anything starts: a SIGTERM that arrives while the collector is
    still starting lets it finish starting and then stop cleanly (the default action would kill it with its
    log open and its status file left behind). SIGUSR1 prints every thread's stack to stderr.
    """
    with ShutdownSignals() as signals:
        collector = Collector(settings)
        collector.start()
        try:
            _record_running(collector)
            if on_ready is not None:
                on_ready(collector)
            while not signals.wait(0.2):
                if not collector.supervise():
                    break
        finally:
            code = collector.stop()
            store_status.forget_collector(collector.store, pid=os.getpid())
    if collector.writer_failed or code != 0:
        msg = (
            f"the store writer failed (exit code {code}); every acknowledged span is in the write-ahead log and "
            "a restart replays it (see the log above for the cause)"
        )
        raise CollectorError(msg)


def _record_running(collector: Collector) -> None:
    """Where this collector listens, for ``loratrace status --store``."""
    settings = collector.settings
    http = f"{settings.http[0]}:{collector.http_port}" if settings.http is not None else None
    grpc = f"{settings.grpc[0]}:{collector.grpc_port}" if settings.grpc is not None else None
    tls = settings.tls_cert is not None
    store_status.record_collector(collector.store, pid=os.getpid(), http=http, grpc=grpc, tls=tls)
