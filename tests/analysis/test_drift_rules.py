"""Drift's rules on tiny hand-built frames: windows matched, confounders flagged, before/after labelled, verdicts."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from loratrace.analysis import cells, drift
from loratrace.analysis.metrics import BUILTIN

T0 = datetime(2026, 11, 2, 8)
ERROR = BUILTIN["error_rate"]


def _rows(
    arm: str, n: int, errors: int, *, hour: int = 0, prompt: str = "v1", quant: str | None = None
) -> pl.DataFrame:
    adapter = "a1" if arm == "adapter" else None
    return pl.DataFrame(
        {
            "start_time": [T0 + timedelta(hours=hour, seconds=i) for i in range(n)],
            "adapter": [adapter] * n,
            "adapter_id": [None if adapter is None else "sha256:1"] * n,
            "arm": [arm] * n,
            "cohort": ["smb"] * n,
            "route": ["support"] * n,
            "prompt_version": [prompt] * n,
            "quantization": [quant] * n,
            "base_model": ["tiny"] * n,
            "error_type": ["E" if i < errors else None for i in range(n)],
            "status_code": ["UNSET"] * n,
        },
        schema_overrides={"adapter": pl.String, "adapter_id": pl.String, "quantization": pl.String},
    )


def _drift(*frames: pl.DataFrame, **options) -> pl.DataFrame:
    frame = cells(pl.concat(frames).lazy(), metrics=[ERROR], window=timedelta(hours=1)).collect()
    return drift(frame, metrics=[ERROR], **options).filter(pl.col("cohort") == "smb")


def test_base_traffic_outside_the_adapters_windows_is_not_compared() -> None:
    # hour 0: base only, with many errors; hour 1: both arms, equal
    rows = _drift(_rows("base", 200, 100, hour=0), _rows("base", 200, 10, hour=1), _rows("adapter", 200, 10, hour=1))
    row = rows.row(0, named=True)
    assert row["n_base"] == 200
    assert row["base_value"] == pytest.approx(0.05)
    assert row["verdict"] == "no_change"


def test_a_regression_needs_significance_and_the_minimum_effect() -> None:
    regressed = _drift(_rows("base", 400, 20), _rows("adapter", 400, 60)).row(0, named=True)
    assert regressed["verdict"] == "regressed"
    assert regressed["delta"] == pytest.approx(0.10)
    tiny = _drift(_rows("base", 400, 20), _rows("adapter", 400, 60), min_effect=0.2).row(0, named=True)
    assert tiny["verdict"] == "no_change"
    few = _drift(_rows("base", 20, 1), _rows("adapter", 20, 12)).row(0, named=True)
    assert few["verdict"] == "insufficient_data"


def test_an_improvement_is_not_a_regression() -> None:
    row = _drift(_rows("base", 400, 60), _rows("adapter", 400, 20)).row(0, named=True)
    assert row["verdict"] == "improved"
    assert row["p_value"] > 0.99  # the harm test: no evidence at all that the adapter is worse


def test_differing_prompt_versions_and_quantization_are_flagged_as_confounded() -> None:
    row = _drift(_rows("base", 200, 10, prompt="v1"), _rows("adapter", 200, 10, prompt="v2", quant="awq/4")).row(
        0, named=True
    )
    assert set(row["flags"]) == {"confounded:prompt_version", "confounded:quantization"}
    clean = _drift(_rows("base", 200, 10), _rows("adapter", 200, 10)).row(0, named=True)
    assert clean["flags"] == []


def test_before_after_compares_with_the_traffic_before_the_adapter_and_says_so() -> None:
    rows = _drift(
        _rows("base", 300, 15, hour=0),
        _rows("base", 300, 15, hour=1),
        _rows("adapter", 300, 60, hour=2),
        baseline="before",
    )
    row = rows.row(0, named=True)
    assert row["design"] == "before_after"
    assert "confounded:time" in row["flags"]
    assert row["n_base"] == 600
    assert row["verdict"] == "regressed"


def test_mirrored_shadow_answers_pair_with_the_base_answer_in_the_same_trace() -> None:
    from loratrace.analysis import paired_cells

    n = 300
    base = _rows("base", n, 15).with_columns(
        pl.Series("trace_id", [f"t{i}" for i in range(n)]),
        pl.lit("base").alias("variant"),
        pl.lit(None, dtype=pl.String).alias("example_id"),
        pl.lit(None, dtype=pl.String).alias("dataset_version"),
    )
    # the shadow fails on the first 60 traces, the base on the first 15: 45 discordant pairs, all against the adapter
    shadow = _rows("adapter", n, 60).with_columns(
        pl.Series("trace_id", [f"t{i}" for i in range(n)]),
        pl.lit("shadow").alias("variant"),
        pl.lit(None, dtype=pl.String).alias("example_id"),
        pl.lit(None, dtype=pl.String).alias("dataset_version"),
    )
    unrelated = _rows("adapter", 50, 0).with_columns(
        pl.Series("trace_id", [f"u{i}" for i in range(50)]),
        pl.lit("adapter").alias("variant"),
        pl.lit(None, dtype=pl.String).alias("example_id"),
        pl.lit(None, dtype=pl.String).alias("dataset_version"),
    )
    rows = pl.concat([base, shadow, unrelated]).lazy()
    pairs = paired_cells(rows, metrics=[ERROR]).collect()
    # value 1 (an error) in the adapter's answer only, on traces 15-59
    assert pairs.select("n", "base_only", "adapter_only").row(0) == (n, 0, 45)
    result = drift(cells(rows, metrics=[ERROR]).collect(), metrics=[ERROR], paired=pairs)
    row = result.filter(pl.col("cohort") == "smb").row(0, named=True)
    assert row["design"] == "paired"
    assert row["n_adapter"] == n
    assert row["delta"] == pytest.approx(45 / n)
    assert row["verdict"] == "regressed"


def test_the_overall_row_of_a_paired_comparison_pools_the_pairs() -> None:
    """32 examples in two cohorts, each passed by the base and failed by the adapter: McNemar on 32 discordant pairs."""
    from scipy.stats import binomtest

    from loratrace.analysis.metrics import eval_metrics

    passing = eval_metrics("quality")[0]
    paired = pl.DataFrame(
        {
            "adapter": ["a1", "a1"],
            "adapter_id": ["sha256:1", "sha256:1"],
            "cohort": ["smb", "enterprise"],
            "route": ["support", "support"],
            "metric": [passing.name] * 2,
            "n": [16, 16],
            "sum_base": [16.0, 16.0],
            "sum_adapter": [0.0, 0.0],
            "sum_diff": [-16.0, -16.0],
            "sum_diff_sq": [16.0, 16.0],
            "base_only": [16, 16],
            "adapter_only": [0, 0],
        }
    )
    empty = cells(
        pl.LazyFrame(schema={"start_time": pl.Datetime("us")})
        .head(0)
        .with_columns(
            *[
                pl.lit(None, dtype=pl.String).alias(c)
                for c in (
                    "adapter",
                    "adapter_id",
                    "arm",
                    "cohort",
                    "route",
                    "prompt_version",
                    "quantization",
                    "base_model",
                    "error_type",
                    "status_code",
                )
            ]
        ),
        metrics=[ERROR],
    ).collect()
    rows = drift(empty, metrics=[passing], paired=paired, min_n=10)
    overall = rows.filter(pl.col("cohort") == "(all)").row(0, named=True)
    assert overall["design"] == "paired"
    assert overall["n_adapter"] == 32
    assert overall["delta"] == pytest.approx(-1.0)
    assert overall["p_value"] == pytest.approx(binomtest(0, 32, 0.5, alternative="less").pvalue)
    assert -1.0 <= overall["ci_low"] <= overall["ci_high"] <= 1.0
    assert overall["verdict"] == "regressed"
