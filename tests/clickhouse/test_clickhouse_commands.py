"""Every command with ``--source`` answers on ClickHouse (the embedded engine, and a server reached over HTTP by
clickhouse-connect) exactly what it answers on the local store holding the same spans."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from loratrace.cli import cli
from loratrace.store import query
from tests.clickhouse.http_shim import ClickHouseHTTPShim

SECRET = "s3cret-Pa55word"


def _url(engines, table: str = "otel_traces") -> str:
    return f"chdb://{engines.store.parent}/chdb?table={table}"


def _same(a: Any, b: Any, where: str = "") -> None:
    """Equal documents, floats to 1e-9 relative (the engines sum and interpolate in other orders)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a is not None, where
        assert b is not None, where
        assert math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12), f"{where}: {a} != {b}"
    elif isinstance(a, dict):
        assert isinstance(b, dict), where
        assert a.keys() == b.keys(), f"{where}: {sorted(a)} != {sorted(b)}"
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list), where
        assert len(a) == len(b), f"{where}: {len(a)} != {len(b)} rows"
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{index}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _rows(document: Any) -> int:
    if isinstance(document, list):
        return len(document)
    return sum(_rows(v) for v in document.values()) if isinstance(document, dict) else 0


def _json(result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize(
    ("args", "at_least"),
    [
        pytest.param(["spikes", "--window", "15m", "--min-n", "10"], 50, id="spikes"),
        pytest.param(
            ["spikes", "--adapter", "(base)", "--adapter", "billing-v7", "--metric", "fallback_rate"],
            2,
            id="spikes-names",
        ),
        pytest.param(["latency"], 20, id="latency"),
        pytest.param(
            ["latency", "--adapter", "billing-v7", "--cohort", "pro", "--view", "vs-base"], 2, id="latency-one"
        ),
        pytest.param(["adapters"], 20, id="adapters"),
        pytest.param(["adapters", "--view", "changes"], 1, id="adapters-changes"),
        pytest.param(["query", "failing_traces", "--param", "adapter=billing-v7"], 10, id="query"),
        pytest.param(["query", "hygiene_confounded_changes", "--param", "window_seconds=3600"], 1, id="query-hygiene"),
        pytest.param(["doctor"], 1, id="doctor"),
        pytest.param(
            ["drift", "--min-n", "10", "--metric", "feedback:thumbs_down", "--metric", "feedback:escalation"],
            20,
            id="drift-feedback",
        ),
    ],
)
@pytest.mark.parametrize("table", ["otel_traces", "otel_traces_loratrace"])
def test_command_on_clickhouse_equals_the_store(engines, args, at_least, table) -> None:
    runner = CliRunner()
    local = runner.invoke(cli, [*args, "--format", "json", "--store", str(engines.store)])
    remote = runner.invoke(cli, [*args, "--format", "json", "--source", _url(engines, table)])
    # doctor exits 1 when a finding is an error (the test traffic has adapters without an id): the same on both
    assert local.exit_code in (0, 1), local.output
    assert remote.exit_code == local.exit_code, remote.output
    expected, got = json.loads(local.output), json.loads(remote.output)
    assert _rows(expected) >= at_least
    _same(expected, got, args[0])


def test_drift_flags_the_confounded_release_on_clickhouse_too(engines) -> None:
    runner = CliRunner()
    common = ["drift", "--format", "json", "--min-n", "5", "--adapter", "support-v4", "--metric", "error_rate"]
    local = _json(runner.invoke(cli, [*common, "--store", str(engines.store)]))
    remote = _json(runner.invoke(cli, [*common, "--source", _url(engines)]))
    assert local
    assert all("confounded:change" in row["flags"] for row in local)
    _same(sorted(local, key=repr), sorted(remote, key=repr))


RULES = """
version: 1
defaults: {{window: 5m, min_n: 10, min_volume: 10, for: 0s}}
{source}
sinks:
  - type: file
    path: {notes}
rules:
  - {{name: quality-drift, type: drift, metrics: [eval_pass:correct, error_rate]}}
  - {{name: error-spike, type: spike, metric: error_rate, window: 15m, baseline: 1h}}
  - {{name: fallbacks, type: fallback, max_rate: 0.01}}
  - {{name: latency-slo, type: slo, bad: latency, threshold_ms: 1000, objective: 0.999}}
"""


def _rules(folder: Path, name: str, source: str = "") -> tuple[Path, Path]:
    notes = folder / f"{name}.jsonl"
    path = folder / f"{name}.yaml"
    path.write_text(RULES.format(source=source, notes=notes))
    return path, notes


def _notes(path: Path) -> list[dict]:
    return sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda n: n["dedup_key"])


def _check_time(engines) -> str:
    last = query(engines.store, "SELECT max(start_time) AS t FROM generations")["t"][0]
    return f"{last:%Y-%m-%dT%H:%M:%S}"


def test_alert_check_notifies_the_same_from_clickhouse(engines, tmp_path, monkeypatch) -> None:
    runner = CliRunner()
    now = _check_time(engines)
    local_rules, local_notes = _rules(tmp_path, "local")
    result = runner.invoke(
        cli,
        [
            "alert",
            "check",
            "--store",
            str(engines.store),
            "--rules",
            str(local_rules),
            "--state-dir",
            str(tmp_path / "local-state"),
            "--now",
            now,
        ],
    )
    assert result.exit_code == 1, result.output  # firing
    expected = _notes(local_notes)
    assert {n["rule"] for n in expected} >= {"fallbacks", "latency-slo"}
    # the rules file names the source itself (URL from the environment), no --store / --source on the command
    monkeypatch.setenv("LORATRACE_TEST_CH_URL", _url(engines, "otel_traces_loratrace"))
    source = f"source: {{url_env: LORATRACE_TEST_CH_URL, state_dir: {tmp_path / 'ch-state'}}}"
    remote_rules, remote_notes = _rules(tmp_path, "remote", source)
    monkeypatch.delenv("LORATRACE_STORE", raising=False)
    monkeypatch.delenv("LORATRACE_SOURCE", raising=False)
    result = runner.invoke(cli, ["alert", "check", "--rules", str(remote_rules), "--now", now])
    assert result.exit_code == 1, result.output
    assert (tmp_path / "ch-state").is_dir()
    _same(expected, _notes(remote_notes), "notifications")


def test_alert_check_on_a_source_needs_a_state_dir(engines, tmp_path) -> None:
    rules, _ = _rules(tmp_path, "r")
    result = CliRunner().invoke(cli, ["alert", "check", "--source", _url(engines), "--rules", str(rules)])
    assert result.exit_code == 2
    assert "--state-dir" in result.output


@pytest.fixture
def server(engines):
    """ClickHouse's HTTP interface over the fixture's engine (see tests/clickhouse/http_shim.py)."""
    with ClickHouseHTTPShim(str(engines.store.parent / "chdb"), user="reader", password=SECRET) as shim:
        yield shim


def test_drift_through_clickhouse_connect_over_http(engines, server) -> None:
    runner = CliRunner()
    common = ["drift", "--min-n", "10", "--format", "json"]
    local = _json(runner.invoke(cli, [*common, "--store", str(engines.store)]))
    url = f"clickhouse://reader:{SECRET}@127.0.0.1:{server.port}/default?table=otel_traces_loratrace"
    remote = _json(runner.invoke(cli, [*common, "--source", url]))
    assert len(local) > 20
    key = ("adapter", "adapter_id", "cohort", "metric", "design")
    _same(sorted(local, key=lambda r: [str(r[k]) for k in key]), sorted(remote, key=lambda r: [str(r[k]) for k in key]))
    # the cells were aggregated by the engine behind HTTP: the cells statement went through it
    assert any("sum_sq" in sql and "GROUP BY" in sql for sql in server.requests)


def _no_secret(text: str) -> None:
    assert SECRET not in text
    assert SECRET.replace("-", "%2D") not in text


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["drift"], id="drift"),
        pytest.param(["spikes"], id="spikes"),
        pytest.param(["query", "failing_traces"], id="query"),
        pytest.param(["alert", "check", "--state-dir", "{state}", "--rules", "{rules}"], id="alert-check"),
    ],
)
def test_a_wrong_password_fails_without_showing_any_password(server, args, tmp_path, caplog) -> None:
    rules, _ = _rules(tmp_path, "r")
    wrong = "Wr0ng-" + SECRET
    url = f"clickhouse://reader:{wrong}@127.0.0.1:{server.port}/default?table=otel_traces"
    args = [a.format(state=tmp_path / "state", rules=rules) for a in args]
    with caplog.at_level(logging.DEBUG):
        result = CliRunner().invoke(cli, [*args, "--source", url])
    assert result.exit_code == 2, result.output
    assert "Authentication failed" in result.output or "516" in result.output
    assert "--source" in result.output
    for text in (result.output, caplog.text, repr(result.exception)):
        assert wrong not in text
        _no_secret(text)


def test_alert_payloads_and_reprs_never_hold_the_password(engines, server, tmp_path, caplog) -> None:
    from loratrace.sources import open_source

    url = f"clickhouse://reader:{SECRET}@127.0.0.1:{server.port}/default?table=otel_traces"
    rules, notes = _rules(tmp_path, "r")
    with caplog.at_level(logging.DEBUG):
        result = CliRunner().invoke(
            cli,
            [
                "alert",
                "check",
                "--source",
                url,
                "--rules",
                str(rules),
                "--state-dir",
                str(tmp_path / "s"),
                "--now",
                _check_time(engines),
            ],
        )
    assert result.exit_code == 1, result.output
    state = "".join(p.read_text() for p in (tmp_path / "s").rglob("*.json"))
    for text in (result.output, caplog.text, notes.read_text(), state):
        _no_secret(text)
    source = open_source(url)
    try:
        _no_secret(repr(source))
        _no_secret(repr(source.target))
    finally:
        source.close()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"clickhouse://reader:{SECRET}@127.0.0.1:notaport/db", id="port"),
        pytest.param(f"clickhouse://reader:{SECRET}@127.0.0.1:8123/db?table=x;drop", id="table"),
        pytest.param(f"postgres://reader:{SECRET}@127.0.0.1/db", id="scheme"),
    ],
)
def test_a_bad_source_url_is_refused_without_its_password(url) -> None:
    result = CliRunner().invoke(cli, ["drift", "--source", url])
    assert result.exit_code == 2, result.output
    assert "--source" in result.output
    _no_secret(result.output)


def test_a_flag_wins_over_the_other_sources_environment_variable(engines, monkeypatch) -> None:
    runner = CliRunner()
    args = ["adapters", "--format", "json", "--view", "changes"]
    monkeypatch.setenv("LORATRACE_SOURCE", _url(engines))
    local = _json(runner.invoke(cli, [*args, "--store", str(engines.store)]))
    monkeypatch.delenv("LORATRACE_SOURCE")
    monkeypatch.setenv("LORATRACE_STORE", str(engines.store))
    remote = _json(runner.invoke(cli, [*args, "--source", _url(engines)]))
    _same(local, remote)
    both = runner.invoke(cli, [*args, "--source", _url(engines), "--store", str(engines.store)])
    assert both.exit_code == 2
    assert "not both" in both.output


def test_alert_watch_checks_a_source(engines, tmp_path) -> None:
    import threading

    from loratrace.alerts.watch import watch
    from loratrace.sources import open_source

    rules, _ = _rules(tmp_path, "r")
    stop = threading.Event()
    reports: list[tuple[Any, str | None]] = []

    def report(result: Any, error: str | None) -> None:
        reports.append((result, error))
        stop.set()

    source = open_source(_url(engines, "otel_traces_loratrace"))
    try:
        code = watch(source, rules, every=3600, state_dir=tmp_path / "state", report=report, stop=stop)
    finally:
        source.close()
    assert code == 0
    [(result, error)] = reports
    assert error is None
    assert result.conditions > 10
