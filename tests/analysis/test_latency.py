"""loratrace latency: percentiles per adapter configuration and the slower-than-base test, checked against numpy,
scipy and statsmodels on the same numbers; false alarms and power of the test by seeded simulation."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal
from scipy import stats
from statsmodels.stats.multitest import multipletests

from loratrace.analysis import latency, window
from loratrace.analysis.latency import latency_percentiles, slower_than_base
from loratrace.cli import cli

from .incident_store import Fixture, build


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return build(tmp_path_factory.mktemp("latency"))


def test_percentiles_per_configuration_match_numpy(fx: Fixture) -> None:
    got = latency_percentiles(window.generations(fx.store)).collect()
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in fx.rows:
        if r["operation_name"]:
            quantization = "none" if r["model_quantization_method"] is None else "?"
            groups[r["served_by"], r["adapter_rank"], r["adapter_merged"], quantization].append(r["duration_ms"])
    rows = {(g["adapter"], g["rank"], g["merged"], g["quantization"]): g for g in got.iter_rows(named=True)}
    assert set(rows) == set(groups)
    for key, values in groups.items():
        assert rows[key]["n"] == len(values)
        assert [rows[key][c] for c in ("p50_ms", "p95_ms", "p99_ms")] == pytest.approx(
            np.percentile(values, [50, 95, 99]).tolist()
        )


def test_slower_than_base_matches_scipy_and_statsmodels_and_finds_the_slow_adapter(fx: Fixture) -> None:
    got = slower_than_base(window.generations(fx.store), min_n=30)
    base: dict[tuple, list[float]] = defaultdict(list)
    arms: dict[tuple, list[float]] = defaultdict(list)
    for r in fx.rows:
        if not r["operation_name"]:
            continue
        if r["adapter_name"] is None:
            base[r["route_name"], r["cohort"]].append(r["duration_ms"])
        else:
            arms[r["adapter_name"], r["adapter_id"], r["route_name"], r["cohort"]].append(r["duration_ms"])
    expected = {}
    for (adapter, adapter_id, route, cohort), values in arms.items():
        reference = base.get((route, cohort), [])
        if len(reference) >= 30 and len(values) >= 30:
            m, n = len(reference), len(values)
            p95 = sorted(reference)[math.ceil(0.95 * m) - 1]  # nearest rank
            slower = int(np.sum(np.asarray(values) > p95))
            above = int(np.sum(np.asarray(reference) > p95))
            # exceedance: P(X >= x) = P(at least x adapter requests among the top x + above of the pooled sample)
            p = stats.hypergeom.sf(slower - 1, m + n, n, slower + above) if slower else 1.0
            expected[adapter, adapter_id, route, cohort] = (slower, len(values), p)
    keys = sorted(expected, key=str)
    q = multipletests([expected[k][2] for k in keys], method="fdr_bh")[1]
    rows = {(g["adapter"], g["adapter_id"], g["route"], g["cohort"]): g for g in got.iter_rows(named=True)}
    for key, q_value in zip(keys, q, strict=True):
        slower, n, p = expected[key]
        assert (rows[key]["slower"], rows[key]["n_adapter"]) == (slower, n)
        assert rows[key]["p_value"] == pytest.approx(p)
        assert rows[key]["q_value"] == pytest.approx(q_value)
    untested = set(rows) - set(expected)
    assert untested  # the replay cohort (6 requests per arm) and legacy-ft (no base on its own) ...
    assert {rows[k]["verdict"] for k in untested} == {"insufficient_data"}  # ... get no verdict
    verdicts = {(k[0], k[3]): rows[k]["verdict"] for k in expected}
    assert {k: v for k, v in verdicts.items() if k[0] == "a2"} == {
        ("a2", "enterprise"): "slower",
        ("a2", "smb"): "slower",
    }
    assert {v for k, v in verdicts.items() if k[0] == "a1"} == {"no_change"}


def test_the_store_engine_gives_the_same_tables_as_polars(fx: Fixture) -> None:
    generations = window.generations(fx.store)
    by_polars = latency_percentiles(generations).collect()
    by_duckdb = latency.store_percentiles(fx.store, since=None, until=None)
    assert_frame_equal(by_duckdb, by_polars, check_dtypes=False, abs_tol=1e-6)
    assert_frame_equal(
        latency.verdicts(latency.store_counts(fx.store, since=None, until=None)),
        slower_than_base(generations),
        check_dtypes=False,
    )
    only = latency.store_counts(fx.store, since=None, until=None, adapter="a2", cohort="smb")
    assert set(only["adapter"]) == {"a2"}
    assert set(only["cohort"]) == {"smb"}


def _simulated(rng: np.random.Generator, *, n: int, slowdown_ms: float) -> pl.LazyFrame:
    frames = []
    for adapter, extra in ((None, 0.0), ("a1", 0.0), ("a2", slowdown_ms)):
        for cohort in ("c1", "c2", "c3"):
            mean = 800.0 + (extra if cohort == "c2" else 0.0)
            durations = rng.lognormal(np.log(mean) - 0.35**2 / 2, 0.35, n)
            frames.append(
                pl.DataFrame(
                    {
                        "adapter_name": [adapter] * n,
                        "adapter_id": [adapter] * n,
                        "route_name": ["r"] * n,
                        "cohort": [cohort] * n,
                        "duration_ns": (durations * 1e6).astype(np.int64),
                    },
                    schema_overrides={"adapter_name": pl.String, "adapter_id": pl.String},
                )
            )
    return pl.concat(frames).lazy()


def _binomial_flags(frame: pl.LazyFrame) -> set[tuple[str, str]]:
    """The plain alternative, side by side: binomial test of the share above the base p95 against 5 %, BH."""
    data = frame.with_columns(ms=pl.col("duration_ns") / 1e6).collect()
    keys, p_values = [], []
    for cohort in data["cohort"].unique().sort():
        base = data.filter(pl.col("adapter_name").is_null() & (pl.col("cohort") == cohort))["ms"].to_numpy()
        p95 = np.percentile(base, 95)
        for adapter in ("a1", "a2"):
            values = data.filter((pl.col("adapter_name") == adapter) & (pl.col("cohort") == cohort))["ms"].to_numpy()
            slower = int(np.sum(values > p95))
            keys.append((adapter, cohort))
            p_values.append(stats.binomtest(slower, len(values), 0.05, alternative="greater").pvalue)
    rejected = multipletests(p_values, alpha=0.05, method="fdr_bh")[0]
    return {k for k, r in zip(keys, rejected, strict=True) if r}


def test_false_alarms_and_power_by_seeded_simulation() -> None:
    rng = np.random.default_rng(2026)
    runs, n = 300, 1000
    alarms = {"exceedance": 0, "binomial": 0}
    found = 0
    false_flags = 0
    flags = 0
    false_discovery_proportions = []
    for _ in range(runs):
        null_frame = _simulated(rng, n=n, slowdown_ms=0.0)
        null = slower_than_base(null_frame)
        alarms["exceedance"] += bool((null["verdict"] == "slower").any())
        alarms["binomial"] += bool(_binomial_flags(null_frame))
        planted = slower_than_base(_simulated(rng, n=n, slowdown_ms=150.0))
        slow = planted.filter(pl.col("verdict") == "slower")
        found += bool(((slow["adapter"] == "a2") & (slow["cohort"] == "c2")).any())
        wrong = slow.filter(~((pl.col("adapter") == "a2") & (pl.col("cohort") == "c2"))).height
        flags += slow.height
        false_flags += wrong
        false_discovery_proportions.append(wrong / slow.height if slow.height else 0.0)
    rates = {name: count / runs for name, count in alarms.items()}
    power = found / runs
    print(
        f"slower_than_base over {runs} seeded null runs (6 cells, {n} requests per arm): any flag in "
        f"{rates['exceedance']:.1%} (exact exceedance test) vs {rates['binomial']:.1%} (binomial against 5 %); "
        f"+150 ms in one cell found in {power:.1%}, {false_flags} of {flags} flags false "
        f"(false discovery rate {np.mean(false_discovery_proportions):.1%})"
    )
    # BH at 5 % under the complete null: any-flag runs at most 5 %, plus sampling error over 300 runs
    assert rates["exceedance"] <= 0.08
    assert rates["binomial"] > rates["exceedance"]  # why the binomial test is not used: it ignores the p95's noise
    assert power >= 0.9
    # BH bounds the false discovery rate (the mean share of a run's flags that are false) at 5 %
    assert np.mean(false_discovery_proportions) <= 0.05 + 0.02


def test_cli_latency_json_and_bad_input(fx: Fixture) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["latency", "--store", str(fx.store), "--format", "json", "--adapter", "a2"])
    assert result.exit_code == 0, result.output
    import json

    payload = json.loads(result.output)
    assert {row["adapter"] for row in payload["percentiles"]} == {"a2", "(base) tiny-llama"}
    assert {row["verdict"] for row in payload["vs-base"] if row["cohort"] in ("smb", "enterprise")} == {"slower"}
    bad = runner.invoke(cli, ["latency", "--store", str(fx.store), "--adapter", "a3"])
    assert bad.exit_code == 2
    assert "did you mean a" in bad.output
    csv = runner.invoke(cli, ["latency", "--store", str(fx.store), "--view", "vs-base", "--format", "csv"])
    assert csv.exit_code == 0, csv.output
    assert csv.output.startswith("adapter,adapter_id,route,cohort,base_p95_ms")
