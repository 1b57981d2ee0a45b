"""Span exports asked for after a finisher burst, run on a thread of their own.

After each burst the generations ask their span processor to export what the burst ended (see
``GenerationRecorder``). An export waits on the network: with no collector listening (the default endpoint on a
machine where none runs) or one that accepts and never answers, the OTLP exporter retries each batch of 512 spans
until its timeout (10 s by default), and the SDK's ``force_flush`` waits for every batch in its queue. Run on the
finisher thread, that held the next burst for up to 40 s while the serving thread kept queueing generations:
15,000 waiting and +70 MB after a minute at 410 calls/s (``docs/benchmarks.md``). Here a hung export holds only
this thread. Requests made while an export runs are merged, so each processor has at most one export pending,
and the BatchSpanProcessor's own bounded queue keeps what waits for it bounded too.

The finisher still waits for the export, up to ``EXPORT_WAIT_SECONDS``: a large vLLM batch hands the span
processor thousands of spans in one go, faster than an OTLP exporter sends them, and the BatchSpanProcessor drops
what its queue (2,048) cannot hold. Waiting after every 512 spans keeps it from overflowing: 30,000 request spans
to a real collector arrived 24,064 without waiting, all with it. A healthy export of 512 spans takes milliseconds
to tens of them; an endpoint that does not answer costs each burst at most the wait.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

EXPORT_WAIT_SECONDS = 2.0


class ExportRequests:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # the exports asked for since the thread last looked, each with the event set once it has run
        self._pending: dict[Callable[[], Any], threading.Event] = {}
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def request(self, export: Callable[[], Any], wait_s: float = 0.0) -> bool:
        """Run ``export()`` soon on the export thread, and wait up to ``wait_s`` for it; True if it ran by then.
        Asked again before it starts, it runs once."""
        with self._lock:
            started = self._thread is not None or self._start()
            if started:
                done = self._pending.get(export)
                if done is None:
                    done = self._pending[export] = threading.Event()
        if not started:
            export()  # no thread to be had (see _start): the caller waits for this one export
            return True
        self._wake.set()
        return done.wait(wait_s) if wait_s > 0 else False

    def _start(self) -> bool:
        thread = threading.Thread(target=self._run, name="loratrace-export", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            # Python 3.12+ starts no thread once the interpreter is shutting down, and the drain at exit asks
            # for the last burst's export
            return False
        self._thread = thread
        return True

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                exports, self._pending = self._pending, {}
            for export, done in exports.items():
                try:
                    export()
                except Exception:  # an exporter's failure must never stop the thread
                    logger.debug("loratrace could not export spans (%r)", export, exc_info=True)
                done.set()

    def _after_fork(self) -> None:
        # The thread does not survive a fork; what the parent asked for is the parent's to export.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self._pending = {}


export_requests = ExportRequests()
