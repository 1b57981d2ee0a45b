"""``--since`` / ``--until`` / ``--window`` values: durations (``30m``, ``24h``, ``7d``) and ISO times."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: str) -> timedelta:
    """``30m`` → 30 minutes; units s, m, h, d, w.

    Examples
    --------
    >>> parse_duration("90m")
    datetime.timedelta(seconds=5400)
    """
    match = _DURATION.match(value)
    if match is None:
        msg = f"expected a duration such as 30m, 24h or 7d, got {value!r}"
        raise ValueError(msg)
    amount = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    if amount <= timedelta(0):
        msg = f"expected a positive duration, got {value!r}"
        raise ValueError(msg)
    return amount


def parse_time(value: str, *, now: datetime | None = None) -> datetime:
    """A point in time as naive UTC (the store's ``start_time``): an ISO time, or a duration meaning "that long ago".

    Examples
    --------
    >>> parse_time("24h", now=datetime(2026, 12, 1, 12, tzinfo=timezone.utc))
    datetime.datetime(2026, 11, 30, 12, 0)
    >>> parse_time("2026-11-30T08:00:00+01:00")
    datetime.datetime(2026, 11, 30, 7, 0)
    """
    if _DURATION.match(value):
        now = now or datetime.now(timezone.utc)
        return (now - parse_duration(value)).astimezone(timezone.utc).replace(tzinfo=None)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        msg = f"expected an ISO time (2026-11-30T08:00:00Z) or a duration ago (24h, 7d), got {value!r}"
        raise ValueError(msg) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed
