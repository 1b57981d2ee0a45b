"""--since / --until values: durations before now and ISO times, and the errors for anything else."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from loratrace.analysis.timespec import parse_duration, parse_time, parse_window, to_store_time

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("90s", timedelta(seconds=90), id="seconds"),
        pytest.param("30m", timedelta(minutes=30), id="minutes"),
        pytest.param("24h", timedelta(hours=24), id="hours"),
        pytest.param("7d", timedelta(days=7), id="days"),
        pytest.param("2w", timedelta(weeks=2), id="weeks"),
        pytest.param("1h30m", timedelta(minutes=90), id="compound"),
        pytest.param("1.5h", timedelta(minutes=90), id="fraction"),
        pytest.param(" 2H ", timedelta(hours=2), id="case-and-space"),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_time(text, now=NOW) == NOW - expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-03-01", datetime(2026, 3, 1, tzinfo=timezone.utc), id="date"),
        pytest.param("2026-03-01T08:30", datetime(2026, 3, 1, 8, 30, tzinfo=timezone.utc), id="naive-is-utc"),
        pytest.param("2026-03-01T08:30:00Z", datetime(2026, 3, 1, 8, 30, tzinfo=timezone.utc), id="zulu"),
        pytest.param("2026-03-01T10:30:00+02:00", datetime(2026, 3, 1, 8, 30, tzinfo=timezone.utc), id="offset"),
    ],
)
def test_iso_times(text: str, expected: datetime) -> None:
    assert parse_time(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "24", "h", "0h", "-3h", "2026-13-01", ""])
def test_anything_else_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"(not a time; use a duration before now|is not a duration)"):
        parse_time(text, now=NOW)


def test_window_order_and_store_time() -> None:
    since, until = parse_window("2h", "1h", now=NOW)
    assert (since, until) == (NOW - timedelta(hours=2), NOW - timedelta(hours=1))
    with pytest.raises(ValueError, match="the window is empty"):
        parse_window("1h", "2h", now=NOW)
    assert to_store_time(datetime(2026, 3, 1, 10, tzinfo=timezone(timedelta(hours=2)))) == datetime(2026, 3, 1, 8)
