"""Stores of seeded traffic (``loratrace.demo.traffic``) written through the embedded exporter, built once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from loratrace.demo.traffic import Traffic, write_store

START = datetime(2026, 3, 2, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two hours of quiet traffic: base, a1, a2 on enterprise and smb, 60 generations per hour per arm."""
    store = tmp_path_factory.mktemp("small") / "store"
    write_store(Traffic(start=START, duration=timedelta(hours=2), requests_per_hour=60, seed=5), store)
    return store
