"""The store's cells computed in DuckDB equal the Polars cells of the same rows: one definition, two engines."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from loratrace.analysis import cells, load_evals, load_generations, metrics
from loratrace.analysis.cells import CELL_COLUMNS
from loratrace.analysis.store_cells import store_cells
from loratrace.demo.traffic import Effect, Traffic, write_store

START = datetime(2026, 11, 2, 8, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cells") / "store"
    traffic = Traffic(
        start=START,
        duration=timedelta(hours=3),
        requests_per_hour=40,
        effects=(Effect("a1", "error", 0.1, cohort="smb"), Effect("a2", "duration_ms", 300.0)),
        quantization=("awq", 4),
        swaps=(("a2", START + timedelta(hours=1)),),
        prompt_changes=(("v2", START + timedelta(hours=2)),),
        seed=3,
    )
    write_store(traffic, path)
    return path


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(CELL_COLUMNS).sort(
        ["metric", "arm", "adapter", "adapter_id", "cohort", "window_start", "prompt_version"], nulls_last=True
    )


@pytest.mark.parametrize("window", [timedelta(hours=1), None], ids=["hourly", "whole"])
def test_duckdb_and_polars_cells_are_equal(store: Path, window: timedelta | None) -> None:
    chosen = metrics.resolve(
        [
            "error_rate",
            "timeout_rate",
            "schema_retry_rate",
            "duration_ms",
            "ttft_ms",
            "eval_pass:quality",
            "eval_score:quality",
        ],
        ["quality"],
    )
    ours, counts = store_cells(store, metrics=chosen, window=window)
    reference = cells(load_generations(store), load_evals(store), metrics=chosen, window=window).collect()
    assert ours.height == reference.height > 0
    assert_frame_equal(_sorted(ours), _sorted(reference), check_exact=False, rel_tol=1e-9)
    assert counts == {"replay_rows": 0, "shadow_rows": 0}
    assert set(ours["quantization"].drop_nulls()) == {"awq/4"}


def test_a_time_range_and_the_traffic_filter_reach_the_database(store: Path) -> None:
    chosen = metrics.resolve(["error_rate"], [])
    since = datetime(2026, 11, 2, 9)
    until = datetime(2026, 11, 2, 10)
    ours, _ = store_cells(store, metrics=chosen, since=since, until=until)
    reference = cells(load_generations(store, since=since, until=until), metrics=chosen).collect()
    assert_frame_equal(_sorted(ours), _sorted(reference))
    replay, counts = store_cells(store, metrics=chosen, traffic="replay")
    assert replay.is_empty()
    assert counts["replay_rows"] == 0
