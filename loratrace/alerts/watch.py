"""``alert watch``: the alert check on a built-in schedule, for containers, stopping cleanly on SIGTERM or SIGINT.

Checks run at every multiple of the interval on the clock (a 5-minute watch checks at :00, :05, ...), so two
replicas or a restart keep the same boundaries; a check that overruns skips the ticks it missed rather than
running back to back. The rules file is re-read at every tick, so an edit applies at the next check; an edit
that breaks it is reported and the last good rules keep running. A signal during a check lets the check finish
(its state and notifications stay consistent) and then exits.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import duckdb
import polars as pl

from loratrace._shutdown_signals import ShutdownSignals
from loratrace.alerts.check import CheckResult, run_alert_check
from loratrace.alerts.rules import RulesError, RuleSet, load_rules
from loratrace.errors import QueryError, StoreError

if TYPE_CHECKING:
    from loratrace.sources.base import Source

logger = logging.getLogger(__name__)


def watch(
    store: str | os.PathLike[str] | Source,
    rules_path: str | os.PathLike[str],
    *,
    every: float,
    state_dir: str | os.PathLike[str] | None = None,
    report: Callable[[CheckResult | None, str | None], None],
    stop: threading.Event | None = None,
) -> int:
    """Run checks every ``every`` seconds until SIGTERM / SIGINT (or ``stop`` is set); returns the exit code.

    ``report`` receives each check's result, or ``None`` and an error message for a check that could not run.

    Raises
    ------
    RulesError
        When the rules are bad at start (later breakage is reported and the last good rules are kept).
    """
    stopping = stop or threading.Event()
    signals = ShutdownSignals()  # in another thread it cannot handle signals, and only ``stop`` ends the watch
    in_main = threading.current_thread() is threading.main_thread()
    with signals if in_main else contextlib.nullcontext():
        ruleset: RuleSet = load_rules(rules_path)
        while not signals.stopping(stopping):
            try:
                ruleset = load_rules(rules_path)
            except RulesError as exc:
                report(None, f"{exc} (keeping the last good rules)")
            try:
                report(run_alert_check(store, ruleset, state_dir=state_dir), None)
            except (StoreError, QueryError, pl.exceptions.PolarsError, duckdb.Error) as exc:
                # one unreadable moment (a store being moved, a bad segment, ClickHouse restarting) must not end
                # the watch
                report(None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else exc!r}")
            now = time.time()
            signals.wait(max(0.0, math.floor(now / every + 1) * every - now), also=stopping)
    if signals.received is not None:
        logger.info("signal %d: stopped after the check in progress", signals.received)
    return 0
