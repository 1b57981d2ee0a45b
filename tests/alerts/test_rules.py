"""The rules file: the documented example loads; every mistake names its key and line; the CLI exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from loratrace.alerts.rules import RulesError, load_rules, parse_duration
from loratrace.cli import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "alerts.example.yaml"


def test_the_documented_example_loads_with_its_overrides():
    ruleset = load_rules(EXAMPLE)
    by_name = {rule.name: rule for rule in ruleset.rules}
    assert set(by_name) == {"quality-drift", "error-spike", "latency-slo", "error-slo", "fallback-limit"}
    drift = by_name["quality-drift"]
    assert drift.metrics == ("eval_pass:quality", "error_rate", "schema_retry_rate")
    assert drift.knobs()["min_effect"] == 0.02
    assert drift.knobs(cohort="enterprise")["min_effect"] == 0.01
    assert drift.knobs(adapter="experimental-adapter")["severity"] == "info"
    assert drift.knobs(adapter="experimental-adapter", cohort="enterprise") | {} == {
        **drift.knobs(),
        "min_effect": 0.01,
        "severity": "info",
    }
    assert by_name["error-spike"].knobs()["window"] == "15m"
    assert [s.type for s in ruleset.sinks] == ["stdout", "file"]


def test_the_most_specific_override_wins_whatever_its_order():
    ruleset = load_rules(
        {
            "rules": [
                {
                    "name": "d",
                    "type": "drift",
                    "metrics": ["error_rate"],
                    "overrides": [
                        {"adapter": "a1", "cohort": "smb", "min_effect": 0.03},
                        {"adapter": "a1", "min_effect": 0.02},
                        {"cohort": "smb", "min_effect": 0.01},
                    ],
                }
            ]
        }
    )
    rule = ruleset.rules[0]
    assert rule.knobs(adapter="a1", cohort="smb")["min_effect"] == 0.03
    assert rule.knobs(adapter="a1", cohort="enterprise")["min_effect"] == 0.02
    assert rule.knobs(adapter="a2", cohort="smb")["min_effect"] == 0.01
    assert rule.knobs(adapter="a2", cohort="enterprise")["min_effect"] == 0.02  # the default


MALFORMED = [
    pytest.param("rules:\n  - name: x\n    type: drift\n", 2, "rules/0", "'metrics' is required", id="missing-key"),
    pytest.param(
        "rules:\n  - name: x\n    type: drift\n    metrics: [error_rate]\n    windw: 5m\n",
        5,
        "rules/0/windw",
        "unknown key 'windw'",
        id="unknown-key",
    ),
    pytest.param(
        "rules:\n  - name: x\n    type: spike\n    metric: error_rate\n    window: 5 minutes\n",
        5,
        "rules/0/window",
        "not a duration",
        id="bad-duration",
    ),
    pytest.param(
        "defaults:\n  alpha: 2\nrules:\n  - {name: a, type: fallback, max_rate: 0.1}\n",
        2,
        "defaults/alpha",
        "greater than or equal to the maximum of 1",
        id="out-of-range",
    ),
    pytest.param(
        "sinks:\n  - type: webhook\n    timeout: 2s\nrules:\n  - {name: a, type: fallback, max_rate: 0.1}\n",
        2,
        "sinks/0",
        "exactly one of `url` or `url_env`",
        id="sink-without-url",
    ),
    pytest.param(
        "rules:\n  - {name: a, type: fallback, max_rate: 0.1}\n  - {name: a, type: fallback, max_rate: 0.2}\n",
        3,
        "rules/1/name",
        "used twice",
        id="duplicate-name",
    ),
    pytest.param("rules:\n  - {name: a, type: nope}\n", 2, "rules/0/type", "'nope' is not one of", id="bad-type"),
    pytest.param(
        "rules:\n  - {name: a, type: spike, metric: error_rate, window: 7m}\n",
        2,
        "rules/0/window",
        "not a whole number of the cell window 5m",
        id="window-off-grid",
    ),
    pytest.param(
        "rules:\n  - name: lat\n    type: slo\n    bad: latency\n    objective: 0.99\n",
        2,
        "rules/0",
        "'threshold_ms' is required",
        id="latency-slo-without-threshold",
    ),
    pytest.param(
        "rules:\n  - name: s\n    type: spike\n    metric: error_rate\n    overrides:\n"
        "      - adapter: a1\n        window: 30m\n",
        7,
        "rules/0/overrides/0/window",
        "unknown key 'window'",
        id="window-not-overridable",
    ),
    pytest.param("rules: [\n  {name: a\n", 3, "", "not valid YAML", id="bad-yaml"),
    pytest.param("- just\n- a list\n", 1, "(top level)", "a rules file is a mapping", id="not-a-mapping"),
]


@pytest.mark.parametrize(("text", "line", "key", "message"), MALFORMED)
def test_a_malformed_file_names_the_key_and_its_line(tmp_path, text, line, key, message):
    path = tmp_path / "alerts.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    error = str(caught.value)
    assert error.startswith(f"{path}:{line}: {key}"), error
    assert message in error


@pytest.mark.parametrize(("text", "line", "key", "message"), MALFORMED[:3])
def test_alert_check_exits_2_on_a_malformed_file(tmp_path, text, line, key, message):
    path = tmp_path / "alerts.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["alert", "check", "--store", str(tmp_path), "--rules", str(path)])
    assert result.exit_code == 2
    assert f"{path}:{line}: {key}" in result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_an_unknown_metric_is_reported_at_its_line_against_the_store(small_store, tmp_path):
    rules = tmp_path / "bad-metric.yaml"
    rules.write_text(
        "rules:\n  - name: d\n    type: drift\n    metrics:\n      - error_rate\n      - eval_pass:qualty\n",
        encoding="utf-8",
    )
    state = ["--state-dir", str(tmp_path / "state")]
    result = CliRunner().invoke(cli, ["alert", "check", "--store", str(small_store), "--rules", str(rules), *state])
    assert result.exit_code == 2
    assert f"{rules}:6: rules/0/metrics/1: unknown metric 'eval_pass:qualty'" in result.output
    assert "did you mean eval_pass:quality" in result.output


def test_durations():
    assert parse_duration("30s") == 30
    assert parse_duration("1.5h") == 5400
    with pytest.raises(ValueError, match="duration"):
        parse_duration("5 minutes")


def test_rule_types_get_their_own_defaults_unless_they_set_them():
    ruleset = load_rules(
        {
            "defaults": {"alpha": 0.01, "for": "15m"},
            "rules": [
                {"name": "d", "type": "drift", "metrics": ["error_rate"]},
                {"name": "s", "type": "spike", "metric": "error_rate"},
                {"name": "s2", "type": "spike", "metric": "error_rate", "alpha": 0.01, "window": "30m"},
                {"name": "f", "type": "fallback", "max_rate": 0.1},
            ],
        }
    )
    drift, spike, spike2, fallback = (r.knobs() for r in ruleset.rules)
    assert (drift["alpha"], drift["for"]) == (0.01, "0s")  # the family level; no persistence for a sequential test
    assert (spike["alpha"], spike["window"], spike["baseline"], spike["for"]) == (0.001, "15m", "24h", "15m")
    assert (spike2["alpha"], spike2["window"]) == (0.01, "30m")
    assert fallback["window"] == "1h"
