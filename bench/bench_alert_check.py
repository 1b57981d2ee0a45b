"""One ``loratrace alert check`` with 20 rules over a large store, end to end from the CLI (goal: at most 5 s).

    PYTHONPATH=$PWD .venv/bin/python bench/bench_alert_check.py --store /tmp/lt-bench-10m

The store is the 10-million-span one of ``bench/build_traffic_store.py`` (20 adapters x 10 cohorts x 24 h, a
planted 5-point eval-pass drop of ``ad03`` on ``c02`` from hour 12). The rules: 5 drift rules (anytime-valid,
over every adapter x cohort), 5 spike rules, 5 SLO burn-rate rules and 5 fallback limits; the alert state goes to
a temporary folder (the store is only read). Each run is a fresh process (start-up, imports and the scan
included). The first run is cold: no alert state, no cells cache, every span read. The next ones are the steady
state of a schedule: the cells of settled windows come from the cache and only the last hour or so is read.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RULES = """
sinks:
  - type: file
    path: {sink}
rules:
  - {{name: drift-quality, type: drift, metrics: ['eval_pass:quality']}}
  - {{name: drift-errors, type: drift, metrics: [error_rate]}}
  - {{name: drift-fallback, type: drift, metrics: [fallback_rate]}}
  - {{name: drift-schema, type: drift, metrics: [schema_retry_rate, schema_invalid_rate]}}
  - {{name: drift-latency, type: drift, metrics: [duration_ms], min_effect: 0.1, tuned_effect: 0.2}}
  - {{name: spike-errors, type: spike, metric: error_rate, window: 15m}}
  - {{name: spike-timeouts, type: spike, metric: timeout_rate, window: 15m}}
  - {{name: spike-fallback, type: spike, metric: fallback_rate, window: 30m}}
  - {{name: spike-schema, type: spike, metric: schema_invalid_rate, window: 30m}}
  - {{name: spike-quality, type: spike, metric: 'eval_pass:quality', window: 1h}}
  - {{name: slo-errors, type: slo, bad: errors, objective: 0.99}}
  - {{name: slo-errors-strict, type: slo, bad: errors, objective: 0.999}}
  - {{name: slo-latency-2s, type: slo, bad: latency, threshold_ms: 2000, objective: 0.99}}
  - {{name: slo-latency-5s, type: slo, bad: latency, threshold_ms: 5000, objective: 0.999}}
  - {{name: slo-latency-1s, type: slo, bad: latency, threshold_ms: 1000, objective: 0.9}}
  - {{name: fallback-5pct, type: fallback, max_rate: 0.05, window: 1h}}
  - {{name: fallback-10pct-15m, type: fallback, max_rate: 0.10, window: 15m}}
  - {{name: fallback-3pct-6h, type: fallback, max_rate: 0.03, window: 6h}}
  - {{name: fallback-c01, type: fallback, max_rate: 0.05, window: 1h, cohorts: [c01]}}
  - {{name: fallback-ad01, type: fallback, max_rate: 0.05, window: 1h, adapters: [ad01]}}
"""


def _run(command: list[str]) -> tuple[float, int, float, float]:
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        sys.stderr.write(process.stderr.read().decode() if process.stderr else "")
        msg = f"alert check failed with exit code {process.returncode}"
        raise SystemExit(msg)
    return elapsed, process.returncode, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="/tmp/lt-bench-10m")
    parser.add_argument("--now", default="2026-12-01T00:00:00Z", help="The check time (the store's end).")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from loratrace.store import query

    spans = query(args.store, "SELECT count(*) AS n FROM generations")["n"][0]
    with tempfile.TemporaryDirectory() as tmp:
        sink = Path(tmp) / "alerts.jsonl"
        rules = Path(tmp) / "alerts.yaml"
        rules.write_text(RULES.format(sink=sink), encoding="utf-8")
        command = [sys.executable, "-m", "loratrace", "alert", "check", "--store", args.store]
        command += ["--rules", str(rules), "--state-dir", str(Path(tmp) / "state"), "--now", args.now]
        runs = [_run(command) for _ in range(args.repeat)]
        notes = [json.loads(line) for line in sink.read_text().splitlines()] if sink.exists() else []
    seconds = [r[0] for r in runs]
    print(
        json.dumps(
            {
                "generations": int(spans),
                "rules": 20,
                "cold_s": round(seconds[0], 2),
                "warm_s": [round(s, 2) for s in seconds[1:]],
                "warm_median_s": round(statistics.median(seconds[1:]), 2) if len(seconds) > 1 else None,
                "cold_cpu_s": round(runs[0][3], 2),
                "warm_cpu_s": [round(r[3], 2) for r in runs[1:]],
                "load_average": round(os.getloadavg()[0], 1),
                "exit_codes": [r[1] for r in runs],
                "peak_rss_mib": round(max(r[2] for r in runs)),
                "opened": sorted(
                    {(n["rule"], n.get("adapter"), n.get("cohort")) for n in notes if n["status"] == "firing"}
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
