"""SIGTERM stops the collector wherever it lands: in the main loop's wait, or while the collector is starting.

The collector's SIGTERM handler once set a ``threading.Event`` that the main thread was waiting on. When the
signal landed at one of the few bytecodes where that thread held the event's own lock, the handler waited for
the lock forever and the collector never exited (about one stop in many thousands; once in a full test run).
These tests deliver the signal at every such moment instead of hoping to hit one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from loratrace.collector.writer_lock import WriterLock
from loratrace.store import status as store_status

from .conftest import REPO, launch_collector, start_collector

INJECTION = Path(__file__).with_name("signal_injection")

# In a child process, so that a handler that blocks shows up as a timeout here, not as a hung test run. For
# each k, SIGTERM is raised at the k-th call boundary (call or return of a Python or C function) inside
# ``wait``: the handler runs right there, as it would for a signal arriving at that moment.
_EVERY_BOUNDARY = textwrap.dedent(
    """
    import signal, sys, time
    from loratrace._shutdown_signals import ShutdownSignals

    def boundaries_of_one_wait():
        count = 0
        def profile(frame, event, arg):
            nonlocal count
            count += 1
        with ShutdownSignals() as signals:
            sys.setprofile(profile)
            signals.wait(0.2)
            sys.setprofile(None)
        return count

    total = boundaries_of_one_wait()
    assert total > 5, total
    for k in range(1, total + 1):
        seen = 0
        def profile(frame, event, arg):
            global seen
            seen += 1
            if seen == k:
                sys.setprofile(None)
                signal.raise_signal(signal.SIGTERM)
        with ShutdownSignals() as signals:
            started = time.monotonic()
            sys.setprofile(profile)
            stopped = signals.wait(30.0)
            sys.setprofile(None)
            took = time.monotonic() - started
        assert stopped and signals.received == signal.SIGTERM, (k, total)
        assert took < 5.0, (k, took)
    print(total)
    """
)


def test_a_stop_signal_at_any_call_boundary_of_the_wait_ends_it() -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-c", _EVERY_BOUNDARY], cwd=REPO, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"a SIGTERM inside the wait blocked its handler: {exc.stderr!r}") from None
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 5  # the sweep covered every boundary of a real wait


def test_the_collector_exits_when_sigterm_lands_at_every_call_boundary_of_its_main_thread(tmp_path: Path) -> None:
    running = start_collector(tmp_path / "store", env=_injected("every-call"))
    writer = running.health()["store_writer_pid"]
    running.process.send_signal(signal.SIGUSR2)  # arms the injection: SIGTERM from the next call boundary on
    assert running.wait_exit(timeout=60, after="SIGTERM at its main thread's call boundaries") == 0
    _assert_stopped_cleanly(running.store)
    assert not Path(f"/proc/{writer}").exists(), "the store writer outlived the collector"


def test_a_sigterm_while_the_collector_is_starting_stops_it_cleanly(tmp_path: Path) -> None:
    """Before the receivers run, right after the store writer process started: the collector finishes
    starting, drains, and exits 0 (the default action would have killed it mid-start)."""
    running = launch_collector(tmp_path / "store", env=_injected("writer-start"))
    assert running.wait_exit(timeout=60, after="SIGTERM during its start") == 0, running.log.read_text()
    _assert_stopped_cleanly(running.store)


def _injected(mode: str) -> dict[str, str]:
    path = [str(INJECTION), str(REPO), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(filter(None, path)), "LORATRACE_TEST_SIGTERM": mode}


def _assert_stopped_cleanly(store: Path) -> None:
    assert not store_status.collector_file(store).exists(), "the collector left its status file behind"
    WriterLock(store.resolve()).release()  # raises if the collector's lock on the store outlived it
