"""Feedback end to end: served answers, feedback from a second process hours of simulated time later, and a
ticket export imported twice, all through a real collector into the store's ``feedback`` view."""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from collector.conftest import RunningCollector

from loratrace.cli import cli
from loratrace.store import query

from .spans import HOUR_NS, Traffic, wait_for_rows

FEEDBACK_SPANS = "SELECT count(*) FROM spans WHERE name = 'loratrace.feedback'"


def _iso(time_ns: int, offset: str) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time_ns // 10**9)) + offset


def _serve(collector: RunningCollector, start_ns: int) -> list[tuple[str, str, str, str | None]]:
    traffic = Traffic(collector.http)
    served = []
    for index in range(6):
        adapter = "a1" if index % 2 else None
        trace_id, span_id, request_id = traffic.generation(
            start_ns=start_ns + index * 60 * 10**9, adapter=adapter, adapter_id="sha256:aa" if adapter else None
        )
        served.append((trace_id, span_id, request_id, adapter))
    traffic.send()
    wait_for_rows(collector, "SELECT count(*) FROM generations", len(served))
    return served


def test_feedback_from_another_process_and_an_export_imported_twice(
    collector: RunningCollector, tmp_path: Path
) -> None:
    served_at = time.time_ns() - 30 * HOUR_NS
    served = _serve(collector, served_at)
    # a webhook handler in another process, three simulated hours after the answers
    script = textwrap.dedent(
        f"""
        import loratrace
        loratrace.instrument(endpoint={collector.http!r}, libraries=[], service_name="webhook")
        loratrace.record_feedback("thumbs_down", trace_id={served[0][0]!r}, at={(served_at + 3 * HOUR_NS) / 1e9})
        loratrace.record_feedback(
            "thumbs_down", trace_id={served[1][0]!r}, span_id={served[1][1]!r}, value=1,
            at={(served_at + 5 * HOUR_NS) / 1e9}, feedback_id="hook-7",
        )
        loratrace.record_feedback(  # the handler's retry of the same event
            "thumbs_down", trace_id={served[1][0]!r}, span_id={served[1][1]!r}, value=1,
            at={(served_at + 5 * HOUR_NS) / 1e9}, feedback_id="hook-7",
        )
        loratrace.uninstrument()
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    wait_for_rows(collector, FEEDBACK_SPANS, 3)
    # a ticketing system's export a day later: one row by trace id, one by request id
    export = tmp_path / "tickets.csv"
    with export.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["otel_trace", "request", "event", "created_at"])
        writer.writerow([served[2][0], "", "escalation", _iso(served_at + 20 * HOUR_NS, "Z")])
        writer.writerow(["", served[3][2], "escalation", _iso(served_at + 26 * HOUR_NS, "+00:00")])
    arguments = ["feedback", "import", str(export), "--endpoint", collector.http, "--store", str(collector.store)]
    arguments += ["--column", "trace_id=otel_trace", "--column", "request_id=request", "--column", "kind=event"]
    arguments += ["--column", "time=created_at"]
    for attempt in (1, 2):
        result = CliRunner().invoke(cli, arguments)
        assert result.exit_code == 0, result.output
        assert result.output == f"sent 2 feedback row(s) from {export} to {collector.http}\n"
        wait_for_rows(collector, FEEDBACK_SPANS, 3 + 2 * attempt)

    rows = query(
        collector.store,
        "SELECT kind, target_trace_id, generation_span_id, adapter_name, variant, cohort, value, source, "
        "strftime(time, '%Y-%m-%dT%H:%M') AS at FROM feedback ORDER BY kind, time",
    ).rows()
    at = {hours: _iso(served_at + hours * HOUR_NS, "")[:16] for hours in (3, 5, 20, 26)}
    assert rows == [
        ("escalation", served[2][0], served[2][1], None, "base", "enterprise", None, "tickets.csv", at[20]),
        ("escalation", served[3][0], served[3][1], "a1", "adapter", "enterprise", None, "tickets.csv", at[26]),
        ("thumbs_down", served[0][0], served[0][1], None, "base", "enterprise", None, "api", at[3]),
        ("thumbs_down", served[1][0], served[1][1], "a1", "adapter", "enterprise", 1.0, "api", at[5]),
    ]
    delays = query(collector.store, "SELECT round(delay_s / 3600, 2) FROM feedback WHERE source = 'api' ORDER BY 1")
    assert delays.to_series().to_list() == [pytest.approx(3.0, abs=0.01), pytest.approx(5.0 - 1 / 60, abs=0.01)]


def test_a_bad_export_sends_nothing_and_exits_2(collector: RunningCollector, tmp_path: Path) -> None:
    served = _serve(collector, time.time_ns() - 2 * HOUR_NS)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        f'{{"trace_id": "{served[0][0]}", "kind": "escalation", "time": 1767225600}}\n'
        '{"trace_id": "not-a-trace", "kind": "escalation", "time": 1767225600}\n'
        f'{{"trace_id": "{served[1][0]}", "kind": "thumbs up!", "time": 1767225600}}\n'
        f'{{"trace_id": "{served[2][0]}", "kind": "escalation"}}\n'
        '{"request_id": "req-unknown", "kind": "escalation", "time": 1767225600}\n'
    )
    result = CliRunner().invoke(cli, ["feedback", "import", str(bad), "--endpoint", collector.http])
    assert result.exit_code == 2
    assert "4 bad row(s), nothing was sent" in result.output
    assert "line 2: feedback trace_id must be 32 hex characters" in result.output
    assert "line 3: feedback kind must be" in result.output
    assert "line 4: no time (column 'time')" in result.output
    assert "line 5: rows name request ids: pass --store DIR" in result.output
    bad_column = CliRunner().invoke(cli, ["feedback", "import", str(bad), "--column", "trace=x"])
    assert bad_column.exit_code == 2
    assert "--column takes FIELD=COLUMN" in bad_column.output
    # the next good import arrives alone: the bad file's good first row was never sent
    good = tmp_path / "good.jsonl"
    good.write_text(f'{{"trace_id": "{served[5][0]}", "kind": "manual_review", "time": "2026-01-02T00:00:00"}}\n')
    result = CliRunner().invoke(cli, ["feedback", "import", str(good), "--endpoint", collector.http])
    assert result.exit_code == 0, result.output
    wait_for_rows(collector, FEEDBACK_SPANS, 1)
    assert query(collector.store, "SELECT kind, target_trace_id FROM feedback").rows() == [
        ("manual_review", served[5][0])
    ]


def test_a_collector_with_a_token_needs_it_and_it_is_never_printed(tmp_path: Path) -> None:
    from .conftest import start_collector

    token = "s3cret-token-18"
    collector = start_collector(tmp_path / "store", token=token)
    try:
        export = tmp_path / "one.jsonl"
        export.write_text(f'{{"trace_id": "{"ab" * 16}", "kind": "reopened", "time": 1767225600}}\n')
        arguments = ["feedback", "import", str(export), "--endpoint", collector.http]
        refused = CliRunner().invoke(cli, arguments, env={"LORATRACE_AUTH_TOKEN": ""})
        assert refused.exit_code == 1
        assert "did not accept spans 1-1 of 1 (0 sent)" in refused.output
        accepted = CliRunner().invoke(cli, [*arguments, "--auth-token", token])
        assert accepted.exit_code == 0, accepted.output
        assert token not in accepted.output + refused.output
        wait_for_rows(collector, FEEDBACK_SPANS, 1)
    finally:
        assert collector.terminate() == 0


def test_request_ids_mapped_by_a_request_log(collector: RunningCollector, tmp_path: Path) -> None:
    served = _serve(collector, time.time_ns() - 4 * HOUR_NS)
    request_log = tmp_path / "gateway.csv"
    request_log.write_text(f"request_id,trace_id,span_id\ngw-1,{served[1][0]},{served[1][1]}\ngw-2,{served[4][0]},\n")
    export = tmp_path / "tickets.csv"
    export.write_text(
        "req,kind,time\ngw-1,escalation,2026-01-02T00:00:00Z\ngw-2,escalation,1767312000\ngw-9,escalation,1767312000\n"
    )
    arguments = ["feedback", "import", str(export), "--endpoint", collector.http, "--request-map", str(request_log)]
    arguments += ["--column", "request_id=req"]
    refused = CliRunner().invoke(cli, arguments)
    assert refused.exit_code == 2
    assert "line 4: request id 'gw-9' matches no span in the store and no row of the request map" in refused.output
    result = CliRunner().invoke(cli, [*arguments, "--skip-unmatched"])
    assert result.exit_code == 0, result.output
    wait_for_rows(collector, FEEDBACK_SPANS, 2)
    rows = query(collector.store, "SELECT target_trace_id, generation_span_id, adapter_name FROM feedback ORDER BY 1")
    assert sorted(rows.rows()) == sorted([(served[1][0], served[1][1], "a1"), (served[4][0], served[4][1], None)])
