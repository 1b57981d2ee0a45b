"""Each sink against a real HTTP server on 127.0.0.1: one that answers 200, one that answers 500, one that does not
answer in time; payload shapes as their receivers parse them; the URL and keys never in errors or logs."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from loratrace.alerts import sinks
from loratrace.alerts.rules import Sink

from .http_receiver import http_receiver

NOTE = {
    "status": "firing",
    "rule": "quality-drift",
    "type": "drift",
    "severity": "critical",
    "adapter": "a1",
    "adapter_id": "sha256:abc",
    "cohort": "smb",
    "metric": "eval_pass:quality",
    "summary": "eval_pass:quality of a1 on smb: 0.6 vs base 0.85",
    "value": 0.6,
    "baseline": 0.85,
    "delta": -0.25,
    "starts_at": "2026-03-02T06:00:00Z",
    "ends_at": None,
    "dedup_key": "loratrace-0123456789abcdef0123456789abcdef",
    "query": {
        "name": "eval_failures_by_cohort",
        "params": {"adapter": "a1", "cohort": "smb"},
        "command": "loratrace query eval_failures_by_cohort --store STORE --param adapter=a1 --param cohort=smb",
    },
}


def test_webhook_posts_the_notification_as_is():
    with http_receiver("ok") as receiver:
        sinks.deliver(Sink(type="webhook", name="hook", url=receiver.url), NOTE)
        assert receiver.bodies == [NOTE]


def test_slack_gets_an_incoming_webhook_message():
    with http_receiver("ok") as receiver:
        sinks.deliver(Sink(type="slack", name="slack", url=receiver.url), NOTE)
    (body,) = receiver.bodies
    assert body["text"].startswith(":rotating_light: [FIRING] quality-drift: eval_pass:quality of a1 on smb")
    assert body["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn", "text": body["text"]}}
    assert NOTE["query"]["command"] in body["blocks"][1]["elements"][0]["text"]


def test_alertmanager_gets_a_version_4_webhook_payload():
    with http_receiver("ok") as receiver:
        sinks.deliver(Sink(type="alertmanager", name="am", url=receiver.url), NOTE)
    (body,) = receiver.bodies
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "am"
    assert set(body) >= {"groupKey", "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "alerts"}
    (alert,) = body["alerts"]
    assert alert["labels"] == {
        "alertname": "quality-drift",
        "rule": "quality-drift",
        "adapter": "a1",
        "cohort": "smb",
        "metric": "eval_pass:quality",
        "severity": "critical",
    }
    assert alert["fingerprint"] == NOTE["dedup_key"]
    assert alert["startsAt"] == NOTE["starts_at"]
    assert alert["annotations"]["query"] == NOTE["query"]["command"]


def test_pagerduty_triggers_and_resolves_with_the_same_dedup_key(monkeypatch):
    monkeypatch.setenv("PD_KEY", "routing-key-xyz")
    with http_receiver("ok") as receiver:
        sink = Sink(type="pagerduty", name="pd", url=receiver.url, routing_key_env="PD_KEY")
        sinks.deliver(sink, NOTE)
        sinks.deliver(sink, {**NOTE, "status": "resolved", "ends_at": "2026-03-02T09:00:00Z"})
    trigger, resolve = receiver.bodies
    assert trigger["event_action"] == "trigger"
    assert resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == NOTE["dedup_key"]
    assert trigger["routing_key"] == "routing-key-xyz"  # the Events API needs it in the body; nowhere else
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "loratrace"
    assert trigger["payload"]["summary"].startswith("quality-drift: ")


def test_a_url_from_the_environment(monkeypatch):
    with http_receiver("ok") as receiver:
        monkeypatch.setenv("HOOK_URL", receiver.url)
        sinks.deliver(Sink(type="webhook", name="hook", url_env="HOOK_URL"), NOTE)
        assert len(receiver.bodies) == 1
    monkeypatch.delenv("HOOK_URL")
    with pytest.raises(sinks.SinkError, match="environment variable HOOK_URL"):
        sinks.deliver(Sink(type="webhook", name="hook", url_env="HOOK_URL"), NOTE)


def test_a_500_is_retried_with_backoff_then_reported_without_the_url(caplog):
    caplog.set_level(logging.DEBUG)
    with http_receiver("error") as receiver:
        sink = Sink(type="webhook", name="hook", url=receiver.url, retries=3)
        with pytest.raises(sinks.SinkError) as caught:
            sinks.deliver(sink, NOTE)
        assert receiver.attempts == 4
    gaps = np.diff(receiver.times)
    assert (gaps.round(1) >= [0.5, 1.0, 2.0]).all(), gaps  # exponential backoff between the attempts
    assert "HTTP 500" in str(caught.value)
    assert "sink hook (webhook)" in str(caught.value)
    assert "secret-token-123" not in str(caught.value)
    assert "127.0.0.1" not in str(caught.value)
    assert "secret-token-123" not in caplog.text
    assert caplog.text.count("attempt") == 4


def test_a_receiver_that_does_not_answer_times_out(caplog):
    caplog.set_level(logging.WARNING)
    with http_receiver("hang") as receiver:
        sink = Sink(type="slack", name="slack", url=receiver.url, timeout=0.3, retries=1)
        with pytest.raises(sinks.SinkError, match="after 2 attempts: timed out") as caught:
            sinks.deliver(sink, NOTE)
        # the server saw at least the first request (on a loaded machine the retry may time out before it is read)
        assert receiver.attempts >= 1
    assert [r.getMessage() for r in caplog.records] == [
        "sink slack: attempt 1 of 2 failed (timed out)",
        "sink slack: attempt 2 of 2 failed (timed out)",
    ]
    assert "secret-token-123" not in str(caught.value)
    assert "secret-token-123" not in caplog.text


def test_stdout_and_file_sinks_write_json_lines(tmp_path, capsys):
    sinks.deliver(Sink(type="stdout", name="out"), NOTE)
    assert json.loads(capsys.readouterr().out) == NOTE
    path = tmp_path / "alerts.jsonl"
    sinks.deliver(Sink(type="file", name="file", path=str(path)), NOTE)
    sinks.deliver(Sink(type="file", name="file", path=str(path)), NOTE)
    assert [json.loads(line) for line in path.read_text().splitlines()] == [NOTE, NOTE]
    with pytest.raises(sinks.SinkError, match="cannot append"):
        sinks.deliver(Sink(type="file", name="file", path=str(tmp_path / "missing" / "a.jsonl")), NOTE)
