"""One collector per store: an exclusive ``flock`` on the store's writer lock file, held for the collector's life.

Two collectors on one store would both replay and flush the same write-ahead log (every span stored twice),
and each would delete the other's temporary files on start. The kernel drops the lock when the holding process
dies, however it dies, so a collector killed with ``kill -9`` never blocks its restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from loratrace.errors import CollectorError
from loratrace.store import layout


class WriterLock:
    """The held lock; ``release`` (or process exit) lets another collector take the store."""

    def __init__(self, store: Path, *, writer_id: str = "0") -> None:
        path = layout.writer_lock_path(store, writer_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"another collector (pid {holder})" if holder else "another collector"
            msg = (
                f"{who} is already writing the store {store} (it holds {path}); stop it first or give this "
                "collector another --store"
            )
            raise CollectorError(msg) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
