"""``loratrace doctor`` and the ``feedback`` view over the 10M-span store, side by side with their naive forms.

    .venv/bin/python bench/build_traffic_store.py --store /tmp/lt-bench-10m     # once: 10M generation spans
    .venv/bin/python bench/bench_outcomes_10m.py --store /tmp/lt-bench-10m

The store is read through a mirror folder (``--mirror``): its own catalog and schema segments, the data partitions
linked, so the benchmark never rewrites the catalog of a store someone else is using. Measured in one run:

* ``loratrace doctor --format json`` as a user runs it (fresh process): wall time and peak RSS;
* each check's query as shipped (generations read from ``spans`` by operation) against the same query over the
  ``generations`` view (whose per-span evaluation counts the checks never use);
* the ``feedback`` view as shipped (only the traces feedback names are joined) against the first form, which
  numbered every generation of the store to find each trace's last one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from loratrace import semconv
from loratrace.doctor import CHECKS, queries
from loratrace.store import ensure_store, query

FILES = {check: f"hygiene_{check}.sql" for check in CHECKS}
_OPERATIONS = "(" + ", ".join(f"'{op}'" for op in semconv.GENERATION_OPERATIONS) + ")"

# the feedback view's first form: a window over every generation to find each trace's last one
FEEDBACK_FIRST_FORM = (
    "WITH f AS (SELECT coalesce(attributes['loratrace.feedback.id'], span_id) AS feedback_id, "
    "attributes['loratrace.feedback.trace_id'] AS target_trace_id, "
    "attributes['loratrace.feedback.span_id'] AS target_span_id FROM spans WHERE name = 'loratrace.feedback'), "
    "g AS (SELECT *, row_number() OVER (PARTITION BY trace_id ORDER BY end_time_unix_nano DESC, span_id) "
    "AS from_last FROM generations) "
    "SELECT count(*) FROM f LEFT JOIN g AS exact ON exact.trace_id = f.target_trace_id "
    "AND exact.span_id = f.target_span_id LEFT JOIN g AS last ON last.trace_id = f.target_trace_id "
    "AND last.from_last = 1"
)


def mirror(source: Path, target: Path) -> Path:
    """A store folder of its own whose data partitions are links to ``source``'s."""
    target.mkdir(parents=True, exist_ok=True)
    for table_dir in sorted((source / "segments").iterdir()):
        (target / "segments" / table_dir.name).mkdir(parents=True, exist_ok=True)
        for partition in sorted(table_dir.iterdir()):
            link = target / "segments" / table_dir.name / partition.name
            if partition.name != "date=1970-01-01" and not link.exists():  # the schema partition is the mirror's own
                link.symlink_to(partition)
    return ensure_store(target)


def timed(store: Path, sql: str, params: dict | None, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        query(store, sql, params)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def doctor_cli(store: Path) -> tuple[float, float, int]:
    exe = str(Path(sys.executable).with_name("loratrace"))
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        process = subprocess.Popen([exe, "doctor", "--store", str(store), "--format", "json"], stdout=sink, stderr=sink)
        _, status, usage = os.wait4(process.pid, 0)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="/tmp/lt-bench-10m")
    parser.add_argument("--mirror", default="/tmp/lt-bench-10m-outcomes")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    store = mirror(Path(args.store), Path(args.mirror))
    spans = query(store, "SELECT count(*) AS n FROM spans")["n"][0]
    print(f"store: {spans:,} spans (mirror of {args.store})")

    walls = [doctor_cli(store) for _ in range(args.repeats)]
    print(
        f"loratrace doctor (fresh process, all checks): median {statistics.median(w for w, _, _ in walls):.2f} s, "
        f"peak RSS {max(r for _, r, _ in walls):.0f} MB, exit {walls[0][2]}"
    )
    params = {"since": None, "until": None, "window_seconds": 3600, "min_share_ratio": 0.25}
    print("check                    shipped (spans)   over the generations view")
    for check, file in FILES.items():
        loaded = queries.load(file)
        bound = loaded.bind(params)
        shipped_from = f"FROM spans\n    WHERE operation_name IN {_OPERATIONS}\n      AND "
        naive = loaded.sql.replace(shipped_from, "FROM generations\n    WHERE ")
        if naive == loaded.sql:
            raise SystemExit(f"{file}: the generations-view form could not be derived")
        shipped_s = timed(store, loaded.sql, bound, args.repeats)
        naive_s = timed(store, naive, bound, 1)
        print(f"{check:24} {shipped_s:8.2f} s        {naive_s:8.2f} s")
    shipped_feedback = timed(store, "SELECT count(*) FROM feedback", None, args.repeats)
    first_feedback = timed(store, FEEDBACK_FIRST_FORM, None, 1)
    print(f"feedback view: shipped {shipped_feedback:.2f} s, first form {first_feedback:.2f} s")


if __name__ == "__main__":
    main()
