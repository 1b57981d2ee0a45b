"""Drift end to end: seeded traffic with planted effects through the real OTLP exporter and collector, then the
analysis finds exactly what was planted, by the strongest design the data offers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from collector.conftest import RunningCollector, start_collector
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from loratrace.analysis import drift_for_store
from loratrace.cli import cli
from loratrace.demo.traffic import Effect, Traffic, emit, records
from loratrace.store import query

START = datetime(2026, 11, 2, 8, tzinfo=timezone.utc)
EVAL = "eval_pass:quality"


def _send(traffic: Traffic, collector: RunningCollector) -> int:
    provider = TracerProvider(resource=Resource.create({"service.name": "drift-test"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.http}/v1/traces"), max_queue_size=100_000)
    )
    count = emit(traffic, provider)
    provider.shutdown()
    collector.wait_until(
        lambda: query(collector.store, "SELECT count(*) AS n FROM generations")["n"][0] == count,
        timeout=120,
        what=f"{count} generations in the store",
    )
    return count


@pytest.fixture(scope="module")
def concurrent_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """a1 drops 15 points of eval pass rate on enterprise; a2 gains 14 on smb but drops 10 on enterprise."""
    traffic = Traffic(
        start=START,
        duration=timedelta(hours=8),
        requests_per_hour=100,
        effects=(
            Effect("a1", "eval_pass", -0.15, cohort="enterprise"),
            Effect("a2", "eval_pass", +0.14, cohort="smb"),
            Effect("a2", "eval_pass", -0.10, cohort="enterprise"),
        ),
        seed=11,
    )
    collector = start_collector(tmp_path_factory.mktemp("concurrent") / "store")
    try:
        _send(traffic, collector)
    finally:
        collector.terminate()
    return collector.store


@pytest.fixture(scope="module")
def paired_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    traffic = Traffic(
        start=START,
        duration=timedelta(hours=4),
        requests_per_hour=60,
        design="paired",
        effects=(Effect("a1", "eval_pass", -0.2, cohort="smb"),),
        seed=5,
    )
    collector = start_collector(tmp_path_factory.mktemp("paired") / "store")
    try:
        _send(traffic, collector)
    finally:
        collector.terminate()
    return collector.store


def _verdicts(rows: pl.DataFrame, verdict: str) -> set[tuple[str, str, str]]:
    picked = rows.filter(pl.col("verdict") == verdict)
    return set(zip(picked["adapter"], picked["cohort"], picked["metric"], strict=True))


def test_concurrent_drift_finds_exactly_the_planted_regressions(concurrent_store: Path) -> None:
    rows = drift_for_store(concurrent_store)
    assert set(rows["design"]) == {"concurrent"}
    cohorts = rows.filter(pl.col("cohort") != "(all)")
    # every other cohort x metric row is a null cell: nothing else may be flagged
    assert _verdicts(cohorts, "regressed") == {("a1", "enterprise", EVAL), ("a2", "enterprise", EVAL)}
    assert _verdicts(cohorts, "improved") == {("a2", "smb", EVAL)}
    assert ("a1", "(all)", EVAL) in _verdicts(rows, "regressed")
    a1 = rows.filter((pl.col("adapter") == "a1") & (pl.col("cohort") == "enterprise") & (pl.col("metric") == EVAL))
    assert a1["ci_low"][0] < -0.15 < a1["ci_high"][0]
    assert a1["n_base"][0] >= 700
    assert a1["n_adapter"][0] >= 700


def test_an_overall_gain_never_hides_a_regressed_cohort(concurrent_store: Path) -> None:
    rows = drift_for_store(concurrent_store, metric_names=[EVAL])
    overall = rows.filter((pl.col("adapter") == "a2") & (pl.col("cohort") == "(all)")).row(0, named=True)
    assert overall["delta"] > 0
    assert "simpson" in overall["flags"]
    regressed = rows.filter((pl.col("adapter") == "a2") & (pl.col("cohort") == "enterprise")).row(0, named=True)
    assert regressed["verdict"] == "regressed"
    assert "simpson" in regressed["flags"]
    a1_overall = rows.filter((pl.col("adapter") == "a1") & (pl.col("cohort") == "(all)")).row(0, named=True)
    assert "simpson" not in a1_overall["flags"]


def test_paired_replay_uses_mcnemar_on_the_same_examples(paired_store: Path) -> None:
    rows = drift_for_store(paired_store, metric_names=[EVAL])
    assert set(rows["design"]) == {"paired"}
    assert _verdicts(rows, "regressed") == {("a1", "smb", EVAL), ("a1", "(all)", EVAL)}
    row = rows.filter((pl.col("adapter") == "a1") & (pl.col("cohort") == "smb")).row(0, named=True)
    # one pair per example that was evaluated in both arms
    expected_pairs = sum(
        1
        for r in records(
            Traffic(start=START, duration=timedelta(hours=4), requests_per_hour=60, design="paired", seed=5)
        )
        if r.adapter is None and r.evals and r.attributes["loratrace.cohort"] == "smb"
    )
    assert 0 < row["n_adapter"] <= expected_pairs
    assert row["n_base"] == row["n_adapter"]


def test_the_cli_prints_drift_rows_for_machines(concurrent_store: Path) -> None:
    result = CliRunner().invoke(
        cli, ["drift", "--store", str(concurrent_store), "--metric", EVAL, "--verdict", "regressed", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {(r["adapter"], r["cohort"]) for r in rows} == {("a1", "enterprise"), ("a2", "enterprise"), ("a1", "(all)")}
    assert set(rows[0]) == {
        "adapter", "adapter_id", "cohort", "metric", "design", "base_value", "adapter_value", "delta", "ci_low",
        "ci_high", "p_value", "q_value", "n_base", "n_adapter", "verdict", "flags",
    }  # fmt: skip
    table = CliRunner().invoke(cli, ["drift", "--store", str(concurrent_store), "--metric", EVAL])
    assert table.exit_code == 0, table.output
    assert "regressed" in table.output
    assert "(6 rows)" in table.output  # 2 adapters x (2 cohorts + (all))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(["--adapter", "a11"], "did you mean a1", id="unknown-adapter"),
        pytest.param(["--cohort", "enterprize"], "did you mean enterprise", id="unknown-cohort"),
        pytest.param(["--metric", "eval_pass:qualty"], "did you mean eval_pass:quality", id="unknown-metric"),
        pytest.param(
            ["--since", "2020-01-01", "--until", "2020-01-02"], "days with generations: 2026-11-02", id="empty"
        ),
        pytest.param(["--since", "yesterday"], "--since", id="bad-time"),
        pytest.param(["--window", "0m"], "--window", id="bad-window"),
    ],
)
def test_bad_input_gets_a_clear_error_and_exit_code_2(concurrent_store: Path, arguments, message) -> None:
    result = CliRunner().invoke(cli, ["drift", "--store", str(concurrent_store), *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_store_from_the_environment(concurrent_store: Path) -> None:
    result = CliRunner().invoke(
        cli, ["drift", "--metric", EVAL, "--format", "csv"], env={"LORATRACE_STORE": str(concurrent_store)}
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("adapter,adapter_id,cohort,metric,design")
