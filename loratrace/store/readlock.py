"""Readers and the deletion of covered segments, kept apart by an advisory lock (``state/readers.lock``).

DuckDB lists a view's files and opens them a moment later; a file deleted in between fails the query. So
``loratrace.store.query`` (and ``loratrace sql``) hold a shared lock while they run, and compaction deletes
covered segments only under the exclusive lock, taken without waiting: while readers are busy it leaves the
files for its next pass. Other readers (a plain ``duckdb`` shell) do not take the lock; for them deletion is
rare (once per maintenance pass, of files nobody has counted for the grace period) and a rerun succeeds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from loratrace.store import layout

LOCK: Final = "readers.lock"


def _path(store: Path) -> Path:
    return store / layout.STATE / LOCK


@contextlib.contextmanager
def reading(store: Path) -> Iterator[None]:
    """Hold the shared lock while a query lists and opens segments.

    The lock file is created here when missing: a reader that skipped the lock because compaction had not yet
    created it could otherwise race the very first deletion. Only a store this process cannot write to (a
    read-only copy, where nothing is ever deleted) is read without the lock.
    """
    try:
        fd = os.open(_path(store), os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def deleting(store: Path) -> Iterator[bool]:
    """Try the exclusive lock without waiting; yields whether deleting is safe now."""
    fd = os.open(_path(store), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
