"""The store writer as a process of its own: started, asked to drain and stop, restarted by the collector."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import multiprocessing
import os
import signal
import time
from typing import Any

from loratrace._shutdown_signals import STACK_DUMP_SIGNAL
from loratrace.collector.store_writer.read_loop import StoreWriter
from loratrace.collector.store_writer.settings import N_STATS, STAT_READY, StoreWriterSettings


def run_store_writer(settings: StoreWriterSettings, stats: Any, stop: Any) -> None:
    """Entry point of the store writer process."""
    # the parent decides when to stop (SIGTERM / Ctrl-C go to it); we drain when it sets ``stop``
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    faulthandler.register(STACK_DUMP_SIGNAL, all_threads=True)  # as the collector: SIGUSR1 prints the stacks
    logging.basicConfig(
        level=os.environ.get("LORATRACE_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(processName)s %(levelname)s %(name)s: %(message)s",
    )
    StoreWriter(settings, stats, stop, parent_pid=os.getppid()).run()


class StopFlag:
    """A stop request shared with the store writer process, in a byte of shared memory.

    Not a ``multiprocessing.Event``: its lock lives in shared memory too, and a store writer killed while it
    held it (inside ``wait``) left every later ``set`` blocked for good, so the collector never exited.
    """

    def __init__(self, ctx: Any) -> None:
        self._value = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._value.value:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.05))
        return True


def start_store_writer(
    settings: StoreWriterSettings, *, stats: Any = None
) -> tuple[multiprocessing.process.BaseProcess, Any, StopFlag]:
    """Start a store writer process; ``stats`` (from an earlier, dead one) carries its counters on."""
    ctx = multiprocessing.get_context("spawn")
    if stats is None:
        stats = ctx.Array("d", N_STATS, lock=False)
    stats[STAT_READY] = 0
    stop = StopFlag(ctx)
    process = ctx.Process(
        target=run_store_writer, args=(settings, stats, stop), name="loratrace-store-writer", daemon=True
    )
    process.start()
    return process, stats, stop


def stop_store_writer(
    process: multiprocessing.process.BaseProcess, stop: StopFlag, *, timeout: float = 60.0
) -> int | None:
    """Ask the store writer to drain and stop; its exit code (None if it had to be killed)."""
    stop.set()
    process.join(timeout)
    if process.is_alive():
        with contextlib.suppress(Exception):
            process.kill()
        return None
    return process.exitcode
