"""Fault injection (a fake timing, named as such): delivers SIGTERM to a process at a chosen moment.

A SIGTERM that lands at one bytecode of a hundred thousand cannot be aimed from outside the process, so a
test puts this folder first on the collector's ``PYTHONPATH`` and names the moment in ``LORATRACE_TEST_SIGTERM``:

``writer-start``
    right after the store writer process was started, while the collector is still starting;
``every-call``
    once the process gets SIGUSR2: at each of the next ``LORATRACE_TEST_SIGTERM_CALLS`` call boundaries of the
    main thread (each call and return of a Python or C function), wherever it is waiting, for as long as
    the process handles SIGTERM.
"""

import multiprocessing.process
import os
import signal
import sys

_MODE = os.environ.get("LORATRACE_TEST_SIGTERM")


def _sigterm_after_writer_start() -> None:
    start = multiprocessing.process.BaseProcess.start

    def _start(self: multiprocessing.process.BaseProcess) -> None:
        start(self)
        if self.name == "loratrace-store-writer":
            signal.raise_signal(signal.SIGTERM)

    multiprocessing.process.BaseProcess.start = _start  # type: ignore[method-assign]


def _sigterm_at_every_call() -> None:
    left = int(os.environ.get("LORATRACE_TEST_SIGTERM_CALLS", "2000"))

    def _profile(_frame: object, _event: str, _arg: object) -> None:
        nonlocal left
        left -= 1
        # once the process put its default SIGTERM action back (it is exiting), a SIGTERM would kill it
        if left <= 0 or not callable(signal.getsignal(signal.SIGTERM)):
            sys.setprofile(None)
            return
        signal.raise_signal(signal.SIGTERM)  # runs the SIGTERM handler here, before this call boundary

    def _arm(_signum: int, _frame: object) -> None:
        sys.setprofile(_profile)  # a signal handler runs in the main thread: this profiles the main thread

    signal.signal(signal.SIGUSR2, _arm)


if _MODE == "writer-start":
    _sigterm_after_writer_start()
elif _MODE == "every-call":
    _sigterm_at_every_call()
