"""``alert check``: evaluate the rules, move each alert through its states, notify on changes, keep the state.

One check, in order, under the store's alert lock (:mod:`loratrace.alerts.state`):

1. evaluate every rule as of ``now`` (:mod:`loratrace.alerts.evaluate`);
2. step every alert's state machine (:func:`loratrace.alerts.windows.transition`); alerts the data no longer
   produces step as "condition false";
3. write the state, with each notification queued in every sink's outbox;
4. deliver each sink's outbox in order; what a sink took leaves the outbox, what it did not stays there for the
   next check, and the check reports the sink's failure; then write the state again.

A notification therefore goes out once per state change (the second of two simultaneous checks finds the
change already made and its notification already sent), and a failing sink never loses the alert state.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loratrace.alerts import evaluate as evaluation
from loratrace.alerts import sinks as sink_delivery
from loratrace.alerts import state as alert_state
from loratrace.alerts import windows
from loratrace.alerts.rules import RuleSet, load_rules
from loratrace.errors import ConfigurationError
from loratrace.store import open_store

if TYPE_CHECKING:
    from loratrace.sources.base import Source

logger = logging.getLogger(__name__)

_STATUS_NAMES = {windows.INACTIVE: "inactive", windows.PENDING: "pending", windows.FIRING: "firing"}


@dataclass
class CheckResult:
    """What one check found and did.

    Attributes
    ----------
    firing
        Every alert firing after this check (new or still open), as notification-shaped dicts.
    pending
        Alerts whose condition holds but not yet for their ``for`` time.
    notifications
        The notifications this check produced (opened and resolved).
    sink_failures
        One message per sink that did not take its notifications (they stay queued for the next check).
    conditions
        How many alert instances were evaluated.
    """

    firing: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    sink_failures: list[str] = field(default_factory=list)
    conditions: int = 0
    drift_cells: int = 0
    checked_at: str = ""

    @property
    def exit_code(self) -> int:
        """0 when nothing fires, 1 when something does (the ``alert check`` exit code)."""
        return 1 if self.firing else 0

    def summary(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at,
            "conditions": self.conditions,
            "drift_cells": self.drift_cells,
            "firing": len(self.firing),
            "pending": len(self.pending),
            "notifications": len(self.notifications),
            "sink_failures": self.sink_failures,
        }


def _note(cond: evaluation.Condition, status: str, entry: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "status": status,
        "rule": cond.rule,
        "type": cond.type,
        "severity": cond.severity,
        **cond.labels,
        "summary": cond.summary,
        **{k: v for k, v in cond.values.items() if k not in cond.labels},
        "condition_since": cond.since,
        "starts_at": entry.get("starts_at") or _iso(now),
        "ends_at": _iso(now) if status == "resolved" else None,
        "dedup_key": cond.dedup_key,
        "query": cond.query,
    }


def _iso(at: datetime) -> str:
    return at.replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")


def _step(state: dict[str, Any], result: evaluation.Evaluation) -> tuple[list[dict[str, Any]], CheckResult]:
    now = result.now
    now_s = now.replace(tzinfo=timezone.utc).timestamp()
    alerts: dict[str, Any] = state["alerts"]
    out = CheckResult(conditions=len(result.conditions), drift_cells=result.drift_cells, checked_at=_iso(now))
    notes: list[dict[str, Any]] = []
    seen = set()
    for cond in result.conditions:
        seen.add(cond.key)
        entry = alerts.get(cond.key, {})
        status, since, last, notify = windows.transition(
            entry.get("status", windows.INACTIVE),
            entry.get("active_since", np.nan) if entry.get("active_since") is not None else np.nan,
            entry.get("last_active", np.nan) if entry.get("last_active") is not None else np.nan,
            cond.active,
            now_s,
            hold_for=cond.for_seconds,
            keep_firing_for=cond.keep_firing_seconds,
        )
        new = {
            "status": int(status),
            "active_since": None if np.isnan(since) else float(since),
            "last_active": None if np.isnan(last) else float(last),
            "starts_at": entry.get("starts_at"),
            "checked_at": _iso(now),
            "keep_firing_for": cond.keep_firing_seconds,
        }
        if int(notify) == 1:
            new["starts_at"] = _iso(now)
            notes.append(_note(cond, "firing", new, now))
        elif int(notify) == -1:
            notes.append(_note(cond, "resolved", entry, now))
            new["starts_at"] = None
        if int(status) == windows.FIRING:
            new["last_note"] = _note(cond, "firing", new, now)
            out.firing.append(new["last_note"])
        elif int(status) == windows.PENDING:
            out.pending.append(_note(cond, "pending", new, now))
        if int(status) == windows.INACTIVE and new["last_active"] is None:
            alerts.pop(cond.key, None)
        else:
            alerts[cond.key] = new
    for key in [k for k in alerts if k not in seen]:
        # the data no longer produces this alert (the adapter stopped serving): its condition is false
        entry = alerts[key]
        if entry.get("status") == windows.FIRING and entry.get("last_note"):
            last_active = entry.get("last_active") or now_s
            keep = float(entry.get("keep_firing_for") or 0)
            if now_s - last_active >= keep:
                note = dict(entry["last_note"], status="resolved", ends_at=_iso(now))
                notes.append(note)
                alerts.pop(key)
            else:
                out.firing.append(entry["last_note"])
        elif entry.get("status") != windows.FIRING:
            alerts.pop(key)
    out.notifications = notes
    return notes, out


def run_alert_check(
    store: str | os.PathLike[str] | Source,
    rules: str | os.PathLike[str] | Mapping[str, Any] | RuleSet,
    *,
    now: datetime | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    lock_timeout: float = 300.0,
) -> CheckResult:
    """One alert check over a store (what ``loratrace alert check`` and ``loratrace demo`` run).

    Parameters
    ----------
    store
        The store folder (alert state is kept in ``STORE/state/alerts/``), or a
        :class:`~loratrace.sources.Source` such as ClickHouse (``state_dir`` required).
    rules
        A rules file path, a parsed rules mapping, or a :class:`~loratrace.alerts.rules.RuleSet`.
    now
        The check's time (default: the clock); windows complete by then are evaluated.
    state_dir
        Where the alert state lives (default ``STORE/state/alerts``), e.g. for a store on read-only storage.
    lock_timeout
        Seconds to wait for a check already running on the same store.

    Raises
    ------
    loratrace.alerts.rules.RulesError
        Bad rules (the message names the key and its line).
    loratrace.errors.StoreError
        The store cannot be read, or its alert state cannot be written.
    """
    ruleset = rules if isinstance(rules, RuleSet) else load_rules(rules)
    if isinstance(store, (str, os.PathLike)):
        open_store(store).close()  # a missing or foreign folder is an error, not a place to create alert state in
        folder = Path(state_dir) if state_dir is not None else alert_state.state_dir(store)
    elif state_dir is not None:
        folder = Path(state_dir)
    else:
        msg = f"an alert check over {store!r} keeps its state in --state-dir DIR (or the rules' source: state_dir)"
        raise ConfigurationError(msg)
    at = now or datetime.now(timezone.utc)
    with alert_state.locked(folder, timeout=lock_timeout):
        result = evaluation.evaluate(store, ruleset, now=at, cache_dir=folder)
        state = alert_state.load_state(folder)
        notes, out = _step(state, result)
        outbox: dict[str, list[dict[str, Any]]] = state["outbox"]
        for sink in ruleset.sinks:
            queue = outbox.setdefault(sink.name, [])
            queue.extend(notes)
            if len(queue) > alert_state.OUTBOX_LIMIT:
                dropped = len(queue) - alert_state.OUTBOX_LIMIT
                del queue[:dropped]
                out.sink_failures.append(f"sink {sink.name}: dropped the {dropped} oldest undelivered notifications")
        alert_state.save_state(folder, state)
        for sink in ruleset.sinks:
            queue = outbox.get(sink.name, [])
            while queue:
                try:
                    sink_delivery.deliver(sink, queue[0])
                except sink_delivery.SinkError as exc:
                    out.sink_failures.append(f"{exc}; {len(queue)} notification(s) kept for the next check")
                    break
                queue.pop(0)
        alert_state.save_state(folder, state)
    return out


def state_path(store: str | os.PathLike[str]) -> Path:
    """Where a store's alert state lives."""
    return alert_state.state_dir(store) / alert_state.STATE_FILE
