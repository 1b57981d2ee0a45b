"""Three loratrace collectors writing one store vs one collector: spans per second until queryable, same run.

    .venv/bin/python bench/bench_several_collectors.py --requests 240 --spans 512 --rounds 2

Each configuration gets a fresh store and the same load generator (``otlp_loadgen.py``, the same prepared
bodies, the same number of keep-alive connections, spread over the collectors as a load-balancing exporter
would). The clock runs from the first request until ``SELECT count(*) FROM spans`` on the shared store returns
every span. Rounds alternate the configurations so that the machine's drift affects both.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import free_port

HERE = Path(__file__).resolve().parent


def _start(store: Path, writer_id: str) -> tuple[subprocess.Popen[bytes], int]:
    http_port, grpc_port = free_port(), free_port()
    exe = str(Path(sys.executable).with_name("loratrace"))
    args = [exe, "collect", "--store", str(store), "--writer-id", writer_id]
    args += ["--http", f"127.0.0.1:{http_port}", "--grpc", f"127.0.0.1:{grpc_port}"]
    process = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=2) as response:
                if json.loads(response.read())["status"] == "ok":
                    return process, http_port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("a collector did not start")


def run(collectors: int, *, requests: int, spans: int, connections: int) -> dict:
    from loratrace.store import query

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        started = [_start(store, str(i)) for i in range(collectors)]
        urls = [arg for _, port in started for arg in ("--url", f"http://127.0.0.1:{port}/v1/traces")]
        command = [sys.executable, str(HERE / "otlp_loadgen.py"), *urls]
        command += ["--requests", str(requests), "--spans", str(spans), "--connections", str(connections)]
        loadgen = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(loadgen.stdout)
        total = requests * spans
        while query(store, "SELECT count(*) AS n FROM spans")["n"][0] < total:
            time.sleep(0.05)
        queryable = time.time()
        for process, _ in started:
            process.send_signal(signal.SIGTERM)
        for process, _ in started:
            process.wait(timeout=120)
    latencies = sorted(result["latencies"])
    return {
        "collectors": collectors,
        "spans": total,
        "acked_spans_per_s": round(total / (result["finished"] - result["started"])),
        "queryable_spans_per_s": round(total / (queryable - result["started"])),
        "ack_p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--connections", type=int, default=6, help="divisible by 3: as many per collector")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: dict[int, list[dict]] = {1: [], 3: []}
    for round_index in range(args.rounds):
        order = (1, 3) if round_index % 2 == 0 else (3, 1)
        for collectors in order:
            outcome = run(collectors, requests=args.requests, spans=args.spans, connections=args.connections)
            results[collectors].append(outcome)
            print(json.dumps(outcome), flush=True)
    one = statistics.median(r["queryable_spans_per_s"] for r in results[1])
    three = statistics.median(r["queryable_spans_per_s"] for r in results[3])
    print(
        f"\nmedian spans/s until queryable: one collector {one:,.0f}, three collectors on one store {three:,.0f} "
        f"-> ratio {three / one:.2f}x (cpus: {os.cpu_count()})"
    )


if __name__ == "__main__":
    main()
