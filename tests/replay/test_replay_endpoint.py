"""``loratrace replay --endpoint``: the spans go over OTLP/HTTP to a real ``loratrace collect`` on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from click.testing import CliRunner

from loratrace.cli import cli
from loratrace.store import query
from tests.support.ports import free_port


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return json.loads(response.read()).get("status") == "ok"
    except OSError:
        return False


def test_replay_to_a_collector(tiny_models, tmp_path):
    store, http, grpc = tmp_path / "store", free_port(), free_port()
    log = tmp_path / "collector.log"
    args = [sys.executable, "-m", "loratrace", "collect", "--store", str(store), "--http", f"127.0.0.1:{http}",
            "--grpc", f"127.0.0.1:{grpc}"]  # fmt: skip
    with open(log, "wb") as output:
        collector = subprocess.Popen(args, env=dict(os.environ), stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + 120
        while not _healthy(url):
            assert collector.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the collector never became healthy"
            time.sleep(0.1)
        golden = tmp_path / "golden.jsonl"
        rows = [
            {"id": f"x{n}", "cohort": "smb", "prompt": f"Invoices {n} are due", "expected": "due"} for n in range(3)
        ]
        golden.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        result = CliRunner().invoke(
            cli,
            ["replay", "--dataset", str(golden), "--base", str(tiny_models.base), "--adapter",
             f"a1={tiny_models.adapters['a1']}", "--engine", "transformers", "--endpoint", url, "--journal",
             str(tmp_path / "journal.jsonl"), "--max-new-tokens", "4", "--threads", "1", "--no-progress"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        # acknowledged by the collector before the journal was written: all six pairs are journaled
        assert (tmp_path / "journal.jsonl").read_text(encoding="utf-8").count("\n") == 6
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(timeout=120)
    found = query(
        store,
        "SELECT coalesce(adapter_name, 'base') AS served, example_id, cohort, evals FROM generations ORDER BY 2, 1",
    )
    assert found.select("served", "example_id").rows() == [
        (served, f"x{n}") for n in range(3) for served in ("a1", "base")
    ]
    assert set(found["cohort"]) == {"smb"}
    assert (found["evals"] == 2).all()  # refusal and expected_match on each answer
    # each model's three examples were one padded generate, and each is still a span of its own
    sizes = query(
        store, "SELECT DISTINCT attributes['loratrace.batch.size'] AS size FROM spans WHERE operation_name IS NOT NULL"
    )
    assert sizes["size"].to_list() == ["3"]


def test_a_collector_that_is_not_there_stops_the_replay_with_nothing_journaled(tiny_models, tmp_path):
    golden = tmp_path / "golden.jsonl"
    golden.write_text(json.dumps({"id": "x", "prompt": "Invoices are due"}) + "\n", encoding="utf-8")
    journal = tmp_path / "journal.jsonl"
    os.environ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] = "2"
    try:
        result = CliRunner().invoke(
            cli,
            ["replay", "--dataset", str(golden), "--base", str(tiny_models.base), "--engine", "transformers",
             "--endpoint", f"http://127.0.0.1:{free_port()}", "--journal", str(journal), "--max-new-tokens", "2",
             "--no-progress"],
        )  # fmt: skip
    finally:
        del os.environ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"]
    assert result.exit_code == 1
    assert "could not be written" in result.output
    assert "running the same command again resumes" in result.output
    assert not journal.exists()
