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
import threading
from collections.abc import Callable
from typing import Any

from loratrace.runtime.worker import BackgroundWorker

logger = logging.getLogger(__name__)

EXPORT_WAIT_SECONDS = 2.0
# Requests merge (one export per processor per batch), so the queue holds at most one request per finisher burst
# that came while an export hung: 1,024 are over half an hour of bursts each waiting its EXPORT_WAIT_SECONDS.
_MAX_QUEUED = 1024

Request = tuple[Callable[[], Any], threading.Event]


class ExportRequests(BackgroundWorker[Request]):
    def __init__(self) -> None:
        super().__init__("loratrace-export", max_queued=_MAX_QUEUED)

    def request(self, export: Callable[[], Any], wait_s: float = 0.0) -> bool:
        """Run ``export()`` soon on the export thread, and wait up to ``wait_s`` for it; True if it ran by then.
        Asked again before it starts, it runs once."""
        done = threading.Event()
        if not self.put((export, done)):
            return False
        return done.wait(wait_s) if wait_s > 0 else done.is_set()

    def _handle(self, items: list[Request]) -> None:
        merged: dict[Callable[[], Any], list[threading.Event]] = {}
        for export, done in items:
            merged.setdefault(export, []).append(done)
        for export, waiting in merged.items():
            try:
                export()
            except Exception:  # an exporter's failure must never stop the thread
                logger.debug("loratrace could not export spans (%r)", export, exc_info=True)
            for done in waiting:
                done.set()


export_requests = ExportRequests()
