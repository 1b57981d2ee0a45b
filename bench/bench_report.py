"""``loratrace spikes`` and ``loratrace report`` on a large store from the CLI: wall time and peak memory.

    .venv/bin/python bench/build_traffic_store.py --store /tmp/lt-bench-10m     # once: 10M generation spans
    .venv/bin/python bench/bench_report.py --store /tmp/lt-bench-10m

Each command runs in a fresh process (imports included), as a user or a cron job runs it; the peak RSS is the
child's own (``os.wait4``). ``drift`` is timed alongside because the report computes it too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _measured(arguments: list[str]) -> tuple[float, float]:
    exe = str(Path(sys.executable).with_name("loratrace"))
    started = time.perf_counter()
    process = subprocess.Popen([exe, *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"loratrace {arguments[0]} exited with status {status}: {process.stderr.read()[-2000:]!r}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="/tmp/lt-bench-10m")
    parser.add_argument("--only", choices=["drift", "spikes", "report"], action="append", help="Run only these.")
    args = parser.parse_args()
    from loratrace.store import query

    spans = query(args.store, "SELECT count(*) AS n FROM generations")["n"][0]
    print(f"store {args.store}: {spans:,} generation spans")
    print("| command | wall s | peak RSS MiB |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        commands = {
            "loratrace drift --format json": ["drift", "--store", args.store, "--format", "json"],
            "loratrace spikes --format json": ["spikes", "--store", args.store, "--format", "json"],
            "loratrace report --html FILE": ["report", "--store", args.store, "--html", f"{folder}/report.html"],
        }
        for label, arguments in commands.items():
            if args.only and arguments[0] not in args.only:
                continue
            seconds, peak = _measured(arguments)
            print(f"| `{label}` | {seconds:.1f} | {peak:,.0f} |")
        page = Path(folder, "report.html")
        if page.exists():
            print(f"report page: {page.stat().st_size / 1024:,.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
