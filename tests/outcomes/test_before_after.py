"""The interrupted time series of feedback around an adapter's first traffic: the same fit as statsmodels on the
same numbers, and its false-alarm rate and power by seeded simulation."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from loratrace.analysis.feedback import before_after

START = datetime(2026, 11, 1)
HOURS, ARRIVAL_HOUR, PER_HOUR = 48, 24, 200


def _series(rng: np.random.Generator, *, level_change: float, base_rate: float = 0.10, trend: float = 0.0005):
    """Generation rows and their feedback for one route: base only before the arrival hour, the adapter after."""
    trace_ids, adapters, starts, with_feedback = [], [], [], []
    for hour in range(HOURS):
        after = hour >= ARRIVAL_HOUR
        rate = base_rate + trend * hour + (level_change if after else 0.0)
        received = rng.random(PER_HOUR) < rate
        for number in range(PER_HOUR):
            trace_ids.append(f"{hour}-{number}")
            adapters.append("a1" if after else None)
            starts.append(START + timedelta(hours=hour, seconds=number))
            with_feedback.append(bool(received[number]))
    generations = pl.LazyFrame(
        {
            "trace_id": trace_ids,
            "span_id": trace_ids,
            "adapter": adapters,
            "route": ["support"] * len(trace_ids),
            "example_id": pl.Series([None] * len(trace_ids), dtype=pl.String),
            "variant": ["adapter" if a else "base" for a in adapters],
            "start_time": starts,
        }
    )
    chosen = [t for t, got in zip(trace_ids, with_feedback, strict=True) if got]
    feedback = pl.DataFrame(
        {
            "trace_id": chosen,
            "span_id": chosen,
            "kind": ["thumbs_down"] * len(chosen),
            "route": ["support"] * len(chosen),
            "delay_s": [60.0] * len(chosen),
        }
    )
    return generations, feedback, np.array(with_feedback).reshape(HOURS, PER_HOUR)


def _its(generations, feedback):
    return before_after(
        generations,
        feedback,
        kind="thumbs_down",
        adapter="a1",
        route="support",
        now=START + timedelta(days=30),
    ).row(0, named=True)


def test_the_fit_is_statsmodels_segmented_regression_on_the_same_numbers():
    generations, feedback, received = _series(np.random.default_rng(1), level_change=0.05)
    row = _its(generations, feedback)
    t = np.arange(HOURS, dtype=float) - ARRIVAL_HOUR
    after = (t >= 0).astype(float)
    design = np.column_stack([np.ones(HOURS), t, after, t * after])
    rates = received.mean(axis=1)
    model = sm.WLS(rates, design, weights=np.full(HOURS, PER_HOUR))
    plain = model.fit(use_t=True)
    hac = model.fit(cov_type="HAC", cov_kwds={"maxlags": 1, "use_correction": True}, use_t=True)
    fit = plain if plain.bse[2] >= hac.bse[2] else hac
    assert row["delta"] == pytest.approx(fit.params[2])
    assert row["base_value"] == pytest.approx(fit.params[0])
    assert row["p_value"] == pytest.approx(fit.pvalues[2])
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(fit.conf_int(alpha=0.05)[2]))
    assert row["slope_change"] == pytest.approx(fit.params[3])
    assert (row["windows_before"], row["windows_after"]) == (ARRIVAL_HOUR, HOURS - ARRIVAL_HOUR)
    assert (row["n_base"], row["n_adapter"]) == (ARRIVAL_HOUR * PER_HOUR, (HOURS - ARRIVAL_HOUR) * PER_HOUR)
    assert row["flags"] == ["confounded:time"]


def test_false_alarms_and_power_by_seeded_simulation():
    rng = np.random.default_rng(2026)
    runs = 100
    null_alarms = sum(_its(*_series(rng, level_change=0.0)[:2])["verdict"] != "no_change" for _ in range(runs))
    found = sum(_its(*_series(rng, level_change=0.04)[:2])["verdict"] == "regressed" for _ in range(runs))
    false_alarm_rate, power = null_alarms / runs, found / runs
    print(f"before/after at alpha 0.05, {runs} runs each: false alarms {false_alarm_rate:.3f}, power {power:.3f}")
    # two-sided alarms at alpha 0.05 (either verdict); 0.10 is more than two standard errors above 0.05 at 100 runs
    assert false_alarm_rate <= 0.10
    assert power >= 0.7


def test_too_few_windows_is_insufficient_data():
    generations, feedback, _ = _series(np.random.default_rng(3), level_change=0.0)
    short = generations.filter(pl.col("start_time") >= START + timedelta(hours=ARRIVAL_HOUR - 2))
    row = _its(short, feedback)
    assert (row["verdict"], row["windows_before"], row["delta"]) == ("insufficient_data", 2, None)
