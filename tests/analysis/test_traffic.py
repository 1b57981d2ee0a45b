"""The seeded traffic generator: planted rates land in a real store, ids are stable, swaps show, and the three
doors (SDK spans through the real OTLP exporter and collector, protobuf requests, the embedded exporter) carry
the same spans."""

from __future__ import annotations

import math
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from collector.conftest import RunningCollector, start_collector
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from loratrace import semconv
from loratrace.demo._otlp_encoding import ChunkedExportProcessor, parse_request
from loratrace.demo.traffic import SERVICE_NAME, Effect, Traffic, otlp_requests, records, write_store
from loratrace.store import query

START = datetime(2026, 3, 2, 8, tzinfo=timezone.utc)


def _small(**overrides: object) -> Traffic:
    settings: dict[str, object] = {"start": START, "duration": timedelta(hours=2), "requests_per_hour": 15}
    settings.update(overrides)
    return Traffic(**settings)  # type: ignore[arg-type]  # the tests vary one field at a time


def test_records_are_seeded_and_pure() -> None:
    traffic = _small(seed=3)
    first = list(records(traffic))
    again = list(records(traffic))
    other = list(records(_small(seed=4)))
    assert [(r.trace_id, r.span_id, r.start_ns, dict(r.attributes)) for r in first] == [
        (r.trace_id, r.span_id, r.start_ns, dict(r.attributes)) for r in again
    ]
    assert {r.trace_id for r in first}.isdisjoint({r.trace_id for r in other})
    # (base + 2 adapters) x 2 cohorts x 15 per hour x 2 hours, in time order
    assert len(first) == 3 * 2 * 15 * 2
    assert [r.start_ns for r in first] == sorted(r.start_ns for r in first)
    assert len({r.trace_id for r in first}) == len(first)


def test_paired_design_sends_every_example_through_every_arm() -> None:
    traffic = _small(design="paired", effects=(Effect("a1", "eval_pass", -0.3),))
    rows = list(records(traffic))
    by_example: dict[str, list[str | None]] = {}
    for row in rows:
        by_example.setdefault(row.attributes[semconv.EXAMPLE_ID], []).append(row.adapter)
    assert len(by_example) == 2 * 15 * 2
    assert all(sorted(arms, key=str) == sorted([None, "a1", "a2"], key=str) for arms in by_example.values())
    variants = {(r.adapter, r.attributes[semconv.VARIANT]) for r in rows}
    assert variants == {(None, "base"), ("a1", "adapter"), ("a2", "adapter")}
    # a drop only ever turns a base pass into an adapter failure (one shared draw per example)
    passed = {(r.attributes[semconv.EXAMPLE_ID], r.adapter): r.evals[0].passed for r in rows if r.evals}
    assert not [k for (k, arm), ok in passed.items() if arm == "a1" and ok and passed.get((k, None)) is False]


def test_invalid_settings_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match=r"Effect\(metric=\.\.\.\)"):
        Effect("a1", "eval_passes", -0.1)
    with pytest.raises(ValueError, match="swaps"):
        _small(swaps=(("a9", START),))
    with pytest.raises(ValueError, match="timezone-aware"):
        _small(start=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="base_rates"):
        _small(base_rates={"errors": 0.1})


def _within(observed: int, n: int, rate: float) -> bool:
    """``observed`` successes of ``n`` at ``rate``, within 4.5 binomial standard deviations (or 2 counts)."""
    return abs(observed - n * rate) <= max(2.0, 4.5 * math.sqrt(n * rate * (1 - rate)))


def test_the_store_holds_the_planted_rates(tmp_path: Path) -> None:
    swap_at = START + timedelta(hours=3)
    traffic = Traffic(
        start=START,
        duration=timedelta(hours=6),
        requests_per_hour=400,
        effects=(
            Effect("a1", "eval_pass", -0.25, cohort="smb"),
            Effect("a2", "error", 0.15, start=START + timedelta(hours=4)),
            Effect("a2", "duration_ms", 600.0),
        ),
        swaps=(("a2", swap_at),),
        seed=11,
    )
    store = tmp_path / "store"
    written = write_store(traffic, store)
    assert written == 3 * 2 * 400 * 6

    rates = query(
        store,
        "SELECT coalesce(adapter_name, 'base') AS arm, cohort, count(*) AS n, "
        "count(*) FILTER (WHERE error_type = 'RuntimeError') AS errors, "
        "sum(evals_passed) AS passed, sum(evals) AS evaluated, avg(duration_ns) / 1e6 AS mean_ms "
        "FROM generations GROUP BY ALL ORDER BY ALL",
    )
    assert rates.height == 6
    for row in rates.iter_rows(named=True):
        assert row["n"] == 400 * 6
        pass_rate = 0.85 - (0.25 if (row["arm"], row["cohort"]) == ("a1", "smb") else 0.0)
        assert _within(row["passed"], row["evaluated"], pass_rate), row
        mean_ms = 800.0 + (600.0 if row["arm"] == "a2" else 0.0)
        # means include the 30 s timeouts (0.5 %): 0.995 * mean + 0.005 * 30000
        expected_ms = 0.995 * mean_ms + 0.005 * 30_000
        assert abs(row["mean_ms"] - expected_ms) < 0.15 * expected_ms, row
    late_errors = query(
        store,
        "SELECT coalesce(adapter_name, 'base') AS arm, count(*) AS n, "
        "count(*) FILTER (WHERE error_type = 'RuntimeError') AS errors FROM generations "
        "WHERE start_time >= $since GROUP BY ALL ORDER BY ALL",
        {"since": (START + timedelta(hours=4)).replace(tzinfo=None)},
    )
    for row in late_errors.iter_rows(named=True):
        assert _within(row["errors"], row["n"], 0.16 if row["arm"] == "a2" else 0.01), row

    ids = query(
        store,
        "SELECT adapter_name, adapter_id, min(start_time) AS first, max(start_time) AS last FROM generations "
        "WHERE adapter_name IS NOT NULL GROUP BY ALL ORDER BY adapter_name, first",
    )
    assert ids["adapter_name"].to_list() == ["a1", "a2", "a2"]
    before, after = ids.filter(ids["adapter_name"] == "a2").iter_rows(named=True)
    assert before["last"] < swap_at.replace(tzinfo=None) <= after["first"]
    assert before["adapter_id"] != after["adapter_id"]
    assert {before["adapter_id"], after["adapter_id"]} == {
        traffic.adapter_id("a2", START),
        traffic.adapter_id("a2", swap_at),
    }


def _span_view(spans: list) -> dict[tuple[bytes, bytes], tuple]:
    out = {}
    for span in spans:
        attributes = {kv.key: kv.value for kv in span.attributes}
        events = [(e.name, e.time_unix_nano, {kv.key: kv.value for kv in e.attributes}) for e in span.events]
        out[span.trace_id, span.span_id] = (
            span.name,
            span.kind,
            span.start_time_unix_nano,
            span.end_time_unix_nano,
            span.status.code,
            span.status.message,
            attributes,
            events,
        )
    return out


def test_otlp_requests_carry_what_the_sdk_encodes_from_emit() -> None:
    traffic = _small(seed=5, effects=(Effect("a1", "error", 0.3),), eval_fraction=0.5)
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    from loratrace.demo.traffic import emit

    assert emit(traffic, provider) == len(list(records(traffic)))
    sdk = encode_spans(memory.get_finished_spans())
    sdk_spans = [s for rs in sdk.resource_spans for ss in rs.scope_spans for s in ss.spans]
    bodies = list(otlp_requests(traffic, spans_per_request=50))
    ours = [
        s for body in bodies for rs in parse_request(body).resource_spans for ss in rs.scope_spans for s in ss.spans
    ]
    assert len(bodies) == math.ceil(len(sdk_spans) / 50)
    assert _span_view(ours) == _span_view(sdk_spans)
    assert any(view[4] == 2 for view in _span_view(ours).values())  # errors were planted and encoded


def _store_rows(store: Path) -> list[tuple]:
    return query(
        store,
        "SELECT trace_id, span_id, name, start_time_unix_nano, end_time_unix_nano, status_code, adapter_name, "
        "adapter_id, adapter_rank, cohort, variant, input_tokens, output_tokens, ttft_ms, finish_reason, "
        "error_type, schema_attempts, fallback, evals, evals_passed, service_name FROM generations ORDER BY ALL",
    ).rows()


def test_emit_and_otlp_requests_through_the_real_collector(tmp_path: Path) -> None:
    traffic = _small(seed=8, eval_fraction=0.5, swaps=(("a1", START + timedelta(hours=1)),))
    expected = list(records(traffic))

    (tmp_path / "sdk").mkdir()
    (tmp_path / "raw").mkdir()
    first = start_collector(tmp_path / "sdk" / "store")
    second = start_collector(tmp_path / "raw" / "store")
    try:
        _check_both_doors(traffic, expected, first, second)
    finally:
        first.terminate()
        second.terminate()


def _check_both_doors(traffic: Traffic, expected: list, first: RunningCollector, second: RunningCollector) -> None:
    exporter = OTLPSpanExporter(endpoint=f"{first.http}/v1/traces")
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    processor = ChunkedExportProcessor(exporter, chunk=100)
    provider.add_span_processor(processor)
    from loratrace.demo.traffic import emit

    emit(traffic, provider)
    provider.shutdown()
    assert processor.failures == 0

    for body in otlp_requests(traffic, spans_per_request=64):
        request = urllib.request.Request(
            f"{second.http}/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200

    def stored(collector: RunningCollector) -> list[tuple]:
        return collector.wait_until(
            lambda: (rows := _store_rows(collector.store)) and len(rows) == len(expected) and rows,
            timeout=60,
            what=f"{len(expected)} generations in {collector.store}",
        )

    through_sdk, through_requests = stored(first), stored(second)
    assert through_sdk == through_requests
    assert {(r[0], r[1]) for r in through_sdk} == {(e.trace_id, e.span_id) for e in expected}
    assert {r[7] for r in through_sdk if r[6] == "a1"} == {
        traffic.adapter_id("a1", START),
        traffic.adapter_id("a1", START + timedelta(hours=1)),
    }
    assert sum(r[18] for r in through_sdk) == sum(len(e.evals) for e in expected)
    assert sum(r[19] for r in through_sdk) == sum(e.evals[0].passed for e in expected if e.evals)
