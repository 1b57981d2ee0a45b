"""The cells computed inside ClickHouse equal the local store's, metric by metric, from one definition each."""

from __future__ import annotations

import json
from datetime import timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from loratrace.analysis import metrics
from loratrace.analysis.cells import CELL_COLUMNS
from loratrace.analysis.run import drift_for_source
from loratrace.sources.base import Selection
from loratrace.sources.clickhouse_cells import to_clickhouse
from loratrace.sources.local import LocalStore

KEYS = [c for c in CELL_COLUMNS if c not in ("n", "sum", "sum_sq")]


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(CELL_COLUMNS).sort(KEYS, nulls_last=True)


def _every_metric(source) -> list[metrics.Metric]:
    names = source.present().eval_names
    assert names == ["correct", "toxicity"]
    return list(metrics.available(names).values())


@pytest.mark.parametrize("variant", ["plain", "materialized"])
@pytest.mark.parametrize("window", [None, timedelta(minutes=30)], ids=["all", "30min"])
def test_cells_equal_the_local_cells(engines, variant, window) -> None:
    local = LocalStore(engines.store)
    remote = getattr(engines, variant)
    chosen = _every_metric(local)
    expected = _sorted(local.cells(chosen, window=window))
    got = _sorted(remote.cells(chosen, window=window))
    assert expected.height > 100
    assert set(expected["metric"]) == {m.name for m in chosen}
    assert_frame_equal(expected, got, check_exact=False, rel_tol=1e-9)


def test_a_selection_is_applied_inside_clickhouse(engines) -> None:
    local = LocalStore(engines.store)
    middle = local.generations().select(pl.col("start_time").median()).collect().item()
    selection = Selection(since=middle, adapters=("billing-v7",), cohorts=("pro", "free"), traffic="all")
    chosen = [metrics.BUILTIN["error_rate"], metrics.BUILTIN["duration_ms"], *metrics.eval_metrics("correct")]
    expected = _sorted(local.cells(chosen, window=timedelta(hours=1), selection=selection))
    got = _sorted(engines.plain.cells(chosen, window=timedelta(hours=1), selection=selection))
    assert set(expected["adapter"].drop_nulls()) == {"billing-v7"}
    assert set(expected["cohort"]) == {"pro", "free"}
    assert_frame_equal(expected, got, check_exact=False, rel_tol=1e-9)


def test_drift_rows_are_the_same_on_both_engines(engines) -> None:
    expected = drift_for_source(LocalStore(engines.store), min_n=10)
    got = drift_for_source(engines.materialized, min_n=10)
    keys = ["adapter", "cohort", "metric", "design"]
    assert expected.height > 20
    assert_frame_equal(expected.sort(keys), got.sort(keys), check_exact=False, rel_tol=1e-9)


def test_metric_sql_is_translated_not_copied() -> None:
    assert to_clickhouse("CAST(output_tokens AS DOUBLE)") == "CAST(output_tokens AS Nullable(Float64))"


def test_drift_command_reads_clickhouse_with_source(engines) -> None:
    import json

    from click.testing import CliRunner

    from loratrace.cli import cli

    runner = CliRunner()
    common = ["drift", "--min-n", "10", "--format", "json", "--metric", "error_rate", "--metric", "eval_pass:correct"]
    local = runner.invoke(cli, [*common, "--store", str(engines.store)])
    url = f"chdb://{engines.store.parent}/chdb?table=otel_traces_loratrace"
    remote = runner.invoke(cli, [*common, "--source", url])
    assert local.exit_code == 0, local.output
    assert remote.exit_code == 0, remote.output
    keys = ["adapter", "cohort", "metric", "design"]
    expected = pl.DataFrame(json.loads(local.output)).sort(keys)
    assert expected.height > 10
    got = pl.DataFrame(json.loads(remote.output)).sort(keys)
    assert_frame_equal(expected, got, check_exact=False, rel_tol=1e-9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--source", "postgres://db/x"], "--source: a ClickHouse source", id="scheme"),
        pytest.param(["--source", "chdb:///tmp/x", "--store", "/tmp/y"], "not both", id="both"),
        pytest.param([], "pass --store DIR", id="neither"),
    ],
)
def test_a_bad_source_exits_2_naming_the_flag(args, message, monkeypatch) -> None:
    from click.testing import CliRunner

    from loratrace.cli import cli

    monkeypatch.delenv("LORATRACE_STORE", raising=False)
    monkeypatch.delenv("LORATRACE_SOURCE", raising=False)
    result = CliRunner().invoke(cli, ["drift", *args])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize("traffic", ["all", "production"])
def test_paired_cells_equal_including_mirrored_traffic(engines, traffic) -> None:
    chosen = [metrics.BUILTIN["error_rate"], metrics.BUILTIN["duration_ms"], *metrics.eval_metrics("correct")]
    selection = Selection(traffic=traffic)  # production: no replayed examples, so only shadow pairs remain
    keys = ["adapter", "adapter_id", "cohort", "route", "metric"]
    expected = LocalStore(engines.store).paired_cells(chosen, selection=selection).sort(keys)
    got = engines.plain.paired_cells(chosen, selection=selection).sort(keys)
    assert expected["n"].sum() > 50
    assert_frame_equal(expected, got.select(expected.columns), check_exact=False, rel_tol=1e-9)


def test_gate_decides_the_same_on_both_engines(engines) -> None:
    from click.testing import CliRunner

    from loratrace.cli import cli

    runner = CliRunner()
    common = ["gate", "--adapter", "billing-v7", "--min-n", "10", "--allow-insufficient", "--format", "json"]
    local = runner.invoke(cli, [*common, "--store", str(engines.store)])
    url = f"chdb://{engines.store.parent}/chdb?table=otel_traces"
    remote = runner.invoke(cli, [*common, "--source", url])
    assert local.exit_code in (0, 1), local.output
    assert remote.exit_code == local.exit_code, remote.output
    expected, got = json.loads(local.output), json.loads(remote.output)
    # the latest id is the swapped-in one (the test traffic replaces billing-v7's weights halfway)
    assert expected["adapter_id"] == got["adapter_id"] == f"sha256:{sum(map(ord, 'billing-v7')) * 2:064d}"
    assert (expected["decision"], len(expected["reasons"])) == (got["decision"], len(got["reasons"]))
