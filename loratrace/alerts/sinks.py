"""Sinks: where alert notifications go, in the payload shapes their receivers already parse.

* ``stdout``: one JSON line per notification;
* ``file``: the same lines appended to a file;
* ``webhook``: the notification POSTed as JSON;
* ``slack``: a Slack incoming-webhook message (``text`` plus ``blocks``);
* ``alertmanager``: Alertmanager's webhook payload, ``version: "4"`` (what Alertmanager sends its receivers);
* ``pagerduty``: a PagerDuty Events API v2 event (``trigger`` / ``resolve``) whose ``dedup_key`` is the alert's.

HTTP sinks time out, retry with exponential backoff, and raise :class:`SinkError` when every attempt failed; the
caller keeps the alert state and the undelivered notification (see :mod:`loratrace.alerts.check`). A URL or
routing key never enters a payload, a log line or an error message: errors name the sink, not where it points.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from loratrace.alerts.rules import Sink
from loratrace.errors import LoratraceError

logger = logging.getLogger(__name__)

PAGERDUTY_EVENTS_URL: Final = "https://events.pagerduty.com/v2/enqueue"
_BACKOFF_SECONDS: Final = 0.5
_SEVERITY_TO_PAGERDUTY: Final = {"info": "info", "warning": "warning", "critical": "critical"}


class SinkError(LoratraceError):
    """A sink could not take a notification after every retry; the message names the sink only."""


def slack_payload(note: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message for one notification."""
    icon = ":rotating_light:" if note["status"] == "firing" else ":white_check_mark:"
    text = f"{icon} [{note['status'].upper()}] {note['rule']}: {note['summary']}"
    query = note["query"]["command"]
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Evidence: `{query}`"}]},
        ],
    }


def alertmanager_payload(note: Mapping[str, Any], *, receiver: str) -> dict[str, Any]:
    """Alertmanager's webhook payload (``version: "4"``) carrying one alert."""
    labels = {k: str(note[k]) for k in ("rule", "adapter", "cohort", "metric", "severity") if note.get(k) is not None}
    labels["alertname"] = note["rule"]
    annotations = {"summary": note["summary"], "query": note["query"]["command"]}
    alert = {
        "status": note["status"],
        "labels": labels,
        "annotations": annotations,
        "startsAt": note["starts_at"],
        "endsAt": note.get("ends_at") or "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": note["dedup_key"],
    }
    return {
        "version": "4",
        "groupKey": f"{{}}:{{alertname={note['rule']!r}}}",
        "truncatedAlerts": 0,
        "status": note["status"],
        "receiver": receiver,
        "groupLabels": {"alertname": note["rule"]},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [alert],
    }


def pagerduty_payload(note: Mapping[str, Any], *, routing_key: str) -> dict[str, Any]:
    """A PagerDuty Events API v2 event: ``trigger`` when firing, ``resolve`` when resolved, same ``dedup_key``."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger" if note["status"] == "firing" else "resolve",
        "dedup_key": note["dedup_key"],
    }
    if note["status"] == "firing":
        event["payload"] = {
            "summary": f"{note['rule']}: {note['summary']}"[:1024],
            "source": "loratrace",
            "severity": _SEVERITY_TO_PAGERDUTY.get(str(note.get("severity")), "warning"),
            "component": note.get("adapter") or "base",
            "group": note.get("cohort") or "",
            "class": note["type"],
            "custom_details": {k: note[k] for k in ("metric", "value", "baseline", "delta", "query") if k in note},
        }
    return event


def _post(sink: Sink, url: str, body: Mapping[str, Any]) -> None:
    data = json.dumps(body).encode()
    attempts = sink.retries + 1
    for attempt in range(attempts):
        request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=sink.timeout) as response:
                if 200 <= response.status < 300:
                    return
                reason = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code}"
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            cause = getattr(exc, "reason", exc)
            reason = (
                "timed out" if isinstance(cause, TimeoutError) or "timed out" in str(cause) else type(cause).__name__
            )
        logger.warning("sink %s: attempt %d of %d failed (%s)", sink.name, attempt + 1, attempts, reason)
        if attempt + 1 < attempts:
            time.sleep(_BACKOFF_SECONDS * 2**attempt)
    msg = f"sink {sink.name} ({sink.type}) did not take the notification after {attempts} attempts: {reason}"
    raise SinkError(msg)


def _secret(sink: Sink, env: str | None, direct: str | None, what: str) -> str:
    if direct:
        return direct
    value = os.environ.get(env or "")
    if not value:
        msg = f"sink {sink.name} ({sink.type}): environment variable {env} with its {what} is not set"
        raise SinkError(msg)
    return value


def deliver(sink: Sink, note: Mapping[str, Any]) -> None:
    """Send one notification to one sink.

    Raises
    ------
    SinkError
        When the sink could not take it (after its retries, for HTTP sinks).
    """
    if sink.type == "stdout":
        sys.stdout.write(json.dumps(note, sort_keys=True) + "\n")
        sys.stdout.flush()
        return
    if sink.type == "file":
        path = Path(sink.path or "alerts.jsonl")
        try:
            with path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(note, sort_keys=True) + "\n")
        except OSError as exc:
            msg = f"sink {sink.name} (file): cannot append to {path}: {exc.strerror or exc}"
            raise SinkError(msg) from exc
        return
    if sink.type == "pagerduty":
        key = _secret(sink, sink.routing_key_env, None, "routing key")
        url = sink.url or (os.environ.get(sink.url_env) if sink.url_env else None) or PAGERDUTY_EVENTS_URL
        _post(sink, url, pagerduty_payload(note, routing_key=key))
        return
    url = _secret(sink, sink.url_env, sink.url, "URL")
    if sink.type == "webhook":
        _post(sink, url, note)
    elif sink.type == "slack":
        _post(sink, url, slack_payload(note))
    elif sink.type == "alertmanager":
        _post(sink, url, alertmanager_payload(note, receiver=sink.name))
    else:
        msg = f"sink {sink.name}: unknown type {sink.type!r}"
        raise SinkError(msg)
