"""``loratrace status``: is a collector writing this store, what has it counted, how big is the store, how fresh.

A running collector records where it listens in ``state/collector.json`` (written once it serves, removed when
it stops), so the status of a store needs no other flag: its counters come from that collector's ``/health``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from loratrace.store import layout
from loratrace.store.readers import query

COLLECTOR_FILE: Final = "collector.json"
_HEALTH_TIMEOUT_S: Final = 5.0


def collector_file(store: Path) -> Path:
    return store / layout.STATE / COLLECTOR_FILE


def record_collector(store: Path, *, pid: int, http: str | None, grpc: str | None, tls: bool) -> None:
    """Record the running collector's process and addresses (``host:port``, None when that protocol is off)."""
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    document = {"pid": pid, "http": http, "grpc": grpc, "tls": tls, "started": started}
    layout.atomic_write_bytes(collector_file(store), json.dumps(document).encode())


def forget_collector(store: Path, *, pid: int) -> None:
    """Remove the record when it is this process's (a second collector may have replaced it)."""
    path = collector_file(store)
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


@dataclass(frozen=True)
class StoreStatus:
    store: str
    size_bytes: int
    segments: int
    spans: int
    newest_span: datetime | None
    collector: dict[str, Any] | None  # the running collector's record and /health counters; None: none runs
    collector_error: str | None = None  # a recorded collector that did not answer

    def as_dict(self) -> dict[str, Any]:
        """The fields, ``newest_span`` as ISO 8601 text."""
        return {**asdict(self), "newest_span": self.newest_span.isoformat() if self.newest_span else None}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _collector(store: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        record = json.loads(collector_file(store).read_text())
    except (OSError, ValueError):
        return None, None
    if not _alive(int(record.get("pid", 0))):
        return None, None  # a collector killed with SIGKILL leaves its record: it is not running
    http = record.get("http")
    if http is None:
        return record, "the collector receives gRPC only, so its counters (served over HTTP) are not available"
    if record.get("tls"):
        return record, f"the collector serves TLS: read its counters with curl https://{http}/health"
    host, _, port = http.rpartition(":")
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::", "[::]") else host
    url = f"http://{host}:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=_HEALTH_TIMEOUT_S) as response:
            return {**record, "health": json.loads(response.read())}, None
    except urllib.error.HTTPError as exc:  # a collector with --auth-token answers /health 401
        return record, f"the collector at {url} answered {exc.code} to /health"
    except (OSError, ValueError) as exc:
        return record, f"the collector at {url} did not answer /health ({exc})"


def store_status(store: str | os.PathLike[str]) -> StoreStatus:
    """The status of ``store``: its size on disk, spans, newest span, and the counters of its collector."""
    path = Path(store).resolve()
    frame = query(path, "SELECT count(*) AS n, max(start_time) AS newest FROM spans")
    spans, newest = frame.row(0)
    files = [p for p in path.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    segments = sum(1 for p in files if p.suffix == ".parquet" and layout.segment_walend(p.name) is not None)
    collector, error = _collector(path)
    return StoreStatus(str(path), size, segments, int(spans), newest, collector, error)
