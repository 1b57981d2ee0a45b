""" "Which adapter served trace X" from the command line on a large store, side by side with its floors.

    .venv/bin/python bench/bench_adapter_for_trace.py --store /tmp/lt-bench-10m --runs 20

Each figure is the wall-clock time of a fresh process, median (and p90) of ``--runs`` runs, in one run of this
script so that the machine's load is shared alike:

* ``query adapter_for_trace``: ``loratrace query adapter_for_trace --param trace_id=T`` for random traces of
  the store (seeded reservoir sample), checking that the answer names the trace;
* ``sql select 1``: ``loratrace sql --store S "select 1"``, the baseline the issue names (~0.38 s before);
* ``python -c 'import duckdb'`` and ``python -c pass``: the floors of any DuckDB-backed command;
* in-process lookup: the query alone on an open connection (what remains after start-up).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _timed(args: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return elapsed, done.stdout


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_s": round(statistics.median(ordered), 4),
        "p90_s": round(ordered[max(0, int(0.9 * len(ordered)) - 1)], 4),
        "min_s": round(ordered[0], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    from loratrace.analysis.queries import get_query
    from loratrace.store.rows import fetch_rows, open_store

    _, rows = fetch_rows(
        args.store,
        f"SELECT trace_id FROM generations USING SAMPLE reservoir({args.runs} ROWS) REPEATABLE ({args.seed})",
    )
    traces = [row[0] for row in rows]
    _, count = fetch_rows(args.store, "SELECT count(*) FROM spans")
    loratrace = str(Path(sys.executable).with_name("loratrace"))
    python = sys.executable
    figures: dict[str, list[float]] = {
        "query adapter_for_trace": [],
        "sql select 1": [],
        "python -c 'import duckdb'": [],
        "python -c pass": [],
        "in-process lookup": [],
    }
    statement = get_query("adapter_for_trace").sql
    con = open_store(args.store)
    for trace in traces:  # interleaved, so that a burst of load on the machine hits every figure alike
        elapsed, out = _timed(
            [
                loratrace,
                "query",
                "adapter_for_trace",
                "--store",
                str(args.store),
                "--param",
                f"trace_id={trace}",
                "--format",
                "json",
            ]
        )
        answer = json.loads(out)
        if not answer or answer[0]["trace_id"] != trace or not answer[0]["base_model_name"]:
            sys.exit(f"adapter_for_trace did not answer for trace {trace}: {out}")
        figures["query adapter_for_trace"].append(elapsed)
        figures["sql select 1"].append(_timed([loratrace, "sql", "--store", str(args.store), "select 1"])[0])
        figures["python -c 'import duckdb'"].append(_timed([python, "-c", "import duckdb"])[0])
        figures["python -c pass"].append(_timed([python, "-c", "pass"])[0])
        started = time.perf_counter()
        con.execute(statement, {"trace_id": trace}).fetchall()
        figures["in-process lookup"].append(time.perf_counter() - started)
    con.close()
    print(
        json.dumps(
            {
                "store": str(args.store),
                "spans": int(count[0][0]),
                "runs": len(traces),
                **{name: _summary(values) for name, values in figures.items()},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
