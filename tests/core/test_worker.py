"""The one background-worker class behind the finisher, the export thread and the flush thread: it starts on first
use, stays bounded, starts afresh in a forked child, runs work on the caller when no thread can be had, and a
call that hangs past its caller's deadline holds no later call."""

from __future__ import annotations

import os
import threading
import time

import pytest

from loratrace.runtime.worker import BackgroundWorker, CallRunner


class Recording(BackgroundWorker[int]):
    def __init__(self, **settings: object) -> None:
        super().__init__("loratrace-test-worker", max_queued=100, **settings)  # type: ignore[arg-type]
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()

    def _handle(self, items: list[int]) -> None:
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)


def test_no_thread_until_the_first_item():
    worker = Recording()
    before = {thread.ident for thread in threading.enumerate()}
    assert worker.drain(timeout=1)  # nothing queued, nothing started
    assert {thread.ident for thread in threading.enumerate()} == before
    worker.put(1)
    assert worker.drain(timeout=10)
    assert worker.batches == [[1]]
    assert worker.threads == {"loratrace-test-worker"}


def test_a_drain_waits_for_exactly_what_was_queued_before_it():
    gates = {0: threading.Event(), 3: threading.Event()}  # the batches holding these items wait for their gate

    holding = threading.Event()

    class Gated(Recording):
        def _handle(self, items: list[int]) -> None:
            holding.set()
            for number in items:
                if number in gates:
                    gates[number].wait(30)
            super()._handle(items)

    worker = Gated()
    worker.put(0)
    assert holding.wait(timeout=30)  # the thread holds [0]: what follows is queued behind it
    worker.put(1)
    worker.put(2)
    drained: list[list[list[int]]] = []
    drainer = threading.Thread(target=lambda: (worker.drain(30), drained.append(list(worker.batches))))
    drainer.start()
    deadline = time.monotonic() + 30
    while worker._queue.qsize() < 3 and time.monotonic() < deadline:  # the drain's marker is queued
        time.sleep(0.001)
    worker.put(3)
    worker.put(4)
    gates[0].set()
    drainer.join(30)
    assert drained == [[[0], [1, 2]]]  # returned while [3, 4] is still held
    gates[3].set()
    assert worker.drain(timeout=30)
    assert worker.batches == [[0], [1, 2], [3, 4]]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_with_no_thread_and_an_empty_queue():
    worker = Recording(gather_seconds=3600.0)
    worker.put(1)  # queued in the parent, gathered there for an hour
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what its worker does, then leave without running pytest's teardown
        try:
            fresh = worker._thread is None
            worker.gather_seconds = 0.0
            worker.put(2)
            handled = worker.drain(timeout=10)
            os.write(write, repr((fresh, handled, worker.batches)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as child_output:
        report = child_output.read()
    os.waitpid(pid, 0)
    assert report == repr((True, True, [[2]]))  # the parent's item stayed the parent's


def test_with_no_thread_to_be_had_an_item_is_handled_on_the_callers_thread(monkeypatch):
    """A fake for a fault this Python does not cause: Python 3.12+ refuses new threads at interpreter shutdown
    (a flush from an atexit handler), which ``Thread.start`` raising RuntimeError stands for here."""

    def refuse(self: threading.Thread) -> None:
        msg = "can't create new thread at interpreter shutdown"
        raise RuntimeError(msg)

    worker = Recording()
    monkeypatch.setattr(threading.Thread, "start", refuse)
    assert worker.put(7)
    assert worker.batches == [[7]]
    assert worker.threads == {threading.current_thread().name}


def test_beyond_its_bound_an_item_is_refused_and_counted():
    holding, release = threading.Event(), threading.Event()

    class Holding(Recording):
        def _handle(self, items: list[int]) -> None:
            holding.set()
            release.wait(30)
            super()._handle(items)

    worker = Holding()
    worker.max_queued = 3
    worker.put(0)
    assert holding.wait(timeout=10)
    accepted = [worker.put(number) for number in range(1, 6)]
    release.set()
    assert worker.drain(timeout=10)
    assert accepted == [True, True, True, False, False]
    assert worker.dropped == 2
    assert [n for batch in worker.batches for n in batch] == [0, 1, 2, 3]


def test_a_call_past_its_deadline_holds_no_later_call_and_its_thread_ends_after_it():
    runner = CallRunner("loratrace-test-calls")
    release = threading.Event()
    hung_thread: list[threading.Thread] = []

    def hangs() -> str:
        hung_thread.append(threading.current_thread())
        release.wait(30)
        return "late"

    assert runner.call(hangs, 0.2) == (False, None)
    assert runner.call(lambda: "next", 10) == (True, "next")  # on a thread of its own
    release.set()
    hung_thread[0].join(10)
    assert not hung_thread[0].is_alive()  # finished its call, then stopped


def test_a_call_that_raises_returns_none_and_the_runner_goes_on():
    runner = CallRunner("loratrace-test-calls")
    assert runner.call(lambda: 1 / 0, 10) == (True, None)
    assert runner.call(lambda: 42, 10) == (True, 42)
