"""The one background-worker class behind loratrace's threads: the finisher, the export thread, the flush thread.

Each is a daemon thread that takes items from a queue and handles them in batches; they differ only in what a
batch is and how long the thread gathers one. The shape follows the OpenTelemetry SDK's ``BatchProcessor``
(``opentelemetry/sdk/_shared_internal``): a daemon thread, a bounded queue, reset after a fork. Where it differs:

- **lazy start**: the thread starts with the first item, so a process that instruments and never serves (a CLI
  command, a test) starts none;
- **bounded**: beyond ``max_queued`` items a new item is refused (counted in ``dropped``, told once per episode
  through ``_dropping`` / ``_caught_up``), so a blocked thread costs the caller no more than the bound in memory;
- **fork reset**: the thread does not survive ``os.fork``, so the child starts with an empty queue and no thread
  (``os.register_at_fork``, through a weak reference so that a worker can still be collected);
- **run on the caller at shutdown**: Python 3.12+ starts no thread once the interpreter is shutting down (a
  flush from an ``atexit`` handler), and then the item is handled on the caller's thread at once.

``drain()`` waits until everything queued before it is handled; a batch is handled up to each drain in it, so
what a drain waits for includes what those items did.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")


class _Drain:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()  # ends a thread that was given up on (see CallRunner)


class BackgroundWorker(Generic[Item]):
    """A lazily started daemon thread handling queued items in batches; subclasses define ``_handle``.

    ``gather_seconds``: after the first item of a batch, wait this long for more (one wake per interval instead
    of one per item) unless ``wake_at`` items are waiting or a drain is asked for. The settings are read on use,
    so they can be changed on a running worker.
    """

    def __init__(
        self,
        name: str,
        *,
        max_queued: int,
        gather_seconds: float = 0.0,
        wake_at: int = 0,
        drain_at_exit_seconds: float | None = None,
    ) -> None:
        self.name = name
        self.max_queued = max_queued
        self.gather_seconds = gather_seconds
        self.wake_at = wake_at
        self._drain_at_exit_seconds = drain_at_exit_seconds
        self._drain_registered = False
        self.dropped = 0  # items refused because the queue was full, since the process started
        self._reset()
        if hasattr(os, "register_at_fork"):
            reset = weakref.WeakMethod(self._after_fork)

            def after_in_child() -> None:
                method = reset()
                if method is not None:
                    method()

            os.register_at_fork(after_in_child=after_in_child)

    def _reset(self) -> None:
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._dropped_in_episode = 0

    # --- for subclasses ---------------------------------------------------------------------------------------
    def _handle(self, items: list[Item]) -> None:
        """Handle one batch, in order (on the worker's thread, or on the caller's when no thread can start)."""
        raise NotImplementedError

    def _dropping(self) -> None:
        """The first item refused since the queue last had room."""
        logger.warning("loratrace's %s thread is dropping work: %d items wait, its limit", self.name, self.max_queued)

    def _caught_up(self, dropped: int) -> None:
        """The queue has room again after refusing ``dropped`` items."""
        logger.warning("loratrace's %s thread is keeping up again, after dropping %d items", self.name, dropped)

    def _after_fork_in_child(self) -> None:
        """Reset what a subclass keeps for its thread (the worker's own queue and thread are already reset)."""

    # --- for callers ------------------------------------------------------------------------------------------
    def on_worker_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def put(self, item: Item) -> bool:
        """Queue ``item``; False when it was refused because the queue is full."""
        if self._thread is None and not self._start():
            self._handle_logged([item])  # no thread to be had (interpreter shutdown): handled here, now
            return True
        queue = self._queue
        waiting = queue.qsize()
        if waiting >= self.max_queued:
            self._drop()
            return False
        queue.put(item)
        if self.wake_at and waiting + 1 >= self.wake_at:
            self._wake.set()
        return True

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before this call is handled; False on timeout."""
        if self._thread is None:
            return True
        if self.on_worker_thread():
            return True  # called while handling a batch: what came before it is handled
        marker = _Drain()
        self._queue.put(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    # --- the thread -------------------------------------------------------------------------------------------
    def _start(self) -> bool:
        with self._lock:
            if self._thread is not None:
                return True
            thread = threading.Thread(target=self._run, args=(self._queue, self._wake), name=self.name, daemon=True)
            try:
                thread.start()
            except RuntimeError:
                return False
            self._thread = thread
            register = self._drain_at_exit_seconds is not None and not self._drain_registered
            self._drain_registered = True
        if register:
            # registered after the SDK providers' own exit handlers, so it runs before their shutdown
            atexit.register(self.drain, self._drain_at_exit_seconds)
        return True

    def _run(self, queue: SimpleQueue[Any], wake: threading.Event) -> None:
        while True:
            batch = [queue.get()]
            if self.gather_seconds > 0:
                wake.wait(self.gather_seconds)
                wake.clear()
            while True:
                try:
                    batch.append(queue.get_nowait())
                except Empty:
                    break
            items: list[Item] = []
            for item in batch:
                if type(item) is _Drain:
                    self._handle_logged(items)
                    items = []
                    item.done.set()
                elif item is _STOP:
                    self._handle_logged(items)
                    return
                else:
                    items.append(item)
            self._handle_logged(items)
            if self._dropped_in_episode and queue.qsize() < self.max_queued // 2:
                dropped, self._dropped_in_episode = self._dropped_in_episode, 0
                self._caught_up(dropped)

    def _handle_logged(self, items: list[Item]) -> None:
        if not items:
            return
        try:
            self._handle(items)
        except Exception:  # nothing a batch does may stop the thread
            logger.debug("loratrace's %s thread could not handle a batch", self.name, exc_info=True)

    def _drop(self) -> None:
        self.dropped += 1
        self._dropped_in_episode += 1
        if self._dropped_in_episode == 1:
            self._dropping()

    def _give_up_thread(self) -> None:
        """Leave the current thread to finish what it holds, then stop; the next item starts a new one."""
        with self._lock:
            queue, self._queue, self._wake, self._thread = self._queue, SimpleQueue(), threading.Event(), None
        queue.put(_STOP)

    def _after_fork(self) -> None:
        # The thread does not survive a fork; queued work belongs to the parent.
        self._reset()
        self._after_fork_in_child()


class _Call:
    __slots__ = ("done", "function", "result")

    def __init__(self, function: Callable[[], Any]) -> None:
        self.function = function
        self.done = threading.Event()
        self.result: Any = None


class CallRunner(BackgroundWorker[_Call]):
    """Runs calls one at a time on its thread, each waited for by its caller up to a timeout.

    For calls that can hang on the network (a provider's ``force_flush`` or ``shutdown`` with an endpoint that
    does not answer): the caller returns at its deadline and the call finishes, or not, in the background. A call
    still running at its caller's deadline keeps the thread to itself, and later calls get a new one, so one hung
    flush holds no later flush or shutdown.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name, max_queued=64)

    def call(self, function: Callable[[], Any], timeout: float) -> tuple[bool, Any]:
        """(finished in time, what ``function()`` returned)."""
        job = _Call(function)
        if not self.put(job):
            return False, None
        if job.done.wait(max(0.0, timeout)):
            return True, job.result
        self._give_up_thread()
        return False, None

    def _handle(self, items: list[_Call]) -> None:
        for job in items:
            try:
                job.result = job.function()
            except Exception:
                logger.debug("loratrace's %s thread: %r failed", self.name, job.function, exc_info=True)
            finally:
                job.done.set()
