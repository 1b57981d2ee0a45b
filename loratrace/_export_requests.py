"""Span exports asked for after a finisher burst, run on a thread of their own.

After each burst the generations ask their span processor to export what the burst ended (see
``GenerationRecorder``). An export waits on the network: with no collector listening (the default endpoint on a
machine where none runs) or one that accepts and never answers, the OTLP exporter retries each batch of 512 spans
until its timeout (10 s by default), and the SDK's ``force_flush`` waits for every batch in its queue. Run on the
finisher thread, that held the next burst for up to 40 s while the serving thread kept queueing generations:
15,000 waiting and +70 MB after a minute at 410 calls/s (``docs/benchmarks.md``). Here a hung export holds only
this thread. Requests made while an export runs are merged, so each processor has at most one export pending,
and the BatchSpanProcessor's own bounded queue keeps what waits for it bounded too.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class ExportRequests:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # insertion-ordered set of the exports asked for since the thread last looked
        self._pending: dict[Callable[[], Any], None] = {}
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def request(self, export: Callable[[], Any]) -> None:
        """Run ``export()`` soon on the export thread; never waits. Asked again before it runs, it runs once."""
        with self._lock:
            started = self._thread is not None or self._start()
            if started:
                self._pending[export] = None
        if started:
            self._wake.set()
        else:
            export()  # no thread to be had (see _start): the caller waits for this one export

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
            for export in exports:
                try:
                    export()
                except Exception:  # an exporter's failure must never stop the thread
                    logger.debug("loratrace could not export spans (%r)", export, exc_info=True)

    def _after_fork(self) -> None:
        # The thread does not survive a fork; what the parent asked for is the parent's to export.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self._pending = {}


export_requests = ExportRequests()
