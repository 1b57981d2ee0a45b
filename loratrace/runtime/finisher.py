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

The queue is bounded (``_MAX_QUEUED``). Work on this thread can block for as long as something else lets it: a
user's ``SimpleSpanProcessor`` exports each span as it ends, and with its endpoint unreachable every span waits
for the exporter's timeout. Beyond the bound new generations are dropped (counted, and logged once per episode),
so serving keeps its memory; everything accepted before is still completed. A vLLM batch is one item
(``submit_all``), so a batch of any size is kept whole; it runs as a series of bursts of ``_BURST_ITEMS``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any

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


class Finisher:
    def __init__(self) -> None:
        self._queue: SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # insertion-ordered set of what to call once the running burst is over; touched by the worker thread only
        self._after_burst: dict[Callable[[], Any], None] = {}
        self.dropped = 0  # generations refused because the queue was full, since the process started
        self._dropped_in_episode = 0
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def submit(self, function: Callable[..., Any], *args: Any) -> None:
        """Queue ``function(*args)`` for the worker; dropped (see the module's note) when the queue is full."""
        if self._thread is None:
            self._start()
        queue = self._queue
        waiting = queue.qsize()
        if waiting >= _MAX_QUEUED:
            self._drop()
            return
        queue.put((function, args))
        if waiting + 1 >= _BURST_ITEMS:
            self._wake.set()

    def submit_all(self, tasks: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> None:
        """Queue ``(function, args)`` tasks as one item, run in order: a vLLM batch's request spans. One item for
        the whole batch, so a batch larger than the queue's bound (offline runs of 30,000 prompts) is kept whole."""
        if tasks:
            self.submit(self._run_group, tasks)

    def _drop(self) -> None:
        self.dropped += 1
        self._dropped_in_episode += 1
        if self._dropped_in_episode == 1:
            logger.warning(
                "loratrace is dropping generation spans: %d are waiting to be completed, its limit. Something "
                "on its background thread is blocking, most likely a span processor that exports as each span "
                "ends (a SimpleSpanProcessor) to an endpoint that does not answer; use a BatchSpanProcessor, or "
                "check the endpoint.",
                _MAX_QUEUED,
            )

    def after_burst(self, function: Callable[[], Any]) -> None:
        """Call ``function`` once the running burst's tasks are done, and before a drain among them returns; once
        per burst however many of its tasks ask. Called from anywhere but a queued task, it calls at once."""
        if threading.current_thread() is not self._thread:
            function()
            return
        self._after_burst[function] = None

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted before this call has run; False on timeout."""
        if self._thread is None:
            return True
        if threading.current_thread() is self._thread:
            return True  # called from a queued task: what came before it has run
        done = threading.Event()
        self._queue.put((_drained, (done,)))
        self._wake.set()
        return done.wait(timeout)

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name="loratrace-finisher", daemon=True)
            thread.start()
            self._thread = thread
            atexit.register(self.drain, _DRAIN_AT_EXIT_SECONDS)

    def _run(self) -> None:
        queue = self._queue
        while True:
            batch = [queue.get()]
            # Gather work for a while (unless someone drains): one burst per interval holds the GIL once, instead
            # of waking for every span and contending with the serving thread on each call.
            self._wake.wait(_GATHER_SECONDS)
            self._wake.clear()
            while True:
                try:
                    batch.append(queue.get_nowait())
                except Empty:
                    break
            for function, args in batch:
                if function is _drained:  # what the drain waits for includes what the tasks before it asked for
                    self._call_after_burst()
                _run_task(function, args)
            self._call_after_burst()
            if self._dropped_in_episode and queue.qsize() < _MAX_QUEUED // 2:
                dropped, self._dropped_in_episode = self._dropped_in_episode, 0
                logger.warning("loratrace is keeping up again, after dropping %d generation spans", dropped)

    def _run_group(self, tasks: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> None:
        for done, (function, args) in enumerate(tasks, 1):
            _run_task(function, args)
            if done % _BURST_ITEMS == 0:  # a large group is a series of bursts to what waits for a burst's end
                self._call_after_burst()

    def _call_after_burst(self) -> None:
        functions, self._after_burst = self._after_burst, {}
        for function in functions:
            try:
                function()
            except Exception:
                logger.debug("loratrace could not complete a burst (%r)", function, exc_info=True)

    def _after_fork(self) -> None:
        # The thread does not survive a fork; queued work belongs to the parent.
        self._queue = SimpleQueue()
        self._thread = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._after_burst = {}
        self._dropped_in_episode = 0


def _run_task(function: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        function(*args)
    except Exception:  # a failure to record one span's telemetry must never stop the thread, nor lose the rest
        logger.debug("loratrace could not finish a span (%r)", function, exc_info=True)


def _drained(done: threading.Event) -> None:
    done.set()


finisher = Finisher()
