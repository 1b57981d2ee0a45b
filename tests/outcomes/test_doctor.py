"""``loratrace doctor`` on stores written by a real collector: each release mistake planted in an otherwise
clean release, and the clean release itself, which must give no finding at all."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from loratrace.cli import cli
from loratrace.doctor import hygiene_findings
from loratrace.store import query

from .conftest import start_collector
from .spans import HOUR_NS, Traffic, wait_for_rows

OLD_ID, NEW_ID = "sha256:" + "1" * 64, "sha256:" + "2" * 64
COHORTS = ("enterprise", "free")
SERVICE = ("service", "serving")
T0_NS = (time.time_ns() // HOUR_NS - 72) * HOUR_NS  # three days ago, on the hour; one value for every test here


def _replay(traffic: Traffic, *, at_ns: int, adapter_id: str, per_cohort: dict[str, int]) -> None:
    """A golden-set replay: each example through the base and the adapter (paired by example id)."""
    for cohort, examples in per_cohort.items():
        for number in range(examples):
            example = f"{cohort}-{number}"
            start = at_ns + number * 10**9
            traffic.generation(start_ns=start, cohort=cohort, example_id=example)
            traffic.generation(start_ns=start, adapter="a1", adapter_id=adapter_id, cohort=cohort, example_id=example)


def _production(traffic: Traffic, *, start_ns: int, hours: int, adapter_id=lambda hour: OLD_ID, **overrides) -> None:
    """Base and adapter serving both cohorts, four generations per arm and cohort an hour."""
    for hour in range(hours):
        for minute in (0, 15, 30, 45):
            start = start_ns + hour * HOUR_NS + minute * 60 * 10**9
            for cohort in COHORTS:
                extra = overrides.get("at_hour", lambda hour: {})(hour)
                traffic.generation(start_ns=start, cohort=cohort, **extra.get("base", {}))
                traffic.generation(
                    start_ns=start, adapter="a1", adapter_id=adapter_id(hour), cohort=cohort, **extra.get("adapter", {})
                )


def _clean(traffic: Traffic, t0: int) -> None:
    _replay(traffic, at_ns=t0 - HOUR_NS, adapter_id=OLD_ID, per_cohort=dict.fromkeys(COHORTS, 4))
    _production(traffic, start_ns=t0, hours=6)


def _missing_metadata(traffic: Traffic, t0: int) -> None:
    _clean(traffic, t0)
    for number in range(10):  # another instrumentation on the billing route logs only the base model
        traffic.generation(start_ns=t0 + number * 10**9, route="billing", identity=False)
    for number in range(4):
        traffic.generation(
            start_ns=t0 + 7 * HOUR_NS + number * 10**9, adapter="a1", adapter_id=OLD_ID, rank=None, dataset_version=None
        )


def _confounded(traffic: Traffic, t0: int) -> None:
    _replay(traffic, at_ns=t0 - HOUR_NS, adapter_id=OLD_ID, per_cohort=dict.fromkeys(COHORTS, 4))
    _replay(traffic, at_ns=t0 + 2 * HOUR_NS, adapter_id=NEW_ID, per_cohort=dict.fromkeys(COHORTS, 4))

    def quantized_from_hour_3(hour: int) -> dict:
        changed = {"quantization": "awq", "bits": 4} if hour >= 3 else {}
        return {"base": changed, "adapter": changed}

    _production(
        traffic,
        start_ns=t0,
        hours=6,
        adapter_id=lambda hour: NEW_ID if hour >= 3 else OLD_ID,
        at_hour=quantized_from_hour_3,
    )


def _unevaluated(traffic: Traffic, t0: int) -> None:
    _replay(traffic, at_ns=t0 - HOUR_NS, adapter_id=OLD_ID, per_cohort={"enterprise": 12})
    _replay(traffic, at_ns=t0 - 2 * HOUR_NS, adapter_id=OLD_ID, per_cohort={"free": 1})
    _production(traffic, start_ns=t0, hours=6)
    for number in range(16):  # a third cohort, as much traffic as the others, never replayed
        traffic.generation(start_ns=t0 + number * 10**9, adapter="a1", adapter_id=OLD_ID, cohort="trial")
        traffic.generation(start_ns=t0 + number * 10**9 + 1, cohort="trial")
    for number in range(8):
        traffic.generation(start_ns=t0 + HOUR_NS + number * 10**9, adapter="a1", adapter_id=OLD_ID, cohort="trial")


def _late_evidence(traffic: Traffic, t0: int) -> None:
    _production(traffic, start_ns=t0, hours=6)
    _replay(traffic, at_ns=t0 + 2 * HOUR_NS + 10**9, adapter_id=OLD_ID, per_cohort=dict.fromkeys(COHORTS, 4))


def _silent_swap(traffic: Traffic, t0: int) -> None:
    _replay(traffic, at_ns=t0 - HOUR_NS, adapter_id=OLD_ID, per_cohort=dict.fromkeys(COHORTS, 4))
    _production(traffic, start_ns=t0, hours=6, adapter_id=lambda hour: NEW_ID if hour >= 3 else OLD_ID)


def _subjects(findings) -> list[tuple]:
    return [(f.check, f.severity, tuple(sorted(f.subject.items()))) for f in findings]


EXPECTED = {
    "clean": [],
    "missing_metadata": [
        (
            "metadata_completeness",
            "error",
            (("field", "adapter_identity"), ("route", "billing"), ("service", "serving")),
        ),
        ("metadata_completeness", "warning", (("field", "adapter_rank"), ("route", "support"), ("service", "serving"))),
        (
            "metadata_completeness",
            "warning",
            (("field", "dataset_version"), ("route", "support"), ("service", "serving")),
        ),
    ],
    "confounded": [("confounded_changes", "error", (("adapter_id", NEW_ID), ("route", "support")))],
    "unevaluated": [
        ("unevaluated_exposure", "error", (("adapter", "a1"), ("adapter_id", OLD_ID), ("cohort", "trial"))),
        ("unevaluated_exposure", "warning", (("adapter", "a1"), ("adapter_id", OLD_ID), ("cohort", "free"))),
    ],
    "late_evidence": [("no_release_evidence", "error", (("adapter", "a1"), ("adapter_id", OLD_ID)))],
    "silent_swap": [
        ("unevaluated_exposure", "error", (("adapter", "a1"), ("adapter_id", NEW_ID), ("cohort", "enterprise"))),
        ("unevaluated_exposure", "error", (("adapter", "a1"), ("adapter_id", NEW_ID), ("cohort", "free"))),
        ("no_release_evidence", "error", (("adapter", "a1"), ("adapter_id", NEW_ID))),
        ("silent_swaps", "error", (("adapter", "a1"), ("adapter_id", NEW_ID))),
    ],
}
BUILDERS = {
    "clean": _clean,
    "missing_metadata": _missing_metadata,
    "confounded": _confounded,
    "unevaluated": _unevaluated,
    "late_evidence": _late_evidence,
    "silent_swap": _silent_swap,
}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One store per release, each written by its own real collector (started and stopped here)."""
    t0 = T0_NS
    built = {}
    for name, build in BUILDERS.items():
        root = tmp_path_factory.mktemp(name)
        collector = start_collector(root / "store")
        try:
            traffic = Traffic(collector.http)
            build(traffic, t0)
            sent = traffic.send()
            wait_for_rows(collector, "SELECT count(*) FROM generations", sent)
        finally:
            assert collector.terminate() == 0
        built[name] = collector.store
    return built


@pytest.mark.parametrize("release", list(BUILDERS))
def test_each_planted_mistake_is_found_and_nothing_else(stores: dict[str, Path], release: str) -> None:
    findings = hygiene_findings(stores[release])
    assert _subjects(findings) == EXPECTED[release]
    result = CliRunner().invoke(cli, ["doctor", "--store", str(stores[release]), "--format", "json"])
    assert result.exit_code == (1 if any(f[1] == "error" for f in EXPECTED[release]) else 0), result.output
    rendered = json.loads(result.output)
    assert [(f["check"], f["severity"]) for f in rendered] == [(f[0], f[1]) for f in EXPECTED[release]]
    for finding in rendered:  # the evidence re-runs as it stands and shows the rows behind the finding
        sql = (Path(__file__).parents[2] / "loratrace" / "queries" / finding["evidence"]["query"]).read_text()
        rows = query(stores[release], sql, finding["evidence"]["params"])
        assert rows.height >= 1
        assert finding["fix"]


def test_the_findings_say_what_and_when(stores: dict[str, Path]) -> None:
    (swap,) = hygiene_findings(stores["silent_swap"], checks=["silent_swaps"])
    assert swap.details["previous_id"] == OLD_ID
    assert swap.evidence.query == "hygiene_silent_swaps.sql"
    assert swap.evidence.params == {"since": None, "until": None}
    (late,) = hygiene_findings(stores["late_evidence"], checks=["no_release_evidence"])
    assert late.details["generations_before_evidence"] == 2 * 4 * 2 + 2 * 1  # two hours, then 2 before the replay
    (confounded,) = hygiene_findings(stores["confounded"], checks=["confounded_changes"])
    assert confounded.details["new_values"] == ["quantization=awq/4"]
    assert confounded.key == f"confounded_changes:adapter_id={NEW_ID},route=support"
    (trial, thin) = hygiene_findings(stores["unevaluated"], checks=["unevaluated_exposure"])
    assert (trial.details["replayed_examples"], trial.details["traffic_share"]) == (0, round(24 / 72, 4))
    assert (thin.details["replayed_examples"], thin.details["replay_share"]) == (1, round(1 / 13, 4))


def test_the_time_range_limits_production_traffic(stores: dict[str, Path]) -> None:
    t0 = dt.datetime.fromtimestamp(T0_NS // 10**9, dt.timezone.utc)
    # the swap happened three hours in: looking only at the first two hours finds no swap
    assert hygiene_findings(stores["silent_swap"], until=t0 + dt.timedelta(hours=2)) == []
    after = hygiene_findings(stores["silent_swap"], since=t0 + dt.timedelta(hours=2), checks=["silent_swaps"])
    assert [f.subject["adapter_id"] for f in after] == [NEW_ID]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(["--since", "yesterday"], "--since: expected an ISO time", id="since"),
        pytest.param(["--window", "0h"], "--window: expected a positive duration", id="window"),
        pytest.param(["--check", "vibes"], "Invalid value for '--check'", id="check"),
    ],
)
def test_bad_input_exits_2(stores: dict[str, Path], arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["doctor", "--store", str(stores["clean"]), *arguments])
    assert result.exit_code == 2
    assert message in result.output


def test_a_folder_that_is_no_store_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["doctor", "--store", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not a loratrace store" in result.output


def test_the_query_files_select_generations_as_the_generations_view_does() -> None:
    from loratrace import semconv

    listed = "(" + ", ".join(f"'{operation}'" for operation in semconv.GENERATION_OPERATIONS) + ")"
    for path in sorted((Path(__file__).parents[2] / "loratrace" / "queries").glob("hygiene_*.sql")):
        sql = path.read_text()
        assert "FROM generations" not in sql, path.name
        assert sql.count("FROM spans") == sql.count(f"operation_name IN {listed}"), path.name


def test_drift_rows_of_a_confounded_change_say_so(stores: dict[str, Path]) -> None:
    for release, flagged in (("confounded", {NEW_ID}), ("silent_swap", set())):
        result = CliRunner().invoke(
            cli, ["drift", "--store", str(stores[release]), "--metric", "error_rate", "--format", "json"]
        )
        assert result.exit_code == 0, result.output
        rows = json.loads(result.output)
        assert {row["adapter_id"] for row in rows} == {OLD_ID, NEW_ID}
        for row in rows:
            assert ("confounded:change" in row["flags"]) == (row["adapter_id"] in flagged), row
