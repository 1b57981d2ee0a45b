"""SIGTERM and SIGINT as a request to stop, noted by a handler that takes no lock.

Python runs a signal handler in the main thread between two bytecodes, wherever that thread is: also inside
``threading.Event.wait``, after it took the event's lock (a plain, non-reentrant ``Lock``) and before it let go.
A handler that calls ``Event.set()`` there waits for that lock for good, and so does the handler of every later
signal: the process ignores SIGTERM until it is killed. So the handler here only stores the signal's number, and
the main thread looks at it between short sleeps (``time.sleep`` holds no lock; a signal cuts it short).

``SIGUSR1`` prints every thread's stack to stderr while the context is entered (``faulthandler``), which is
how to see where a process that does not stop is stuck.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import threading
import time
from types import FrameType, TracebackType
from typing import Any, Final

# how long a stop request may go unnoticed by a waiting main thread
POLL_S: Final = 0.05
STACK_DUMP_SIGNAL: Final = signal.SIGUSR1


class ShutdownSignals:
    """Notes SIGTERM / SIGINT while entered; ``wait`` returns once one arrived.

    Used from the main thread only (the only thread that may install signal handlers). Leaving the context
    puts back the handlers that were there before. The caller's loop::

        with ShutdownSignals() as signals:
            while not signals.wait(0.2):
                ...  # periodic work between the waits
    """

    def __init__(self, signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
        self.signums = signums
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._dumps_stacks = False

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        # nothing here may take a lock (see the module's docstring): one attribute store
        self.received = signum

    def __enter__(self) -> ShutdownSignals:
        if threading.current_thread() is not threading.main_thread():
            msg = "ShutdownSignals must be entered in the main thread (only it can install signal handlers)"
            raise RuntimeError(msg)
        for signum in self.signums:
            self._previous[signum] = signal.signal(signum, self._note)
        try:
            faulthandler.register(STACK_DUMP_SIGNAL, file=sys.stderr, all_threads=True)
        except (AttributeError, ValueError, OSError, RuntimeError):  # a stderr without a file descriptor
            self._dumps_stacks = False
        else:
            self._dumps_stacks = True
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._dumps_stacks:
            faulthandler.unregister(STACK_DUMP_SIGNAL)
            self._dumps_stacks = False
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def wait(self, timeout: float, *, also: threading.Event | None = None) -> bool:
        """Sleep up to ``timeout`` s; True as soon as a stop signal arrived (or ``also`` is set)."""
        deadline = time.monotonic() + timeout
        while not self.stopping(also):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, POLL_S))
        return True

    def stopping(self, also: threading.Event | None = None) -> bool:
        # Event.is_set reads a flag without the event's lock
        return self.received is not None or (also is not None and also.is_set())


__all__ = ["POLL_S", "STACK_DUMP_SIGNAL", "ShutdownSignals"]
