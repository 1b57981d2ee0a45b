"""--since / --until values as the incident queries and analyses read them: durations ago and ISO times, naive
UTC like the store's start_time; a window whose start is not before its end is refused."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from loratrace.analysis.timespec import parse_time, parse_window, to_store_time

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("90s", datetime(2026, 3, 2, 11, 58, 30), id="seconds"),
        pytest.param("24h", datetime(2026, 3, 1, 12), id="hours"),
        pytest.param("7d", datetime(2026, 2, 23, 12), id="days"),
        pytest.param("2026-03-01T08:30", datetime(2026, 3, 1, 8, 30), id="naive-is-utc"),
        pytest.param("2026-03-01T08:30:00Z", datetime(2026, 3, 1, 8, 30), id="zulu"),
        pytest.param("2026-03-01T10:30:00+02:00", datetime(2026, 3, 1, 8, 30), id="offset"),
    ],
)
def test_forms(text: str, expected: datetime) -> None:
    assert parse_time(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "h", "0h", "-3h", "2026-13-01"])
def test_anything_else_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected (an ISO time|a positive duration|a duration)"):
        parse_time(text, now=NOW)


def test_window_order_and_store_time() -> None:
    since, until = parse_window("2h", "1h", now=NOW)
    assert (since, until) == (datetime(2026, 3, 2, 10), datetime(2026, 3, 2, 11))
    with pytest.raises(ValueError, match="the window is empty"):
        parse_window("1h", "2h", now=NOW)
    assert to_store_time(datetime(2026, 3, 1, 10, tzinfo=timezone(timedelta(hours=2)))) == datetime(2026, 3, 1, 8)
    assert to_store_time(datetime(2026, 3, 1, 8)) == datetime(2026, 3, 1, 8)
