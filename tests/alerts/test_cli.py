"""`loratrace alert check`, `alert watch` and `gate` from the command line, against real stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from loratrace.alerts.check import state_path
from loratrace.cli import cli
from loratrace.demo.traffic import Effect, Traffic, write_store

from .conftest import START

REPO = Path(__file__).resolve().parents[2]
DRIFT_RULES = "rules:\n  - {name: quality-drift, type: drift, metrics: ['eval_pass:quality'], for: 0s}\n"


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_alert_check_exit_codes(small_store, stream_store, tmp_path):
    rules = tmp_path / "alerts.yaml"
    rules.write_text(DRIFT_RULES, encoding="utf-8")
    state = ["--state-dir", str(tmp_path / "state")]  # the shared stores stay as built
    quiet = _invoke(
        "alert", "check", "--store", str(small_store), "--rules", str(rules), *state, "--now", "2026-03-02T02:00Z"
    )
    assert quiet.exit_code == 0, quiet.output
    assert "0 firing" in quiet.output
    firing = _invoke(
        "alert", "check", "--store", str(stream_store), "--rules", str(rules), *state, "--now", "2026-03-02T06:00Z"
    )
    assert firing.exit_code == 1, firing.output
    note = json.loads(firing.stdout.splitlines()[0])  # the default sink: JSON lines on stdout
    assert (note["status"], note["adapter"], note["cohort"]) == ("firing", "a1", "smb")
    assert note["query"]["command"].startswith("loratrace query eval_failures_by_cohort --store STORE")
    missing = _invoke("alert", "check", "--store", str(tmp_path / "nothing"), "--rules", str(rules))
    assert missing.exit_code == 2
    assert "is not a loratrace store" in missing.output
    assert not (tmp_path / "nothing").exists()  # no alert state created in a folder that is no store
    bad_now = _invoke("alert", "check", "--store", str(stream_store), "--rules", str(rules), *state, "--now", "later")
    assert bad_now.exit_code == 2
    assert "--now" in bad_now.output


def test_store_from_the_environment(small_store, tmp_path):
    rules = tmp_path / "alerts.yaml"
    rules.write_text(DRIFT_RULES, encoding="utf-8")
    result = CliRunner(env={"LORATRACE_STORE": str(small_store)}).invoke(
        cli, ["alert", "check", "--rules", str(rules), "--state-dir", str(tmp_path), "--now", "2026-03-02T02:00Z"]
    )
    assert result.exit_code == 0, result.output


def test_alert_watch_checks_on_schedule_and_stops_cleanly_on_sigterm(small_store, tmp_path):
    import shutil

    store = tmp_path / "store"
    shutil.copytree(small_store, store)
    rules = tmp_path / "alerts.yaml"
    rules.write_text(DRIFT_RULES, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "loratrace", "alert", "watch", "--store", str(store), "--rules", str(rules)]
    watch = subprocess.Popen(
        [*command, "--every", "1s"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        checks = 0
        while time.monotonic() < deadline and checks < 2:
            line = watch.stderr.readline()
            assert line, "alert watch ended early"
            checks += " condition(s) checked" in line
        assert checks == 2
        assert state_path(store).is_file()
        watch.send_signal(signal.SIGTERM)
        code = watch.wait(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
    rest = watch.stderr.read()
    assert code == 0, rest
    assert "alert watch: stopped" in rest
    assert "Traceback" not in rest


def test_alert_watch_keeps_the_last_good_rules_when_an_edit_breaks_them(small_store, tmp_path):
    rules = tmp_path / "alerts.yaml"
    rules.write_text(DRIFT_RULES, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "loratrace", "alert", "watch", "--store", str(small_store), "--rules", str(rules)]
    command += ["--state-dir", str(tmp_path / "state"), "--every", "1s"]
    watch = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen: list[str] = []

        def wait_for(text: str) -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                line = watch.stderr.readline()
                assert line, f"alert watch ended early: {seen}"
                seen.append(line)
                if text in line:
                    return
            raise AssertionError(f"no {text!r} in {seen}")

        wait_for("condition(s) checked")
        rules.write_text("rules:\n  - name: x\n    type: drift\n", encoding="utf-8")
        wait_for("(keeping the last good rules)")
        wait_for("condition(s) checked")  # the check still ran, on the previous rules
        watch.send_signal(signal.SIGTERM)
        assert watch.wait(timeout=60) == 0
    finally:
        if watch.poll() is None:
            watch.kill()
    assert any("'metrics' is required" in line for line in seen)


def test_alert_watch_rejects_a_bad_interval(small_store, tmp_path):
    rules = tmp_path / "alerts.yaml"
    rules.write_text(DRIFT_RULES, encoding="utf-8")
    result = _invoke("alert", "watch", "--store", str(small_store), "--rules", str(rules), "--every", "often")
    assert result.exit_code == 2
    assert "--every" in result.output


def test_gate_fails_on_the_regressed_cohort_with_its_interval(stream_store):
    result = _invoke("gate", "--store", str(stream_store), "--adapter", "a1", "--metric", "eval_pass:quality")
    assert result.exit_code == 1, result.output
    assert result.output.startswith("FAIL: a1 (sha256:")
    assert "regressed: cohort smb, eval_pass:quality:" in result.output
    assert "regressed: cohort enterprise" not in result.output
    as_json = _invoke(
        "gate", "--store", str(stream_store), "--adapter", "a1", "--metric", "eval_pass:quality", "--format", "json"
    )
    decision = json.loads(as_json.output)
    assert decision["decision"] == "FAIL"
    smb = next(r for r in decision["rows"] if r["cohort"] == "smb")
    assert smb["verdict"] == "regressed"
    assert smb["ci_high"] < 0
    assert f"[{smb['ci_low']:.4g}, {smb['ci_high']:.4g}]" in result.output


def test_gate_passes_an_unchanged_adapter(stream_store):
    result = _invoke(
        "gate",
        "--store",
        str(stream_store),
        "--adapter",
        "a1",
        "--cohort",
        "enterprise",
        "--metric",
        "eval_pass:quality",
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("PASS: a1")


def test_gate_refuses_to_pass_on_insufficient_data_unless_told(small_store):
    args = ["gate", "--store", str(small_store), "--adapter", "a2", "--metric", "eval_pass:quality", "--min-n", "500"]
    refused = _invoke(*args)
    assert refused.exit_code == 1
    assert "insufficient data: cohort smb, eval_pass:quality" in refused.output
    allowed = _invoke(*args, "--allow-insufficient")
    assert allowed.exit_code == 0, allowed.output
    assert "allowed: insufficient data" in allowed.output


def test_gate_bad_input_exits_2(small_store):
    unknown = _invoke("gate", "--store", str(small_store), "--adapter", "a9")
    assert unknown.exit_code == 2
    assert "no adapter 'a9'" in unknown.output
    metric = _invoke("gate", "--store", str(small_store), "--adapter", "a1", "--metric", "eval_pass:qualty")
    assert metric.exit_code == 2
    assert "--metric" in metric.output


@pytest.fixture(scope="module")
def replay_store(tmp_path_factory):
    """Golden-set replay: the same examples through the base and each adapter; a2 planted 30 points worse."""
    store = tmp_path_factory.mktemp("replay") / "store"
    traffic = Traffic(
        start=START,
        duration=timedelta(hours=1),
        requests_per_hour=150,
        design="paired",
        seed=9,
        effects=(Effect("a2", "eval_pass", -0.3),),
    )
    write_store(traffic, store)
    return store


def test_gate_on_golden_set_replay_uses_the_paired_design(replay_store):
    failed = _invoke(
        "gate",
        "--store",
        str(replay_store),
        "--adapter",
        "a2",
        "--traffic",
        "replay",
        "--metric",
        "eval_pass:quality",
        "--format",
        "json",
    )
    assert failed.exit_code == 1, failed.output
    decision = json.loads(failed.output)
    assert {r["design"] for r in decision["rows"]} == {"paired"}
    assert any("(paired," in reason for reason in decision["reasons"])
    passed = _invoke(
        "gate", "--store", str(replay_store), "--adapter", "a1", "--traffic", "replay", "--metric", "eval_pass:quality"
    )
    assert passed.exit_code == 0, passed.output


def test_alert_state_in_its_own_folder_leaves_the_store_untouched(stream_store, tmp_path):
    rules = tmp_path / "alerts.yaml"
    rules.write_text(DRIFT_RULES, encoding="utf-8")
    state = tmp_path / "state"
    before = sorted(p.name for p in stream_store.iterdir())
    args = ["--store", str(stream_store), "--rules", str(rules), "--state-dir", str(state)]
    first = _invoke("alert", "check", *args, "--now", "2026-03-02T06:00Z")
    assert first.exit_code == 1
    assert (state / "state.json").is_file()
    assert sorted(p.name for p in stream_store.iterdir()) == before
    again = _invoke("alert", "check", *args, "--now", "2026-03-02T06:05Z")
    assert again.exit_code == 1
    assert again.stdout == ""  # still firing, already notified: nothing on the stdout sink
