"""The expensive end of a generation span, done off the caller's thread.

Starting a span with ~35 attributes, ending it and recording three histograms costs 50-100 µs in the
OpenTelemetry SDK, more than the whole per-call budget of an instrumentation that sits on every model call. The
caller's thread only captures facts (the generation announces its span ids, so it can be current during the call);
one daemon thread builds the SDK span from them, in order, in bursts. A generation asked to end before it is built
ends as soon as it is (``Generation.end``), so an end never overtakes its attributes.

``drain()`` waits until everything queued so far is applied: ``loratrace.force_flush()`` and ``uninstrument()``
call it, and so does interpreter exit (registered after the SDK providers, so it runs before their shutdown).

A task can ask for something to run once its burst is over (``after_burst``): the generations ask then for their
span processor to export the burst's spans (see ``GenerationRecorder``; the export runs on a thread of its own).

The thread is a ``BackgroundWorker`` (``loratrace.runtime.worker``) and its queue is bounded (``_MAX_QUEUED``).
Work on this thread can block for as long as something else lets it: a user's ``SimpleSpanProcessor`` exports
each span as it ends, and with its endpoint unreachable every span waits for the exporter's timeout. Beyond the
bound new generations are dropped (counted, and logged once per episode), so serving keeps its memory; everything
accepted before is still completed. A vLLM batch is one item (``submit_all``), so a batch of any size is kept
whole; it runs as a series of bursts of ``_BURST_ITEMS``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from loratrace.runtime.worker import BackgroundWorker

logger = logging.getLogger(__name__)

_DRAIN_AT_EXIT_SECONDS = 10.0
# One burst every 4 s. While a burst holds the GIL, a serving thread that needs it (a small model's torch ops take
# microseconds) stalls, so a burst lands on the one or two calls in flight however long it is: the rarer the
# bursts, the fewer calls they touch. Measured on the tiny model (bench/bench_transformers_overhead.py, in-situ
# tables): at 1 s, bursts overlapped ~2.3 % of calls and pulled the median call up by ~30 µs; at 4 s, ~0.45 % and
# ~2 µs, for the same work per call. A touched call waits longer (~40 ms instead of ~10), in ~1 call in 200.
# Spans then reach the span processor, and are exported, up to 4 s after their call;
# force_flush(), uninstrument() and interpreter exit do not wait for the interval.
_GATHER_SECONDS = 4.0
# ...unless this many items are waiting: a burst then starts at once, so one burst never hands the span processor
# more spans than the BatchSpanProcessor's default queue (2,048) holds, which would drop them at high request rates.
_BURST_ITEMS = 512
# 16 bursts' worth. In normal running the queue holds at most one burst plus what arrives during one (~30 ms of
# work); at 400 calls/s this is 20 s of calls, and at a few KB per waiting generation, tens of MB.
_MAX_QUEUED = 8192


Task = tuple[Callable[..., Any], tuple[Any, ...]]


class Finisher(BackgroundWorker[Task]):
    """The finisher thread: runs queued ``function(*args)`` tasks in bursts (see the module's note)."""

    def __init__(
        self,
        *,
        gather_seconds: float = _GATHER_SECONDS,
        burst_items: int = _BURST_ITEMS,
        max_queued: int = _MAX_QUEUED,
    ) -> None:
        super().__init__(
            "loratrace-finisher",
            max_queued=max_queued,
            gather_seconds=gather_seconds,
            wake_at=burst_items,
            drain_at_exit_seconds=_DRAIN_AT_EXIT_SECONDS,
        )
        self.burst_items = burst_items
        # insertion-ordered set of what to call once the running burst is over; touched by the worker thread only
        self._after_burst: dict[Callable[[], Any], None] = {}

    def submit(self, function: Callable[..., Any], *args: Any) -> None:
        """Queue ``function(*args)`` for the worker; dropped (see the module's note) when the queue is full."""
        self.put((function, args))

    def submit_all(self, tasks: list[Task]) -> None:
        """Queue ``(function, args)`` tasks as one item, run in order: a vLLM batch's request spans. One item for
        the whole batch, so a batch larger than the queue's bound (offline runs of 30,000 prompts) is kept whole."""
        if tasks:
            self.submit(self._run_group, tasks)

    def after_burst(self, function: Callable[[], Any]) -> None:
        """Call ``function`` once the running burst's tasks are done, and before a drain among them returns; once
        per burst however many of its tasks ask. Called from anywhere but a queued task, it calls at once."""
        if not self.on_worker_thread():
            function()
            return
        self._after_burst[function] = None

    def _handle(self, items: list[Task]) -> None:
        for function, args in items:
            _run_task(function, args)
        self._call_after_burst()

    def _dropping(self) -> None:
        logger.warning(
            "loratrace is dropping generation spans: %d are waiting to be completed, its limit. Something "
            "on its background thread is blocking, most likely a span processor that exports as each span "
            "ends (a SimpleSpanProcessor) to an endpoint that does not answer; use a BatchSpanProcessor, or "
            "check the endpoint.",
            self.max_queued,
        )

    def _caught_up(self, dropped: int) -> None:
        logger.warning("loratrace is keeping up again, after dropping %d generation spans", dropped)

    def _after_fork_in_child(self) -> None:
        self._after_burst = {}

    def _run_group(self, tasks: list[Task]) -> None:
        for done, (function, args) in enumerate(tasks, 1):
            _run_task(function, args)
            if done % self.burst_items == 0:  # a large group is a series of bursts to what waits for a burst's end
                self._call_after_burst()

    def _call_after_burst(self) -> None:
        functions, self._after_burst = self._after_burst, {}
        for function in functions:
            try:
                function()
            except Exception:
                logger.debug("loratrace could not complete a burst (%r)", function, exc_info=True)


def _run_task(function: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        function(*args)
    except Exception:  # a failure to record one span's telemetry must never stop the thread, nor lose the rest
        logger.debug("loratrace could not finish a span (%r)", function, exc_info=True)


finisher = Finisher()
