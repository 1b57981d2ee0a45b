"""The write-ahead log: OTLP request bytes appended to files on disk before the export is acknowledged.

Record layout: ``<u32 payload length><u32 crc32 of payload><u8 kind>`` then the payload (the raw, decompressed
protobuf request). Offsets are global byte positions across files; each file is named after the offset of its
first byte. Durability is by group commit: appends go to the page cache under a lock, one syncer thread
``fsync``s whatever has been appended, and every waiting request is released once its record is covered. So an
acknowledgement means the bytes were ``fsync``ed (survives kill -9 and power loss), at the cost of one
fsync per
group, not per request.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

HEADER: Final = struct.Struct("<IIB")
KIND_TRACES: Final = 1
KIND_METRICS: Final = 2
_SUFFIX: Final = ".wal"
_DISK_FULL: Final = frozenset((errno.ENOSPC, errno.EDQUOT))

logger = logging.getLogger(__name__)


def wal_files(directory: Path) -> list[tuple[int, Path]]:
    """(start offset, path) of every log file, oldest first."""
    if not directory.is_dir():
        return []
    files = []
    for path in directory.iterdir():
        if path.suffix == _SUFFIX and path.stem.isdigit():
            files.append((int(path.stem), path))
    return sorted(files)


def _file_name(start: int) -> str:
    return f"{start:020d}{_SUFFIX}"


def _valid_length(path: Path) -> int:
    """Bytes of ``path`` that hold complete, checksummed records (a crash can leave a torn last record)."""
    valid = 0
    with open(path, "rb") as handle:
        data = handle.read()
    while valid + HEADER.size <= len(data):
        length, crc, _ = HEADER.unpack_from(data, valid)
        end = valid + HEADER.size + length
        if end > len(data) or zlib.crc32(data[valid + HEADER.size : end]) != crc:
            break
        valid = end
    return valid


class WalWriter:
    """Appends records and makes them durable in groups; one writer process per store."""

    def __init__(self, directory: Path, *, file_bytes: int = 64 << 20, fsync: bool = True) -> None:
        self.directory = directory
        self.file_bytes = file_bytes
        self.fsync = fsync
        directory.mkdir(parents=True, exist_ok=True)
        files = wal_files(directory)
        if files:
            start, path = files[-1]
            valid = _valid_length(path)
            if valid < path.stat().st_size:
                # a torn record from a crash was never acknowledged: drop it
                with open(path, "rb+") as handle:
                    handle.truncate(valid)
                    os.fsync(handle.fileno())
            self._file_start = start
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            self._end = start + valid
        else:
            self._file_start = 0
            self._fd = os.open(directory / _file_name(0), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._end = 0
        self._lock = threading.Lock()
        self._synced = self._end
        self._cond = threading.Condition()
        self._closed = False
        self._syncer = threading.Thread(target=self._sync_loop, name="loratrace-wal-sync", daemon=True)
        self._syncer.start()

    @property
    def end(self) -> int:
        """Offset just past the last appended record."""
        return self._end

    @property
    def file_bytes_used(self) -> int:
        """Bytes in the log file being appended to."""
        return self._end - self._file_start

    def roll(self) -> None:
        """Start a new log file now (the current one can then be deleted once it is in segments)."""
        with self._lock:
            if not self._closed and self._end > self._file_start:
                self._roll()

    @property
    def synced(self) -> int:
        """Offset up to which the log is on disk."""
        return self._synced

    def append(self, kind: int, payload: bytes) -> int:
        """Append one record; returns the offset at which it ends (wait for it with ``wait_durable``)."""
        record = HEADER.pack(len(payload), zlib.crc32(payload), kind) + payload
        with self._lock:
            if self._closed:
                msg = "the write-ahead log is closed (the collector is shutting down)"
                raise OSError(msg)
            if self._end - self._file_start >= self.file_bytes:
                self._roll()
            try:
                self._write_whole(record)
            except OSError as exc:
                if exc.errno in _DISK_FULL and self._end > self._file_start:
                    # only whole files are deleted once in segments: move on to a new one, so the space of
                    # this one comes back after the next flush instead of the disk staying full for good
                    with contextlib.suppress(OSError):
                        self._roll()
                raise
            self._end += len(record)
            end = self._end
        with self._cond:
            self._cond.notify_all()
        return end

    def _write_whole(self, record: bytes) -> None:
        """Write all of ``record`` or none of it: a full disk gives short writes and ENOSPC.

        A record only partly on disk must never be acknowledged, and must not stay in the file either: the
        records appended after it would sit behind a torn one, where a reader (and a restart) stops. So a failed
        write is cut off again before the error goes up; if even that fails the log goes on in a new file, which
        readers reach by skipping the old file's torn tail.
        """
        written = 0
        try:
            while written < len(record):
                count = os.write(self._fd, record[written:] if written else record)
                if count <= 0:
                    msg = "the write-ahead log's disk accepted no bytes"
                    raise OSError(errno.ENOSPC, msg)
                written += count
        except OSError:
            if written:
                self._cut_torn_tail()
            raise

    def _cut_torn_tail(self) -> None:
        try:
            os.ftruncate(self._fd, self._end - self._file_start)
        except OSError:
            logger.warning("cannot cut a torn write-ahead log record off; continuing in a new log file")
            self._switch_file()

    def _roll(self) -> None:
        # the old file must be complete on disk before records land in the next one
        os.fsync(self._fd)
        self._switch_file()

    def _switch_file(self) -> None:
        # the new file first: if that fails (a full disk) the log still has a file to append to
        fd = os.open(self.directory / _file_name(self._end), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(self._fd)
        self._fd = fd
        self._file_start = self._end
        if self.fsync:
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def wait_durable(self, offset: int, timeout: float = 10.0) -> bool:
        """Block until the log is on disk up to ``offset``; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._synced >= offset or self._closed, timeout=timeout) and (
                self._synced >= offset
            )

    def _sync_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._end > self._synced or self._closed)
                if self._closed and self._end <= self._synced:
                    return
            with self._lock:
                target = self._end
                try:
                    if self.fsync and not self._closed:
                        os.fsync(self._fd)
                except OSError as exc:  # EIO / ENOSPC on some filesystems: nothing is acknowledged, try again
                    logger.warning("fsync of the write-ahead log failed (%s); retrying", exc)
                    failed = True
                else:
                    failed = False
            if failed:
                self._closed_or_wait(0.5)
                continue
            with self._cond:
                self._synced = max(self._synced, target)
                self._cond.notify_all()

    def _closed_or_wait(self, seconds: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._closed, timeout=seconds)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            os.fsync(self._fd)
            os.close(self._fd)
            self._closed = True
            target = self._end
        with self._cond:
            self._synced = max(self._synced, target)
            self._cond.notify_all()
        self._syncer.join(timeout=5)


@dataclass
class Record:
    kind: int
    payload: bytes
    end: int


class WalReader:
    """Reads complete records from an offset on; tolerant of a record still being written at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def read(self, offset: int, *, max_bytes: int) -> Iterator[Record]:
        files = wal_files(self.directory)
        taken = 0
        for index, (start, path) in enumerate(files):
            next_start = files[index + 1][0] if index + 1 < len(files) else None
            if next_start is not None and next_start <= offset:
                continue
            if start > offset:
                return  # a gap: the file holding ``offset`` is gone (should not happen)
            with open(path, "rb") as handle:
                handle.seek(offset - start)
                while taken < max_bytes and (next_start is None or offset < next_start):
                    header = handle.read(HEADER.size)
                    if len(header) < HEADER.size:
                        break
                    length, crc, kind = HEADER.unpack(header)
                    payload = handle.read(length)
                    if len(payload) < length or zlib.crc32(payload) != crc:
                        if next_start is None:
                            return  # the writer is mid-append: come back later
                        offset = next_start  # a torn tail the writer left behind when it moved to a new file
                        break
                    offset += HEADER.size + length
                    taken += HEADER.size + length
                    yield Record(kind, payload, offset)
            if taken >= max_bytes or next_start is None or offset < next_start:
                return

    def remove_before(self, offset: int) -> int:
        """Delete log files wholly below ``offset`` (already in segments); returns how many."""
        files = wal_files(self.directory)
        removed = 0
        for index, (_, path) in enumerate(files[:-1]):
            if files[index + 1][0] <= offset:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def size(self) -> int:
        return sum(path.stat().st_size for _, path in wal_files(self.directory) if path.exists())
