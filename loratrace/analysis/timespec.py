"""Time windows from the command line: durations (``24h``, ``30m``, ``7d``, ``1h30m``) and ISO times.

A duration means "that long before now"; an ISO time without a zone is UTC. Every result is an aware UTC
``datetime``; the store's timestamps are naive UTC, so :func:`to_store_time` drops the zone for binding.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Final

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_FORMS: Final = "a duration before now (90s, 30m, 24h, 7d, 2w, 1h30m) or an ISO time (2026-03-02T08:00, ...Z)"


def parse_duration(text: str) -> timedelta:
    """``text`` as a duration: numbers with units s, m, h, d, w, one after the other.

    Examples
    --------
    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    >>> parse_duration("7d").days
    7
    """
    compact = text.strip().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(f"{n}{u}" for n, u in parts).lower() != compact.lower():
        msg = f"{text!r} is not a duration; use numbers with units s, m, h, d or w, e.g. 30m, 24h, 7d, 1h30m"
        raise ValueError(msg)
    seconds = sum(float(number) * _UNITS[unit.lower()] for number, unit in parts)
    if seconds <= 0:
        msg = f"{text!r} is not a positive duration"
        raise ValueError(msg)
    return timedelta(seconds=seconds)


def _is_duration(value: str) -> bool:
    try:
        parse_duration(value)
    except ValueError:
        return False
    return True


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """``text`` as an aware UTC time: a duration before ``now`` (default: the current time) or an ISO time.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> parse_time("2h", now=datetime(2026, 3, 2, 10, tzinfo=timezone.utc)).isoformat()
    '2026-03-02T08:00:00+00:00'
    >>> parse_time("2026-03-02T08:00").isoformat()
    '2026-03-02T08:00:00+00:00'
    """
    value = text.strip()
    if _is_duration(value):
        reference = now if now is not None else datetime.now(timezone.utc)
        return reference.astimezone(timezone.utc) - parse_duration(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        msg = f"{text!r} is not a time; use {_FORMS}"
        raise ValueError(msg) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def parse_window(
    since: str | None, until: str | None, *, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """``(since, until)`` parsed with one ``now``; raises when ``since`` is not before ``until``."""
    reference = now if now is not None else datetime.now(timezone.utc)
    start = parse_time(since, now=reference) if since is not None else None
    end = parse_time(until, now=reference) if until is not None else None
    if start is not None and end is not None and start >= end:
        msg = f"the window is empty: since {start.isoformat()} is not before until {end.isoformat()}"
        raise ValueError(msg)
    return start, end


def to_store_time(value: datetime) -> datetime:
    """An aware time as the store's naive UTC timestamp (what DuckDB compares ``start_time`` with)."""
    if value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)
