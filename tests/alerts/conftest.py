"""Stores of seeded traffic (``loratrace.demo.traffic``) written through the embedded exporter, built once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from loratrace.demo.traffic import Effect, Traffic, write_store

START = datetime(2026, 3, 2, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two hours of quiet traffic: base, a1, a2 on enterprise and smb, 60 generations per hour per arm."""
    store = tmp_path_factory.mktemp("small") / "store"
    write_store(Traffic(start=START, duration=timedelta(hours=2), requests_per_hour=60, seed=5), store)
    return store


def flapping(adapter: str, cohort: str, start: datetime, *, on: timedelta, off: timedelta, times: int) -> list[Effect]:
    """Fallbacks switched on and off: ``times`` stretches of ``on`` separated by ``off``."""
    out = []
    at = start
    for _ in range(times):
        out.append(Effect(adapter, "fallback", 0.9, cohort=cohort, start=at, end=at + on))
        at += on + off
    return out


STREAM = Traffic(
    start=START,
    duration=timedelta(hours=8),
    requests_per_hour=120,
    seed=16,
    effects=(
        # drift: a1 answers smb 25 points worse from its first traffic
        Effect("a1", "eval_pass", -0.25, cohort="smb"),
        # a spike: a2 fails 40 % of enterprise requests for one hour
        Effect(
            "a2", "error", 0.4, cohort="enterprise", start=START + timedelta(hours=3), end=START + timedelta(hours=4)
        ),
        # a latency burst: a1 answers enterprise ~3 s slower for half an hour
        Effect(
            "a1",
            "duration_ms",
            3000.0,
            cohort="enterprise",
            start=START + timedelta(hours=6),
            end=START + timedelta(hours=6, minutes=30),
        ),
        # flapping: a2's smb fallbacks on for 10 minutes, off for 10, three times
        *flapping(
            "a2", "smb", START + timedelta(hours=5), on=timedelta(minutes=10), off=timedelta(minutes=10), times=3
        ),
    ),
)


@pytest.fixture(scope="session")
def stream_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight hours of :data:`STREAM`: base, a1, a2 × enterprise, smb at 120 generations per hour per arm."""
    store = tmp_path_factory.mktemp("stream") / "store"
    write_store(STREAM, store)
    return store
