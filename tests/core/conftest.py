"""Every test here leaves no exporter running: a leaked one goes on retrying in the background, and its backoff
draws from the global ``random`` module while later tests run (hypothesis, in tests/collector, rejects that)."""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Iterator

import pytest

# The SDK's batch processors and periodic metric reader: while one lives, its exporter may still be sending or
# retrying. (loratrace's own worker threads are long-lived by design and idle between calls.)
_EXPORTING_THREAD_PREFIXES = ("OtelBatch", "OtelPeriodicExportingMetricReader")
_ENDS_WITHIN_S = 5.0


def _exporting_or_non_daemon(thread: threading.Thread) -> bool:
    return not thread.daemon or thread.name.startswith(_EXPORTING_THREAD_PREFIXES)


def _describe(threads: list[threading.Thread]) -> str:
    frames = sys._current_frames()
    parts = []
    for thread in threads:
        frame = frames.get(thread.ident or -1)
        stack = "".join(traceback.format_stack(frame)[-4:]) if frame is not None else "  (no frame)\n"
        parts.append(f"{thread.name} (daemon={thread.daemon}):\n{stack}")
    return "\n".join(parts)


@pytest.fixture(autouse=True)
def _no_exporter_outlives_the_test() -> Iterator[None]:
    """Fails the test whose exporter threads (or any non-daemon thread) it started are still alive, once its
    other fixtures are torn down, after ``_ENDS_WITHIN_S``: shut down what it starts, with a bounded timeout."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + _ENDS_WITHIN_S
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and _exporting_or_non_daemon(t)]
        if not leaked or time.monotonic() >= deadline:
            break
        leaked[0].join(max(0.0, min(0.1, deadline - time.monotonic())))
    if leaked:
        pytest.fail(
            f"this test left {len(leaked)} exporter or non-daemon thread(s) running {_ENDS_WITHIN_S:.0f} s after it "
            f"ended; shut down the providers/exporters it starts:\n{_describe(leaked)}",
            pytrace=False,
        )
