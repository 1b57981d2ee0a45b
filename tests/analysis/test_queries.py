"""Every incident query in loratrace/queries runs on a real store and returns the rows computed independently
from the generator's records; the loader refuses unknown queries and bad parameters clearly; the CLI binds."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from loratrace import semconv
from loratrace.analysis import queries
from loratrace.cli import cli
from loratrace.errors import ConfigurationError

from .incident_store import EPOCH, PROMPT_CHANGE_AT, START, SWAP_AT, Fixture, build

SINCE = (START + timedelta(minutes=30)).replace(tzinfo=None)
UNTIL = (START + timedelta(hours=2, minutes=30)).replace(tzinfo=None)


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return build(tmp_path_factory.mktemp("incidents"))


def run(fx: Fixture, name: str, **params: Any) -> list[dict[str, Any]]:
    names, rows = queries.fetch(fx.store, name, params)
    return [dict(zip(names, row, strict=True)) for row in rows]


def gens(fx: Fixture, *, since: datetime | None = None, until: datetime | None = None) -> Iterator[dict[str, Any]]:
    for row in fx.rows:
        if row["operation_name"] not in semconv.GENERATION_OPERATIONS:
            continue
        if since is not None and row["start_time"] < since:
            continue
        if until is not None and row["start_time"] >= until:
            continue
        yield row


def test_at_least_twelve_queries_ship_each_with_a_header_and_bound_parameters() -> None:
    found = queries.available_queries()
    assert len(found) >= 12
    sql_files = sorted((Path(queries.__file__).parents[1] / "queries").glob("*.sql"))
    assert sorted(p.stem for p in sql_files) == sorted(found)
    for path in sql_files:
        text = path.read_text()
        lines = text.splitlines()
        assert lines[0] == f"-- name: {path.stem}"
        assert lines[1].startswith("-- answers: ")
        assert len(lines[1]) > 40
        assert lines[2].startswith("-- params: ")
        assert "{" not in text
        assert "%s" not in text


def test_every_query_is_tested() -> None:
    # this file checks its own queries' rows (test_q_<name>); a query another part ships (loratrace doctor's
    # hygiene_*) is loaded by name by that part, whose tests check its rows; all of them run in the test below
    tested = {name.removeprefix("test_q_") for name in globals() if name.startswith("test_q_")}
    root = Path(__file__).parents[2]
    sources = [*(root / "loratrace").rglob("*.py"), *(root / "tests").rglob("test_*.py")]
    elsewhere = "\n".join(p.read_text() for p in sources if p.name not in (Path(__file__).name, "queries.py"))
    untested = {name for name in queries.available_queries() if name not in tested and name not in elsewhere}
    assert not untested
    assert tested <= set(queries.available_queries())


_SAMPLE = {"text": "a1", "integer": "3600", "number": "0.5", "boolean": "true", "timestamp": "2026-03-02T08:00"}


def test_every_query_file_runs_on_the_fixture_store(fx: Fixture) -> None:
    for incident in queries.available_queries().values():
        values = {p.name: _SAMPLE[p.type] for p in incident.parameters if p.required}
        names, _ = queries.fetch(fx.store, incident.name, values)
        assert names, incident.name


def test_q_adapter_for_trace(fx: Fixture) -> None:
    for row in [
        *[r for r in gens(fx) if r["adapter_name"] == "a2"][:3],
        next(r for r in gens(fx) if not r["adapter_name"]),
    ]:
        got = run(fx, "adapter_for_trace", trace_id=row["trace_id"].upper())
        keys = [k for k in got[0] if k not in ("start_time",)]
        assert got == [{**{k: row[k] for k in keys}, "start_time": row["start_time"]}]
    # a trace of a server span above a generation: only the generation names a model
    got = run(fx, "adapter_for_trace", trace_id="0123456789abcdef0123456789abcdef")
    assert [(r["span_id"], r["adapter_name"]) for r in got] == [("00000000000000bb", "a1")]


def test_q_trace_spans(fx: Fixture) -> None:
    got = run(fx, "trace_spans", trace_id="0123456789abcdef0123456789abcdef")
    expected = sorted(
        (r for r in fx.rows if r["trace_id"] == "0123456789abcdef0123456789abcdef"), key=lambda r: r["start_ns"]
    )
    assert [(g["span_id"], g["parent_span_id"], g["name"], g["kind"], g["status_code"]) for g in got] == [
        (e["span_id"], e["parent_span_id"], e["name"], e["kind"], e["status_code"]) for e in expected
    ]
    assert [g["duration_ms"] for g in got] == pytest.approx([e["duration_ms"] for e in expected])


def test_q_trace_evals(fx: Fixture) -> None:
    row = next(r for r in gens(fx) if r["evals"] and r["adapter_name"] == "a1")
    got = run(fx, "trace_evals", trace_id=row["trace_id"])
    assert [(g["eval_name"], g["passed"], g["score"], g["adapter_name"], g["cohort"]) for g in got] == [
        (e.name, e.passed, e.score, "a1", row["cohort"]) for e in row["evals"]
    ]


def test_q_adapters_in_cohort(fx: Fixture) -> None:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in gens(fx, since=SINCE, until=UNTIL):
        if r["cohort"] == "smb":
            groups[r["served_by"], r["adapter_id"], r["variant"]].append(r)
    got = run(fx, "adapters_in_cohort", cohort="smb", since=SINCE, until=UNTIL)
    expected = [
        {
            "served_by": k[0],
            "adapter_id": k[1],
            "variant": k[2],
            "generations": len(v),
            "first_seen": min(r["start_time"] for r in v),
            "last_seen": max(r["start_time"] for r in v),
        }
        for k, v in groups.items()
    ]
    expected.sort(key=lambda e: (-e["generations"], e["served_by"], e["adapter_id"] or ""))
    assert sorted(got, key=str) == sorted(expected, key=str)
    assert len({g["adapter_id"] for g in got if g["served_by"] == "a2"}) == 2
    assert {g["adapter_id"] for g in got if g["served_by"] == "a2"} == {
        r["adapter_id"] for r in gens(fx) if r["adapter_name"] == "a2" and r["cohort"] == "smb"
    }  # the swap inside the window: both ids served smb


def _recent(rows: list[dict], limit: int) -> list[dict]:
    return sorted(rows, key=lambda r: (-r["start_ns"], r["trace_id"], r["span_id"]))[:limit]


def test_q_failing_traces(fx: Fixture) -> None:
    failing = [
        r for r in gens(fx, since=SINCE, until=UNTIL) if r["adapter_name"] == "a1" and r["status_code"] == "ERROR"
    ]
    assert len(failing) > 5
    got = run(fx, "failing_traces", adapter="a1", since=SINCE, until=UNTIL, limit=5)
    assert [(g["trace_id"], g["error_type"], g["status_message"], g["cohort"]) for g in got] == [
        (r["trace_id"], r["error_type"], r["status_message"], r["cohort"]) for r in _recent(failing, 5)
    ]
    everything = run(fx, "failing_traces", adapter="a1", limit=10_000)
    assert len(everything) == sum(1 for r in gens(fx) if r["adapter_name"] == "a1" and r["status_code"] == "ERROR")


def test_q_fallback_traces(fx: Fixture) -> None:
    fell_back = [r for r in gens(fx, since=SINCE) if r["adapter_name"] == "a1" and r["fallback"]]
    got = run(fx, "fallback_traces", adapter="a1", since=SINCE)
    assert [(g["trace_id"], g["fallback_reason"]) for g in got] == [
        (r["trace_id"], r["fallback_reason"]) for r in _recent(fell_back, 50)
    ]
    assert got


def test_q_schema_retry_traces(fx: Fixture) -> None:
    retried = [r for r in gens(fx, until=UNTIL) if r["adapter_name"] == "a2" and r["schema_attempts"] > 1]
    got = run(fx, "schema_retry_traces", adapter="a2", until=UNTIL, limit=1000)
    assert [(g["trace_id"], g["schema_attempts"], g["schema_valid"]) for g in got] == [
        (r["trace_id"], r["schema_attempts"], r["schema_valid"]) for r in _recent(retried, 1000)
    ]
    assert len(got) > 10


def test_q_adapter_id_changes(fx: Fixture) -> None:
    spans = defaultdict(list)
    for r in gens(fx):
        if r["adapter_name"] == "a2":
            spans[r["adapter_id"]].append(r["start_time"])
    (old, old_times), (new, new_times) = sorted(spans.items(), key=lambda item: min(item[1]))
    got = run(fx, "adapter_id_changes")
    assert got == [
        {
            "adapter_name": "a2",
            "old_adapter_id": old,
            "new_adapter_id": new,
            "old_last_seen": max(old_times),
            "new_first_seen": min(new_times),
            "new_id_generations": len(new_times),
        }
    ]
    swap = SWAP_AT.replace(tzinfo=None)
    assert got[0]["old_last_seen"] < swap <= got[0]["new_first_seen"]
    assert run(fx, "adapter_id_changes", adapter="a1") == []
    assert run(fx, "adapter_id_changes", adapter="a2", since=swap) == []  # only the new id in that window


def test_q_latency_by_adapter(fx: Fixture) -> None:
    durations = defaultdict(list)
    ttft = defaultdict(list)
    for r in gens(fx, since=SINCE):
        durations[r["served_by"]].append(r["duration_ms"])
        if r["ttft_ms"] is not None:
            ttft[r["served_by"]].append(r["ttft_ms"])
    got = {g["served_by"]: g for g in run(fx, "latency_by_adapter", since=SINCE)}
    assert set(got) == set(durations)
    for who, values in durations.items():
        p50, p95, p99 = np.percentile(values, [50, 95, 99])  # linear interpolation, as quantile_cont
        assert got[who]["generations"] == len(values)
        assert (got[who]["p50_ms"], got[who]["p95_ms"], got[who]["p99_ms"]) == pytest.approx((p50, p95, p99), abs=1e-3)
        if ttft[who]:
            assert got[who]["ttft_p99_ms"] == pytest.approx(np.percentile(ttft[who], 99), abs=1e-3)
    assert got["a2"]["p50_ms"] > got["a1"]["p50_ms"] + 500  # the planted +900 ms


def test_q_eval_failures_by_cohort(fx: Fixture) -> None:
    counts: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in fx.rows:
        for e in r["evals"]:
            time = EPOCH + timedelta(microseconds=e.time_ns // 1000)
            if SINCE <= time < UNTIL:
                counts[r["cohort"], r["served_by"], e.name][0] += 1
                counts[r["cohort"], r["served_by"], e.name][1] += not e.passed
    got = run(fx, "eval_failures_by_cohort", since=SINCE, until=UNTIL, eval="quality")
    expected = {k: (n, f, f / n) for k, (n, f) in counts.items()}
    assert {
        (g["cohort"], g["served_by"], g["eval_name"]): (g["evaluated"], g["failed"], g["fail_rate"]) for g in got
    } == expected
    assert [g["fail_rate"] for g in got] == sorted((g["fail_rate"] for g in got), reverse=True)
    assert run(fx, "eval_failures_by_cohort", eval="no-such-eval") == []


def test_q_ok_spans_failed_eval(fx: Fixture) -> None:
    errored = {r["trace_id"] for r in fx.rows if r["status_code"] == "ERROR"}
    failures: dict[str, list] = defaultdict(list)
    for r in fx.rows:
        for e in r["evals"]:
            if not e.passed:
                failures[r["trace_id"]].append(e)
    quiet = {t: v for t, v in failures.items() if t not in errored}
    got = run(fx, "ok_spans_failed_eval", limit=100_000)
    assert {g["trace_id"]: g["failed_evals"] for g in got} == {t: len(v) for t, v in quiet.items()}
    assert "0123456789abcdef0123456789abcdef" in failures  # the hand-made trace failed its evaluation...
    assert "0123456789abcdef0123456789abcdef" not in {g["trace_id"] for g in got}  # ...but a span errored
    only_a1 = run(fx, "ok_spans_failed_eval", adapter="a1", limit=3)
    assert len(only_a1) == 3
    assert {g["served_by"] for g in only_a1} == {"a1"}


def test_q_slowest_traces(fx: Fixture) -> None:
    traces = {r["trace_id"] for r in gens(fx, since=SINCE, until=UNTIL) if r["adapter_name"] == "a2"}
    spans_by_trace = defaultdict(list)
    for r in fx.rows:
        if r["trace_id"] in traces:
            spans_by_trace[r["trace_id"]].append(r)
    expected = sorted(
        (((max(s["end_ns"] for s in v) - min(s["start_ns"] for s in v)) / 1e6, t) for t, v in spans_by_trace.items()),
        key=lambda item: (-item[0], item[1]),
    )[:7]
    got = run(fx, "slowest_traces", adapter="a2", since=SINCE, until=UNTIL, limit=7)
    assert [(g["trace_id"], g["trace_ms"]) for g in got] == [(t, pytest.approx(ms)) for ms, t in expected]


def test_q_route_changes(fx: Fixture) -> None:
    since = (START + timedelta(minutes=90)).replace(tzinfo=None)
    keys = (
        "adapter_name",
        "adapter_id",
        "prompt_version",
        "base_model_name",
        "model_quantization_method",
        "model_quantization_bits",
    )
    seen: dict[tuple, list] = defaultdict(list)
    for r in gens(fx):
        if r["route_name"] == "support":
            seen[tuple(r[k] for k in keys)].append(r["start_time"])
    expected = {
        k: (min(v), max(v), sum(1 for t in v if t >= since), min(v) >= since)
        for k, v in seen.items()
        if any(t >= since for t in v)
    }
    got = run(fx, "route_changes", route="support", since=since)
    assert {
        tuple(g[k] for k in keys): (g["first_seen"], g["last_seen"], g["generations_in_window"], g["new_in_window"])
        for g in got
    } == expected
    new = {(g["adapter_name"], g["prompt_version"]) for g in got if g["new_in_window"]}
    # the prompt change at +2 h is new in the window for every arm; the swap at +1 h is before it
    assert new == {(None, "v2"), ("a1", "v2"), ("a2", "v2")}
    assert PROMPT_CHANGE_AT.replace(tzinfo=None) >= since


def _shares(fx: Fixture, predicate, label) -> dict[tuple, tuple]:
    totals: dict[str, int] = defaultdict(int)
    counts: dict[tuple, int] = defaultdict(int)
    for r in gens(fx, since=SINCE, until=UNTIL):
        totals[r["served_by"]] += 1
        if predicate(r):
            counts[r["served_by"], label(r)] += 1
    return {k: (n, totals[k[0]], n / totals[k[0]]) for k, n in counts.items()}


def test_q_error_types_by_adapter(fx: Fixture) -> None:
    expected = _shares(fx, lambda r: r["status_code"] == "ERROR", lambda r: r["error_type"] or "(none given)")
    got = run(fx, "error_types_by_adapter", since=SINCE, until=UNTIL)
    assert {(g["served_by"], g["error_type"]): (g["errors"], g["generations"], g["share"]) for g in got} == expected
    assert ("a1", "TimeoutError") in expected or ("a1", "RuntimeError") in expected


def test_q_fallback_reasons(fx: Fixture) -> None:
    expected = _shares(fx, lambda r: bool(r["fallback"]), lambda r: r["fallback_reason"] or "(none given)")
    got = run(fx, "fallback_reasons", since=SINCE, until=UNTIL)
    assert {
        (g["served_by"], g["fallback_reason"]): (g["fallbacks"], g["generations"], g["share"]) for g in got
    } == expected


def test_q_finish_reasons_by_adapter(fx: Fixture) -> None:
    expected = _shares(fx, lambda r: True, lambda r: r["finish_reason"] or "(none given)")
    got = run(fx, "finish_reasons_by_adapter", since=SINCE, until=UNTIL)
    assert {(g["served_by"], g["finish_reason"]): (g["generations"], pytest.approx(g["share"])) for g in got} == {
        k: (n, share) for k, (n, _, share) in expected.items()
    }
    assert ("a1", "content_filter") in expected


def test_q_adapter_hourly(fx: Fixture) -> None:
    hours: dict[datetime, list[dict]] = defaultdict(list)
    for r in gens(fx):
        if r["adapter_name"] == "a2":
            hours[r["start_time"].replace(minute=0, second=0, microsecond=0)].append(r)
    got = run(fx, "adapter_hourly", adapter="a2")
    assert [g["hour"] for g in got] == sorted(hours)
    for g in got:
        rows = hours[g["hour"]]
        assert g["generations"] == len(rows)
        assert g["errors"] == sum(r["status_code"] == "ERROR" for r in rows)
        assert g["timeouts"] == sum(r["error_type"] == "TimeoutError" for r in rows)
        assert g["fallbacks"] == sum(bool(r["fallback"]) for r in rows)
        assert g["schema_retries"] == sum(r["schema_attempts"] > 1 for r in rows)
        assert g["p95_ms"] == pytest.approx(np.percentile([r["duration_ms"] for r in rows], 95), abs=1e-3)
        assert g["adapter_ids"] == len({r["adapter_id"] for r in rows})


def test_q_example_answers(fx: Fixture) -> None:
    example = next(r["example_id"] for r in fx.rows if r["example_id"])
    answers = [r for r in fx.rows if r["example_id"] == example]
    got = run(fx, "example_answers", example_id=example)
    assert sorted((g["served_by"], g["variant"], g["trace_id"], g["evals"], g["evals_passed"]) for g in got) == sorted(
        (r["served_by"], r["variant"], r["trace_id"], len(r["evals"]), sum(e.passed for e in r["evals"]))
        for r in answers
    )
    assert {g["served_by"] for g in got} == {"(base) tiny-llama", "a1", "a2"}


def test_q_unidentified_adapters(fx: Fixture) -> None:
    got = run(fx, "unidentified_adapters")
    assert [(g["adapter_name"], g["generations"], g["without_id"], g["without_rank"]) for g in got] == [
        ("legacy-ft", 1, 1, 1)
    ]


def test_unknown_query_and_bad_parameters_are_refused_with_suggestions(fx: Fixture) -> None:
    with pytest.raises(ConfigurationError, match="did you mean adapter_for_trace"):
        queries.get_query("adapter_for_trac")
    with pytest.raises(ConfigurationError, match=r"needs trace_id: pass --param trace_id=\.\.\."):
        queries.fetch(fx.store, "adapter_for_trace", {})
    with pytest.raises(ConfigurationError, match=r"no parameter 'trace' \(did you mean trace_id\?\)"):
        queries.fetch(fx.store, "adapter_for_trace", {"trace": "x", "trace_id": "y"})
    with pytest.raises(ConfigurationError, match="parameter limit takes a whole number, got 'many'"):
        queries.fetch(fx.store, "failing_traces", {"adapter": "a1", "limit": "many"})
    with pytest.raises(ConfigurationError, match=r"parameter since: expected an ISO time .* got 'last tuesday'"):
        queries.fetch(fx.store, "failing_traces", {"adapter": "a1", "since": "last tuesday"})
    with pytest.raises(ConfigurationError, match=r"no adapter 'a3' in the store \(did you mean a[12] or a[12]\?\)"):
        queries.check_known_values(fx.store, "failing_traces", {"adapter": "a3"})


def test_header_mismatches_are_refused_naming_the_file() -> None:
    with pytest.raises(
        ConfigurationError, match=r"x\.sql: its '-- params:' line declares \['a'\] but the SQL uses \['b'\]"
    ):
        queries.parse_query("-- name: x\n-- answers: y\n-- params: a (text)\nSELECT $b", source="x.sql")
    with pytest.raises(ConfigurationError, match=r"x\.sql: parameter a has type 'txt'"):
        queries.parse_query("-- name: x\n-- answers: y\n-- params: a (txt)\nSELECT $a", source="x.sql")
    with pytest.raises(ConfigurationError, match=r"x\.sql: an incident query opens with"):
        queries.parse_query("SELECT 1", source="x.sql")


def test_cli_query_binds_parameters_and_formats(fx: Fixture) -> None:
    runner = CliRunner()
    row = next(r for r in gens(fx) if r["adapter_name"] == "a1")
    result = runner.invoke(
        cli,
        [
            "query",
            "adapter_for_trace",
            "--store",
            str(fx.store),
            "--param",
            f"trace_id={row['trace_id']}",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert [(o["adapter_name"], o["adapter_id"], o["adapter_rank"]) for o in json.loads(result.output)] == [
        ("a1", row["adapter_id"], row["adapter_rank"])
    ]
    # the store from the environment; a hostile value stays a value
    result = runner.invoke(
        cli,
        ["query", "adapter_for_trace", "--param", "trace_id=x' OR '1'='1", "--format", "csv"],
        env={"LORATRACE_STORE": str(fx.store)},
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:] == []
    listing = runner.invoke(cli, ["query", "--list", "--format", "json"])
    assert listing.exit_code == 0
    assert {q["name"] for q in json.loads(listing.output)} == set(queries.available_queries())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["query", "adapter_for_trac"], "did you mean adapter_for_trace", id="unknown-query"),
        pytest.param(["query", "adapter_for_trace"], "needs trace_id", id="missing-param"),
        pytest.param(["query", "adapter_for_trace", "--param", "trace_id"], "--param takes KEY=VALUE", id="bad-param"),
        pytest.param(
            ["query", "failing_traces", "--param", "adapter=a9"], "no adapter 'a9' in the store", id="unknown-adapter"
        ),
        pytest.param(
            ["query", "adapters_in_cohort", "--param", "cohort=smbb"], "did you mean smb", id="unknown-cohort"
        ),
        pytest.param(
            ["query", "failing_traces", "--param", "adapter=a1", "--param", "until=soon"],
            "parameter until: expected an ISO time",
            id="bad-time",
        ),
    ],
)
def test_cli_query_bad_input_exits_2(fx: Fixture, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, [*args, "--store", str(fx.store)])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_cli_query_on_a_folder_that_is_not_a_store_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["query", "trace_spans", "--store", str(tmp_path), "--param", "trace_id=x"])
    assert result.exit_code == 2
    assert "is not a loratrace store" in result.output
