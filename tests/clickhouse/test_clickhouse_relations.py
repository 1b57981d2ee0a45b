"""ClickHouse gives the local store's relations the very same rows: the promotion rules rendered as SQL."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from loratrace.sources import clickhouse_sql
from loratrace.sources.base import Selection
from loratrace.sources.clickhouse import ClickHouseSource, parse_url
from loratrace.store import query
from loratrace.store import schema as store_schema

REPO = Path(__file__).resolve().parents[2]
KEYS = ["trace_id", "span_id"]


def _local(store: Path, view: str, keys: list[str]) -> pl.DataFrame:
    frame = query(store, f"SELECT * FROM {view}")
    drop = [c for c in frame.columns if c.endswith("_json") or c in ("date", "attributes", "resource_attributes")]
    return frame.drop(drop).sort(keys)


def _same(local: pl.DataFrame, remote: pl.DataFrame, keys: list[str]) -> None:
    remote = remote.select(local.columns).sort(keys)
    if "adapter_target_modules" in local.columns:  # ClickHouse has no nullable arrays: absent is []
        local = local.with_columns(pl.col("adapter_target_modules").fill_null(pl.lit([], dtype=pl.List(pl.String))))
    remote = remote.with_columns(
        [pl.col(c).cast(local.schema[c]) for c in local.columns if remote.schema[c] != local.schema[c]]
    )
    assert_frame_equal(local, remote, check_exact=False, rel_tol=1e-9)


@pytest.mark.parametrize("variant", ["plain", "materialized"])
def test_generations_equal_the_local_view(engines, variant) -> None:
    source: ClickHouseSource = getattr(engines, variant)
    local = _local(engines.store, "generations", KEYS)
    remote = source.frame(source.relation_sql("generations"))
    assert local.height > 3_000  # most of the traffic is generations; adapter loads are not
    assert local.filter(pl.col("error_type").is_not_null()).height > 50
    assert local.filter(pl.col("evals") > 0).height > 1_000
    _same(local, remote, KEYS)


@pytest.mark.parametrize("variant", ["plain", "materialized"])
def test_evals_and_events_equal_the_local_views(engines, variant) -> None:
    source: ClickHouseSource = getattr(engines, variant)
    keys = [*KEYS, "name", "score"]
    _same(_local(engines.store, "evals", keys), source.frame(source.relation_sql("evals")), keys)
    events = source.frame(source.relation_sql("span_events"))
    keys = [*KEYS, "event_index"]
    _same(_local(engines.store, "span_events", keys), events, keys)


def test_time_window_is_bound_and_matches_the_local_store(engines) -> None:
    bounds = query(engines.store, "SELECT min(start_time) AS lo, max(start_time) AS hi FROM generations").row(0)
    middle = bounds[0] + (bounds[1] - bounds[0]) / 2
    expected = query(engines.store, "SELECT count(*) AS n FROM generations WHERE start_time >= ?", [middle]).item()
    got = engines.plain.generations(Selection(since=middle)).collect().height
    assert 0 < got == expected < engines.spans


def test_the_materialized_table_reads_its_own_columns(engines) -> None:
    assert engines.plain.materialized() == frozenset()
    assert engines.materialized.materialized() == frozenset(store_schema.PROMOTED_TYPES)
    sql = engines.materialized.relation_sql("generations")
    assert "mapContains(SpanAttributes, 'loratrace.adapter.name')" not in sql


def test_shipped_ddl_is_the_generated_ddl() -> None:
    folder = REPO / "collector-config" / "clickhouse"
    assert (folder / "otel_traces.sql").read_text() == clickhouse_sql.exporter_ddl("otel_traces")
    assert (folder / "otel_traces_loratrace.sql").read_text() == clickhouse_sql.materialized_ddl("otel_traces")


def test_urls_keep_the_password_out_of_messages() -> None:
    target = parse_url("clickhouse://analyst:s3cret@ch.internal:8123/observability?table=otel.otel_traces")
    assert (target.host, target.port, target.database, target.table) == (
        "ch.internal",
        8123,
        "observability",
        "otel.otel_traces",
    )
    assert target.password == "s3cret"
    assert "s3cret" not in repr(target)
    assert "s3cret" not in target.display()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("postgres://x/y", id="scheme"),
        pytest.param("chdb:///tmp/x?table=otel;DROP TABLE t", id="table-injection"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url) -> None:
    from loratrace.errors import StoreError

    with pytest.raises(StoreError, match=r"clickhouse://|plain name"):
        parse_url(url)
