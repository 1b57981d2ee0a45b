"""One store filled through a real collector over OTLP, and the same spans copied into embedded ClickHouse
(chdb) twice: the exporter's own ``otel_traces`` and loratrace's materialized variant."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from loratrace.sources.clickhouse import ClickHouseSource
from loratrace.store import query
from tests.clickhouse.traffic import send_traffic
from tests.collector.conftest import start_collector

SPANS = 4_000


@dataclass
class Engines:
    store: Path
    plain: ClickHouseSource  # the exporter's schema, everything read from SpanAttributes
    materialized: ClickHouseSource  # otel_traces_loratrace.sql
    spans: int


@pytest.fixture(scope="session")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    base = tmp_path_factory.mktemp("clickhouse")
    collector = start_collector(base / "store")
    try:
        sent = send_traffic(collector.http, seed=19, spans=SPANS)
        collector.wait_until(
            lambda: query(base / "store", "SELECT count(*) AS n FROM spans")["n"][0] == sent,
            timeout=120,
            what="every span queryable",
        )
    finally:
        collector.terminate()
    plain = ClickHouseSource(f"chdb://{base}/chdb?table=otel_traces")
    plain.create_table(materialized=False)
    assert plain.load_store(base / "store") == sent
    materialized = ClickHouseSource(f"chdb://{base}/chdb?table=otel_traces_loratrace")
    materialized.create_table(materialized=True)
    assert materialized.load_store(base / "store") == sent
    yield Engines(base / "store", plain, materialized, sent)
    materialized.close()
    plain.close()
