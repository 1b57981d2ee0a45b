"""Successive scheduled checks over a simulated stream with planted drift, a spike and a flapping fallback rate:
each alert opens once, stays open without repeating, resolves on recovery; hold-down keeps a flapping rate to one
page; two checks at once send nothing twice; a failing sink keeps the state and its notification."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from loratrace.alerts.check import run_alert_check, state_path

from .conftest import START
from .http_receiver import http_receiver

REPO = Path(__file__).resolve().parents[2]


def _rules(sink_path: Path, **extra: object) -> dict:
    return {
        "sinks": [{"type": "file", "path": str(sink_path)}],
        "rules": [
            {"name": "quality-drift", "type": "drift", "metrics": ["eval_pass:quality"]},
            {
                "name": "error-spike",
                "type": "spike",
                "metric": "error_rate",
                "window": "30m",
                "baseline": "24h",
                "min_volume": 40,
                "alpha": 0.0001,
                "for": "10m",
                "keep_firing_for": "30m",
            },
            {"name": "error-slo", "type": "slo", "bad": "errors", "objective": 0.99, "keep_firing_for": "30m"},
            {
                "name": "latency-slo",
                "type": "slo",
                "bad": "latency",
                "threshold_ms": 2000,
                "objective": 0.99,
                "keep_firing_for": "30m",
            },
            {
                "name": "fallback-raw",
                "type": "fallback",
                "max_rate": 0.6,
                "window": "5m",
                "min_volume": 5,
                "for": "0s",
                "keep_firing_for": "0s",
            },
            {
                "name": "fallback-held",
                "type": "fallback",
                "max_rate": 0.6,
                "window": "5m",
                "min_volume": 5,
                "for": "0s",
                "keep_firing_for": "30m",
            },
        ],
        **extra,
    }


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def scheduled(stream_store, tmp_path_factory):
    """A check every 5 minutes over the whole stream, on a copy of the store (its own alert state)."""
    store = tmp_path_factory.mktemp("scheduled") / "store"
    shutil.copytree(stream_store, store)
    sink = store.parent / "alerts.jsonl"
    rules = _rules(sink)
    results = []
    for step in range(1, 8 * 12 + 1):
        at = START + timedelta(minutes=5 * step)
        results.append((at, run_alert_check(store, rules, now=at)))
    return store, results, _lines(sink)


def _opened(notes: list[dict], rule: str) -> list[dict]:
    return [n for n in notes if n["rule"] == rule and n["status"] == "firing"]


def _resolved(notes: list[dict], rule: str) -> list[dict]:
    return [n for n in notes if n["rule"] == rule and n["status"] == "resolved"]


def test_the_planted_drift_opens_once_and_stays_open_without_repeating(scheduled):
    _, results, notes = scheduled
    (opened,) = _opened(notes, "quality-drift")
    assert (opened["adapter"], opened["cohort"], opened["metric"]) == ("a1", "smb", "eval_pass:quality")
    assert opened["ci_high"] < 0 < opened["baseline"] - opened["value"]
    assert opened["query"]["name"] == "eval_failures_by_cohort"
    # the evidence window: from the adapter's first traffic to the boundary of the check that opened the alert
    assert opened["query"]["params"] == {
        "eval": "quality",
        "since": "2026-03-02T00:00:00",
        "until": opened["starts_at"].removesuffix("Z"),
    }
    assert not _resolved(notes, "quality-drift")
    opened_at = next(at for at, r in results if any(f["rule"] == "quality-drift" for f in r.firing))
    assert opened_at < START + timedelta(hours=3)
    for at, result in results:
        firing = [f for f in result.firing if f["rule"] == "quality-drift"]
        assert len(firing) == (1 if at >= opened_at else 0)
        assert result.exit_code == (1 if result.firing else 0)
    # the cells without a planted change stay quiet, and the correction counted all four of them
    assert opened["cells"] == 4


def test_the_spike_opens_once_and_resolves_after_recovery_and_hold_down(scheduled):
    _, _, notes = scheduled
    (opened,) = _opened(notes, "error-spike")
    (resolved,) = _resolved(notes, "error-spike")
    assert (opened["adapter"], opened["cohort"]) == ("a2", "enterprise")
    assert resolved["dedup_key"] == opened["dedup_key"]
    assert resolved["starts_at"] == opened["starts_at"]
    spike_start, spike_end = START + timedelta(hours=3), START + timedelta(hours=4)
    assert spike_start < _t(opened["starts_at"]) <= spike_start + timedelta(minutes=30)
    # resolved once the 30-minute window is clean again plus the 30-minute hold-down, not before
    assert spike_end + timedelta(minutes=30) <= _t(resolved["ends_at"]) <= spike_end + timedelta(minutes=75)
    assert opened["query"]["name"] == "failing_traces"
    assert opened["query"]["params"]["adapter"] == "a2"
    until = _t(opened["query"]["params"]["until"] + "Z")
    assert _t(opened["query"]["params"]["since"] + "Z") == until - timedelta(minutes=30)


def test_hold_down_keeps_the_flapping_fallback_rate_to_one_page(scheduled):
    _, _, notes = scheduled
    raw_opened, held_opened = _opened(notes, "fallback-raw"), _opened(notes, "fallback-held")
    assert len(raw_opened) == 3  # every stretch of fallbacks pages again without hold-down
    assert len(_resolved(notes, "fallback-raw")) == 3
    assert len(held_opened) == 1
    (held_resolved,) = _resolved(notes, "fallback-held")
    assert {(n["adapter"], n["cohort"]) for n in raw_opened + held_opened} == {("a2", "smb")}
    last_stretch_end = START + timedelta(hours=5, minutes=50)
    assert _t(held_resolved["ends_at"]) >= last_stretch_end + timedelta(minutes=30)


def test_slo_burn_rates_page_for_the_error_and_latency_bursts_and_resolve(scheduled):
    _, _, notes = scheduled
    (errors,) = _opened(notes, "error-slo")
    (errors_resolved,) = _resolved(notes, "error-slo")
    assert errors["adapter"] == "a2"
    assert errors["burn_rates"]["1h"] >= 14.4
    assert errors["burn_rates"]["5m"] >= 14.4
    burst, burst_end = START + timedelta(hours=3), START + timedelta(hours=4)
    # the hour's bad share reaches 14.4 % about 39 minutes into the burst (40 % errors on one of a2's two cohorts),
    # then 10 minutes pending (`for`)
    assert burst + timedelta(minutes=45) <= _t(errors["starts_at"]) <= burst + timedelta(minutes=60)
    # after the burst the 6 h / 30 m pair keeps burning at 6x for ~25 minutes, then 30 minutes of hold-down
    assert burst_end + timedelta(minutes=45) <= _t(errors_resolved["ends_at"]) <= burst_end + timedelta(minutes=75)
    (latency,) = _opened(notes, "latency-slo")
    (latency_resolved,) = _resolved(notes, "latency-slo")
    assert latency["adapter"] == "a1"
    assert latency["query"]["name"] == "slowest_traces"
    slow, slow_end = START + timedelta(hours=6), START + timedelta(hours=6, minutes=30)
    # half of a1's generations slow: the hour's slow share reaches 14.4 % after ~17 minutes, then 10 minutes pending
    assert slow + timedelta(minutes=25) <= _t(latency["starts_at"]) <= slow + timedelta(minutes=40)
    # the 5-minute window is clean at once and the 6 h window burns only ~4x: 30 minutes of hold-down
    assert slow_end + timedelta(minutes=30) <= _t(latency_resolved["ends_at"]) <= slow_end + timedelta(minutes=40)


def test_nothing_else_ever_alerts(scheduled):
    _, _, notes = scheduled
    assert Counter((n["rule"], n["status"]) for n in notes) == {
        ("quality-drift", "firing"): 1,
        ("error-spike", "firing"): 1,
        ("error-spike", "resolved"): 1,
        ("fallback-raw", "firing"): 3,
        ("fallback-raw", "resolved"): 3,
        ("fallback-held", "firing"): 1,
        ("fallback-held", "resolved"): 1,
        ("error-slo", "firing"): 1,
        ("error-slo", "resolved"): 1,
        ("latency-slo", "firing"): 1,
        ("latency-slo", "resolved"): 1,
    }


def test_rerunning_a_check_at_the_same_time_sends_nothing_new(scheduled, tmp_path):
    store, results, _ = scheduled
    at, last = results[-1]
    again = run_alert_check(store, _rules(tmp_path / "again.jsonl"), now=at)
    assert again.notifications == []
    assert [f["dedup_key"] for f in again.firing] == [f["dedup_key"] for f in last.firing]
    assert not (tmp_path / "again.jsonl").exists()


def _t(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_two_checks_at_once_notify_once(stream_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(stream_store, store)
    sink = tmp_path / "alerts.jsonl"
    rules = tmp_path / "alerts.yaml"
    rules.write_text(
        f"sinks:\n  - type: file\n    path: {sink}\nrules:\n"
        "  - {name: quality-drift, type: drift, metrics: ['eval_pass:quality'], for: 0s}\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "loratrace", "alert", "check", "--store", str(store), "--rules", str(rules)]
    command += ["--now", (START + timedelta(hours=6)).isoformat()]
    checks = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    codes = [c.wait(timeout=240) for c in checks]
    errors = [c.stderr.read().decode() for c in checks if c.stderr]
    assert codes == [1, 1, 1, 1], errors
    notes = _lines(sink)
    assert len(notes) == 1, notes
    assert notes[0]["adapter"] == "a1"
    state = json.loads(state_path(store).read_text())
    assert state["outbox"] == {"file-0": []}


def test_a_failing_sink_keeps_the_state_and_delivers_at_the_next_check(stream_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(stream_store, store)
    sink = tmp_path / "alerts.jsonl"
    with http_receiver("error") as receiver:
        rules = {
            "sinks": [
                {"type": "webhook", "name": "hook", "url": receiver.url, "retries": 0, "timeout": "2s"},
                {"type": "file", "name": "file", "path": str(sink)},
            ],
            "rules": [{"name": "quality-drift", "type": "drift", "metrics": ["eval_pass:quality"], "for": "0s"}],
        }
        first = run_alert_check(store, rules, now=START + timedelta(hours=6))
        assert [f["adapter"] for f in first.firing] == ["a1"]
        assert len(first.sink_failures) == 1
        assert "sink hook (webhook)" in first.sink_failures[0]
        assert "HTTP 500" in first.sink_failures[0]
        assert "secret-token-123" not in first.sink_failures[0]
        assert len(_lines(sink)) == 1  # the other sink got it
        state = json.loads(state_path(store).read_text())
        assert [n["rule"] for n in state["outbox"]["hook"]] == ["quality-drift"]
        assert receiver.bodies == []

        receiver.mode = "ok"
        second = run_alert_check(store, rules, now=START + timedelta(hours=6, minutes=5))
        assert second.notifications == []  # no new change ...
        assert second.sink_failures == []
        assert [b["rule"] for b in receiver.bodies] == ["quality-drift"]  # ... but the queued one went out, once
        assert receiver.bodies[0]["dedup_key"] == first.firing[0]["dedup_key"]
        assert len(_lines(sink)) == 1
        assert json.loads(state_path(store).read_text())["outbox"] == {"hook": [], "file": []}


def test_the_documented_example_rules_fire_for_the_planted_regression(stream_store, tmp_path, monkeypatch, capsys):
    """What `loratrace demo` runs last: the example rules file over a store with a planted regression."""
    store = tmp_path / "store"
    shutil.copytree(stream_store, store)
    monkeypatch.chdir(tmp_path)  # the example's file sink writes alerts.jsonl in the working directory
    example = REPO / "docs" / "alerts.example.yaml"
    first = run_alert_check(store, example, now=START + timedelta(hours=6))
    assert first.exit_code == 1  # one check is enough: drift rules need no persistence
    drift = [f for f in first.firing if f["rule"] == "quality-drift" and f["metric"] == "eval_pass:quality"]
    assert [(f["adapter"], f["cohort"], f["metric"]) for f in drift] == [("a1", "smb", "eval_pass:quality")]
    stdout = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert stdout == _lines(tmp_path / "alerts.jsonl")
    assert ("quality-drift", "a1", "smb") in {(n["rule"], n["adapter"], n["cohort"]) for n in stdout}
