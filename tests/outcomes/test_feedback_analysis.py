"""Feedback as an analysed metric, on a store written by a real collector: the denominators (only generations that
could have received feedback), adapter against base through ``drift``, late arrivals and the completeness of each
window, and the interrupted time series around the adapter's first traffic."""

from __future__ import annotations

import json
import time

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from loratrace.cli import cli

from .conftest import start_collector
from .spans import HOUR_NS, Traffic, wait_for_rows

HOURS, PER_HOUR, ADAPTER_FROM_HOUR = 24, 15, 8
RATES = {"base": 0.10, "adapter": 0.30}
MEAN_DELAY_S = 2 * 3600


@pytest.fixture(scope="module")
def feedback_store(tmp_path_factory):
    """24 hours of support traffic ending now (the adapter from hour 8), thumbs-down planted per arm with
    exponential delays; only the feedback whose time has come was sent, as a live system would have it."""
    rng = np.random.default_rng(18)
    collector = start_collector(tmp_path_factory.mktemp("feedback") / "store")
    now_ns = time.time_ns()
    t0 = (now_ns // HOUR_NS - HOURS) * HOUR_NS  # on the hour, as drift's windows are
    traffic = Traffic(collector.http)
    planted = {"base": [0, 0], "adapter": [0, 0]}  # [eligible generations, with thumbs-down arrived]
    delays = []
    pending = []
    starts = []  # of every generation that could have received a thumbs-down
    for hour in range(HOURS):
        arms = ["base", "adapter"] if hour >= ADAPTER_FROM_HOUR else ["base", "base"]
        for arm in arms:
            for number in range(PER_HOUR):
                start = t0 + hour * HOUR_NS + number * (HOUR_NS // PER_HOUR)
                adapter = "a1" if arm == "adapter" else None
                trace_id, span_id, _ = traffic.generation(
                    start_ns=start, adapter=adapter, adapter_id="sha256:a1" if adapter else None
                )
                starts.append(start)
                counted = hour >= ADAPTER_FROM_HOUR  # drift matches the windows both arms served
                planted[arm][0] += counted
                if rng.random() < RATES[arm]:
                    delay_s = rng.exponential(MEAN_DELAY_S)
                    at_ns = start + 50_000_000 + int(delay_s * 1e9)
                    if at_ns <= now_ns:
                        pending.append((trace_id, span_id, at_ns))
                        delays.append(delay_s)
                        planted[arm][1] += counted
    # generations that could never have received a thumbs-down: shadow traffic, golden-set replay, and a route
    # that collects none
    for number in range(30):
        start = t0 + (ADAPTER_FROM_HOUR + 1) * HOUR_NS + number * 10**9
        traffic.generation(start_ns=start, adapter="a1", adapter_id="sha256:a1", variant="shadow")
        traffic.generation(start_ns=start, adapter="a1", adapter_id="sha256:a1", example_id=f"e{number}")
        traffic.generation(start_ns=start, route="batch-summaries")
    traffic.feedback("thumbs_down", pending)
    sent = traffic.send()
    wait_for_rows(collector, "SELECT count(*) FROM spans", sent)
    collector.terminate()
    return collector.store, planted, np.array(delays), np.array(starts)


def test_drift_compares_feedback_rates_on_generations_that_could_receive_it(feedback_store):
    store, planted, _, _ = feedback_store
    result = CliRunner().invoke(
        cli, ["drift", "--store", str(store), "--metric", "feedback:thumbs_down", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    rows = {row["cohort"]: row for row in json.loads(result.output)}
    row = rows["enterprise"]
    assert (row["adapter"], row["design"]) == ("a1", "concurrent")
    # shadow, replay and the route without feedback are in no denominator
    assert (row["n_base"], row["n_adapter"]) == (planted["base"][0], planted["adapter"][0])
    assert row["base_value"] == pytest.approx(planted["base"][1] / planted["base"][0])
    assert row["adapter_value"] == pytest.approx(planted["adapter"][1] / planted["adapter"][0])
    assert row["verdict"] == "regressed"


def test_completeness_follows_the_observed_delays(feedback_store):
    store, _, delays, starts = feedback_store
    now_ns = time.time_ns()
    result = CliRunner().invoke(
        cli,
        [
            "feedback",
            "completeness",
            "--store",
            str(store),
            "--kind",
            "thumbs_down",
            "--window",
            "6h",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    windows = json.loads(result.output)
    # the same estimate by hand: per 6-hour window, the mean empirical CDF of the delays at each answer's age
    ecdf = np.sort(delays)
    window_ns = 6 * HOUR_NS
    expected = {}
    for start in starts:
        share = np.searchsorted(ecdf, (now_ns - start) / 1e9, side="right") / len(ecdf)
        expected.setdefault(start // window_ns, []).append(share)
    assert len(windows) == len(expected)
    for window, key in zip(windows, sorted(expected), strict=True):
        assert window["generations"] == len(expected[key])
        # seconds pass between this test's clock and the command's: a delay or two may fall in between
        assert window["completeness"] == pytest.approx(float(np.mean(expected[key])), abs=0.01)
        if window["projected_rate"] is not None:
            assert window["projected_rate"] == pytest.approx(window["rate"] / window["completeness"])
    assert windows[-1]["completeness"] < windows[0]["completeness"]
    assert windows[0]["delay_p50_s"] == pytest.approx(float(np.quantile(ecdf, 0.5)))


def test_before_after_is_an_interrupted_time_series_confounded_by_time(feedback_store):
    store, _, _, _ = feedback_store
    arguments = ["feedback", "before-after", "--store", str(store), "--kind", "thumbs_down", "--adapter", "a1"]
    result = CliRunner().invoke(cli, [*arguments, "--route", "support", "--window", "1h", "--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["design"] == "before_after"
    assert "confounded:time" in row["flags"]
    assert "feedback_incomplete" in row["flags"]  # the last hours' thumbs-down are still to come
    assert row["windows_before"] == ADAPTER_FROM_HOUR
    assert row["delta"] > 0
    assert row["ci_low"] <= row["delta"] <= row["ci_high"]
    unknown = CliRunner().invoke(cli, [*arguments[:-2], "--adapter", "a9", "--route", "support"])
    assert unknown.exit_code == 2
    assert "adapter 'a9' served no generation on route 'support'" in unknown.output
    no_kind = CliRunner().invoke(cli, ["feedback", "completeness", "--store", str(store), "--kind", "reopened"])
    assert no_kind.exit_code == 2
    assert "no 'reopened' feedback in the store (kinds present: thumbs_down)" in no_kind.output


def test_alert_rules_and_the_gate_read_the_same_feedback_rows(feedback_store):
    from loratrace.analysis.cells import cells
    from loratrace.analysis.feedback import load_generations_with_feedback
    from loratrace.analysis.metrics import feedback_metric

    store, planted, _, _ = feedback_store
    generations, kinds = load_generations_with_feedback(store)
    assert kinds == ["thumbs_down"]
    metric = feedback_metric("thumbs_down")
    assert not metric.higher_is_better
    totals = cells(generations, metrics=[metric]).collect().group_by("arm").agg(pl.sum("n"), pl.sum("sum"))
    adapter = totals.filter(pl.col("arm") == "adapter").row(0, named=True)
    assert (adapter["n"], adapter["sum"]) == (planted["adapter"][0], planted["adapter"][1])
