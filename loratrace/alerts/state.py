"""Alert state in the store folder (``STORE/state/alerts/``), safe when two checks run at once.

``state.json`` keeps, per alert key, where the alert is in pending → firing → resolved and when its condition was
first and last true, plus an outbox of notifications a sink has not taken yet. A check holds ``lock`` (an
exclusive ``flock``) from reading the state until its notifications are out and the state is written back, so
two checks started together run one after the other and the second sees what the first sent: no duplicates.
The file is replaced atomically (write, fsync, rename), so a check killed midway leaves the previous state.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from loratrace.errors import StoreError

STATE_DIR: Final = Path("state") / "alerts"
STATE_FILE: Final = "state.json"
LOCK_FILE: Final = "lock"
OUTBOX_LIMIT: Final = 1000
"""Undelivered notifications kept per sink; the oldest are dropped beyond it (and the check says so)."""


def state_dir(store: str | os.PathLike[str]) -> Path:
    """The default state folder of a store."""
    return Path(store) / STATE_DIR


@contextlib.contextmanager
def locked(folder: Path, *, timeout: float = 300.0) -> Iterator[None]:
    """Hold the store's alert lock; waits for a running check, up to ``timeout`` seconds.

    Raises
    ------
    StoreError
        When the folder cannot be written or the lock is not free in time.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = (folder / LOCK_FILE).open("a+")
    except OSError as exc:
        msg = f"cannot write the alert state in {folder}: {exc.strerror or exc}"
        raise StoreError(msg) from exc
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    msg = f"another alert check has held {folder / LOCK_FILE} for over {timeout:.0f} s"
                    raise StoreError(msg) from None
                time.sleep(0.05)
        yield
    finally:
        handle.close()  # closing the descriptor releases the lock


def load_state(folder: Path) -> dict[str, Any]:
    """The saved state, or an empty one for a first check."""
    path = folder / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": 1, "alerts": {}, "outbox": {}}
    except (OSError, ValueError) as exc:
        msg = f"the alert state {path} is unreadable ({exc}); move it aside to start from no open alerts"
        raise StoreError(msg) from exc
    data.setdefault("alerts", {})
    data.setdefault("outbox", {})
    return data


def save_state(folder: Path, state: dict[str, Any]) -> None:
    """Replace the state file atomically."""
    tmp = folder / f".{STATE_FILE}.{os.getpid()}.tmp"
    with tmp.open("w", encoding="utf-8") as out:
        json.dump(state, out, sort_keys=True, indent=1)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(folder / STATE_FILE)
