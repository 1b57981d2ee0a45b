"""Feedback metrics in alert rules and in the gate, on a store written by a real collector: exact rates on the
generations that could have received feedback, the completeness of their windows in the alert payload (sent to a
real webhook on 127.0.0.1) and in the gate, and the alert cells cache staying exact while late feedback changes
windows it had settled."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from loratrace.alerts import evaluate as evaluation
from loratrace.alerts import feedback_cells
from loratrace.alerts.check import run_alert_check
from loratrace.alerts.rules import load_rules
from loratrace.cli import cli
from tests.alerts.http_receiver import http_receiver

from .conftest import start_collector
from .spans import HOUR_NS, Traffic, wait_for_rows

PER_HOUR = 40
SHORT_S, LONG_S = 600, 20 * 3600  # half the feedback comes within 10 minutes, half 20 hours later
FEEDBACK_SPANS = "SELECT count(*) FROM spans WHERE name = 'loratrace.feedback'"


def _rules(url: str) -> dict:
    return {
        "sinks": [{"type": "webhook", "name": "hook", "url": url, "retries": 0, "timeout": "5s"}],
        "rules": [
            {"name": "thumbs-drift", "type": "drift", "metrics": ["feedback:thumbs_down", "error_rate"]},
            {
                "name": "thumbs-spike",
                "type": "spike",
                "metric": "feedback:thumbs_down",
                "window": "2h",
                "baseline": "4h",
                "min_volume": 10,
            },
        ],
    }


class Timeline:
    """Generations on route support and the thumbs-down about them, each feedback sent only when told."""

    def __init__(self, traffic: Traffic) -> None:
        self.traffic = traffic
        self.feedback: list[tuple[str, str, int]] = []  # trace id, span id, when given (ns)

    def hours(self, start_ns: int, hours: int, *, every: dict[str | None, int]) -> None:
        """``hours`` of answers per arm (None: the base model); answer ``i`` of an arm gets a thumbs-down when
        ``i % every[arm] == 0``, alternately 10 minutes and 20 hours after it ended."""
        for adapter, step in every.items():
            for index in range(hours * PER_HOUR):
                start = start_ns + index * (HOUR_NS // PER_HOUR)
                trace_id, span_id, _ = self.traffic.generation(
                    start_ns=start, adapter=adapter, adapter_id=f"sha256:{adapter}" if adapter else None
                )
                if index % step == 0:
                    delay = SHORT_S if (index // step) % 2 == 0 else LONG_S
                    self.feedback.append((trace_id, span_id, start + 50_000_000 + delay * 10**9))

    def give(self, chosen: list[tuple[str, str, int]]) -> int:
        """Record these thumbs-down and send everything waiting; how many."""
        self.traffic.feedback("thumbs_down", chosen)
        self.traffic.send()
        return len(chosen)


def _at(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def _naive(ns: int) -> datetime:
    return _at(ns).replace(tzinfo=None)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three stretches on one route, on the hour: 3 h of base traffic 70 h ago whose feedback is all in (half its
    delays long: what the completeness estimate learns from); a1 against the base for 6 h from 46 h ago (the alert
    checks replay it, before and after its late feedback); a2 against the base from 4 h to 1 h ago at equal rates,
    its late feedback still to come (the gate). Everything but a1's late feedback is sent."""
    collector = start_collector(tmp_path_factory.mktemp("feedback-alerts") / "store")
    now_ns = time.time_ns()
    hour = now_ns // HOUR_NS * HOUR_NS
    timeline = Timeline(Traffic(collector.http))
    timeline.hours(hour - 70 * HOUR_NS, 3, every={None: 2})
    history = len(timeline.feedback)
    t0 = hour - 46 * HOUR_NS
    timeline.hours(t0, 6, every={None: 20, "a1": 3})
    late = [f for f in timeline.feedback[history:] if f[2] >= t0 + 7 * HOUR_NS]
    timeline.hours(hour - 4 * HOUR_NS, 3, every={None: 10, "a2": 10})
    given = [f for f in timeline.feedback if f[2] < now_ns and f not in late]
    timeline.give(given)
    wait_for_rows(collector, "SELECT count(*) FROM generations", 3 * PER_HOUR + 2 * 6 * PER_HOUR + 2 * 3 * PER_HOUR)
    wait_for_rows(collector, FEEDBACK_SPANS, len(given))
    try:
        yield collector, timeline, t0, late, len(given)
    finally:
        collector.terminate()


def _condition(notes, rule: str, adapter: str, metric: str = "feedback:thumbs_down") -> dict:
    (found,) = [n for n in notes if n["rule"] == rule and n["adapter"] == adapter and n["metric"] == metric]
    return found


def _values(result) -> list:
    return sorted((c.key, c.active, json.dumps(c.values, sort_keys=True, default=str)) for c in result.conditions)


def test_a_feedback_alert_before_and_after_late_feedback_through_the_cache(world, monkeypatch):
    collector, timeline, t0, late, given = world
    store = collector.store
    calls: dict[str, list] = {"spans": [], "feedback": []}
    real_store_cells, real_compute = evaluation.store_cells, feedback_cells.compute_cells

    # observers around the real functions: which windows each check reads from the spans
    def store_cells_seen(*args, **kwargs):
        calls["spans"].append(kwargs["since"])
        return real_store_cells(*args, **kwargs)

    def compute_seen(*args, **kwargs):
        compute = real_compute(*args, **kwargs)

        def seen(since):
            calls["feedback"].append(since)
            return compute(since)

        return seen

    monkeypatch.setattr(evaluation, "store_cells", store_cells_seen)
    monkeypatch.setattr(feedback_cells, "compute_cells", compute_seen)
    first_at, second_at = _at(t0 + 7 * HOUR_NS), _at(t0 + 30 * HOUR_NS)
    with http_receiver() as receiver:
        rules = _rules(receiver.url)
        first = run_alert_check(store, rules, now=first_at)
        assert first.exit_code == 1
        # a1: 1 in 3 answers got a thumbs-down, the base 1 in 20; half of each arrived 10 minutes after the answer
        (note,) = receiver.bodies
        assert (note["rule"], note["status"], note["adapter"], note["cohort"]) == (
            "thumbs-drift",
            "firing",
            "a1",
            "enterprise",
        )
        assert (note["n_adapter"], note["n_base"]) == (6 * PER_HOUR, 6 * PER_HOUR)
        assert note["value"] == pytest.approx(40 / 240)
        assert note["baseline"] == pytest.approx(6 / 240)
        # the delays seen by then: 76 of 10 minutes, 30 of 20 hours (the old traffic's); every a1 window is 1 to 7
        # hours old, so 76/106 of its feedback is estimated in
        assert note["feedback_completeness"] == pytest.approx(76 / 106)
        assert note["feedback_incomplete"] is True
        assert "still arriving" in note["summary"]
        assert note["feedback_delay_p90_s"] == pytest.approx(LONG_S, rel=1e-3)
        assert calls == {"spans": [None], "feedback": [None]}  # no cache yet: every span
        assert (store / "state" / "alerts" / "feedback" / "cells.json").is_file()

        # a1's late feedback arrives, for windows the first check cached as settled
        assert timeline.give(late) == 46
        wait_for_rows(collector, FEEDBACK_SPANS, given + len(late))
        calls["spans"].clear(), calls["feedback"].clear()
        second = run_alert_check(store, rules, now=second_at)
        assert second.notifications == []  # the same alert, still open: nothing new to send
        assert len(receiver.bodies) == 1
    drift = _condition(second.firing, "thumbs-drift", "a1")
    assert drift["dedup_key"] == note["dedup_key"]
    assert drift["value"] == pytest.approx(80 / 240)
    assert drift["baseline"] == pytest.approx(12 / 240)
    assert (drift["feedback_completeness"], drift["feedback_incomplete"]) == (pytest.approx(1.0), False)
    assert "still arriving" not in drift["summary"]
    # the span cells came from the cache (a feedback span is no span of theirs, however old its time); the feedback
    # cells were computed again from the first window whose feedback changed, a1's first
    assert calls["spans"] == [_naive(t0 + 6 * HOUR_NS)]
    assert calls["feedback"] == [_naive(t0)]
    monkeypatch.undo()
    ruleset = load_rules(_rules("http://127.0.0.1:9/unused"))
    cache = store / "state" / "alerts"
    assert _values(evaluation.evaluate(store, ruleset, now=second_at, cache_dir=cache)) == _values(
        evaluation.evaluate(store, ruleset, now=second_at)
    )
    # replayed at the first check's time, the late feedback (given after it) does not count: the same answer
    replay = evaluation.evaluate(store, ruleset, now=first_at)
    (again,) = [
        c for c in replay.conditions if c.rule == "thumbs-drift" and c.labels["metric"] == "feedback:thumbs_down"
    ]
    assert again.values["value"] == pytest.approx(40 / 240)
    assert again.values["feedback_completeness"] == pytest.approx(76 / 106)
    # a spike rule on feedback: its window (a1's last 2 hours) and baseline say how complete they are
    spikes = {c.labels["adapter"]: c for c in replay.conditions if c.rule == "thumbs-spike"}
    assert set(spikes) == {"a1", "(base)"}
    for condition in spikes.values():
        assert not condition.active
        assert condition.values["feedback_completeness"] == pytest.approx(76 / 106)
        assert condition.values["feedback_completeness_baseline"] == pytest.approx(76 / 106)
        assert condition.values["feedback_incomplete"] is True
    assert spikes["a1"].values["n_window"] == PER_HOUR  # its last hour of traffic


def test_an_unknown_feedback_kind_in_a_rule_exits_2(world, tmp_path):
    collector = world[0]
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: r, type: drift, metrics: ['feedback:thumbs_dwn']}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["alert", "check", "--store", str(collector.store), "--rules", str(rules)])
    assert result.exit_code == 2
    assert "unknown metric 'feedback:thumbs_dwn'; did you mean feedback:thumbs_down?" in result.output


def _gate(store, *args: str):
    arguments = ["gate", "--store", str(store), "--metric", "feedback:thumbs_down", "--format", "json", *args]
    result = CliRunner().invoke(cli, arguments)
    return result.exit_code, (json.loads(result.output) if result.output.startswith("{") else result.output)


def test_the_gate_waits_for_late_feedback_before_passing_on_it(world):
    store = world[0].store
    # a2 and the base at equal rates over the last hours; of the delays seen so far 88 of 164 are 10 minutes and
    # the rest 20 hours, so about 54 % of a2's feedback is in
    code, out = _gate(store, "--adapter", "a2")
    assert (code, out["decision"]) == (1, "FAIL"), out
    assert out["feedback_completeness"] == {"feedback:thumbs_down": pytest.approx(88 / 164)}
    assert {row["verdict"] for row in out["rows"]} == {"no_change"}
    assert out["reasons"]
    assert all(reason.startswith("feedback incomplete: cohort ") for reason in out["reasons"]), out["reasons"]
    assert (
        "feedback:thumbs_down (no_change so far, on about 54 % of the feedback likely to come; needs 90 %)"
        in (out["reasons"][0])
    )
    code, out = _gate(store, "--adapter", "a2", "--min-feedback-completeness", "0.5")
    assert (code, out["decision"], out["reasons"]) == (0, "PASS", [])
    code, out = _gate(store, "--adapter", "a2", "--allow-insufficient")
    assert (code, out["decision"]) == (0, "PASS")
    assert all(reason.startswith("allowed: feedback incomplete") for reason in out["reasons"])
    # a1's feedback is all in (its answers are two days old) and it regressed: FAIL, whatever is allowed
    code, out = _gate(store, "--adapter", "a1", "--allow-insufficient")
    assert (code, out["decision"]) == (1, "FAIL")
    assert out["feedback_completeness"] == {"feedback:thumbs_down": pytest.approx(1.0)}
    assert any(reason.startswith("regressed: cohort enterprise, feedback:thumbs_down") for reason in out["reasons"])
    text = CliRunner().invoke(
        cli, ["gate", "--store", str(store), "--adapter", "a2", "--metric", "feedback:thumbs_down"]
    )
    assert text.exit_code == 1
    assert "feedback:thumbs_down: about 54 % of the analysed answers' feedback is likely in" in text.output
    bad = CliRunner().invoke(
        cli, ["gate", "--store", str(store), "--adapter", "a2", "--min-feedback-completeness", "2"]
    )
    assert bad.exit_code == 2
    assert "--min-feedback-completeness" in bad.output
