"""An interrupted replay (SIGKILL mid-run, in a real subprocess) resumes with nothing lost and nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from loratrace.cli import cli
from loratrace.store import query

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = 16
MODELS = 3


def _golden(path: Path) -> Path:
    rows = [
        {
            "id": f"q{n:02d}",
            "cohort": ("smb", "enterprise")[n % 2],
            "prompt": f"Invoices {n} are due",
            "expected": "due",
        }
        for n in range(EXAMPLES)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _journal_lines(journal: Path) -> int:
    try:
        return journal.read_text(encoding="utf-8").count("\n")
    except FileNotFoundError:
        return 0


def test_sigkill_mid_run_then_resume(tiny_models, tmp_path):
    golden, store, journal = _golden(tmp_path / "golden.jsonl"), tmp_path / "store", tmp_path / "journal.jsonl"
    args = [
        "replay", "--dataset", str(golden), "--base", str(tiny_models.base),
        "--adapter", f"a1={tiny_models.adapters['a1']}", "--adapter", f"a2={tiny_models.adapters['a2']}",
        "--engine", "transformers", "--store", str(store), "--journal", str(journal), "--max-new-tokens", "8",
        "--chunk-size", "2", "--evaluator", "judges:slow", "--threads", "1", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(Path(__file__).parent)])}
    log = tmp_path / "replay.log"
    with open(log, "wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "loratrace", *args], env=env, stdout=output,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while _journal_lines(journal) < MODELS * 2:  # at least one chunk (2 examples x 3 models) is finished
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the replay never finished a chunk"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    finished_before = _journal_lines(journal)
    assert finished_before < EXAMPLES * MODELS, "the run ended before it could be interrupted"

    resumed = CliRunner().invoke(cli, args)
    assert resumed.exit_code == 0, resumed.output
    generated = sum(int(part.split()[-1]) for part in resumed.stdout.split("(")[1].split(")")[0].split(", "))
    assert 0 < generated <= EXAMPLES * MODELS - finished_before

    rows = query(
        store,
        "SELECT coalesce(adapter_name, 'base') AS served, example_id, count(*) AS n FROM generations GROUP BY ALL",
    )
    assert len(rows) == EXAMPLES * MODELS  # nothing lost
    assert set(rows["n"]) == {1}  # nothing twice
    evaluated = query(store, "SELECT count(DISTINCT span_id) AS n FROM evals WHERE name = 'slow'")
    assert evaluated["n"][0] == EXAMPLES * MODELS
