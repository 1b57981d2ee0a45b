"""Sustained OTLP/HTTP ingest into the loratrace collector, measured until every span is queryable.

    .venv/bin/python bench/bench_collector_ingest.py --requests 400 --spans 512

A collector subprocess (fresh store, free loopback ports) and a separate load-generator process sending
batches
of 512 spans with 25 attributes each over keep-alive connections. Reports spans/s from the first request
to the
moment ``SELECT count(*) FROM spans`` returns them all, p50/p99 acknowledgement latency (ack = fsync'ed in the
write-ahead log), and peak RSS of the collector and its store-writer process. The baseline is the
OpenTelemetry
Collector's documented ~24,000 spans/s on 2 CPUs (its performance document; the Go binary cannot run here).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil
from _common import free_port

HERE = Path(__file__).resolve().parent
OTELCOL_DOCUMENTED_SPANS_PER_S = 24_000


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--collector-log", help="write the collector's debug log (flush timings) to this file")
    args = parser.parse_args()
    from loratrace.store import query

    log = open(args.collector_log, "w") if args.collector_log else None  # noqa: SIM115 (closed below)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        http_port, grpc_port = free_port(), free_port()
        loratrace_bin = str(Path(sys.executable).with_name("loratrace"))
        collector = subprocess.Popen(
            [
                loratrace_bin,
                "collect",
                "--store",
                str(store),
                "--http",
                f"127.0.0.1:{http_port}",
                "--grpc",
                f"127.0.0.1:{grpc_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log if args.collector_log else subprocess.DEVNULL,
            env={**os.environ, "LORATRACE_LOG_LEVEL": "DEBUG"} if args.collector_log else None,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=2) as r:
                    if json.loads(r.read())["status"] == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                collector.kill()
                raise SystemExit("collector did not start")
            time.sleep(0.1)
        proc = psutil.Process(collector.pid)
        # the store writer is the spawned child (the other one is multiprocessing's resource tracker)
        writer = next(c for c in proc.children() if "spawn_main" in " ".join(c.cmdline()))
        peak = {"collector": 0, "store_writer": 0}
        cpu_before = {"collector": _cpu(proc), "store_writer": _cpu(writer)}

        def sample_rss() -> None:
            peak["collector"] = max(peak["collector"], proc.memory_info().rss)
            with contextlib.suppress(psutil.NoSuchProcess):
                peak["store_writer"] = max(peak["store_writer"], writer.memory_info().rss)

        loadgen = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "otlp_loadgen.py"),
                "--url",
                f"http://127.0.0.1:{http_port}/v1/traces",
                "--requests",
                str(args.requests),
                "--spans",
                str(args.spans),
                "--connections",
                str(args.connections),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        # read its report while it runs: thousands of latencies overflow the pipe if read after it exits
        output: list[str] = []
        reader = threading.Thread(target=lambda: output.append(loadgen.stdout.read()))
        reader.start()
        loadgen_ps = psutil.Process(loadgen.pid)
        loadgen_cpu = 0.0
        while loadgen.poll() is None:
            sample_rss()
            with contextlib.suppress(psutil.NoSuchProcess):
                loadgen_cpu = _cpu(loadgen_ps)
            time.sleep(0.1)
        reader.join()
        result = json.loads(output[0])
        total = args.requests * args.spans
        while True:
            sample_rss()
            count = query(store, "SELECT count(*) AS n FROM spans")["n"][0]
            if count >= total:
                queryable = time.time()
                break
            time.sleep(0.05)
        cpu = {
            "collector": _cpu(proc) - cpu_before["collector"],
            "store_writer": _cpu(writer) - cpu_before["store_writer"],
        }
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=5) as r:
            health = json.loads(r.read())
        collector.send_signal(signal.SIGTERM)
        collector.wait(timeout=120)
    if log is not None:
        log.close()

    latencies = sorted(result["latencies"])
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    elapsed_acked = result["finished"] - result["started"]
    elapsed_queryable = queryable - result["started"]
    report = {
        "spans": total,
        "spans_per_request": args.spans,
        "connections": args.connections,
        "acked_spans_per_s": round(total / elapsed_acked),
        "queryable_spans_per_s": round(total / elapsed_queryable),
        "ack_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "ack_p99_ms": round(p99 * 1000, 2),
        "http_statuses": result["statuses"],
        "peak_rss_collector_mib": round(peak["collector"] / 2**20, 1),
        "peak_rss_store_writer_mib": round(peak["store_writer"] / 2**20, 1),
        "max_flush_ms": health["max_flush_ms"],
        # CPU seconds (user + system) from the first request until queryable; the loadgen's up to its exit
        "cpu_s_receiver": round(cpu["collector"], 2),
        "cpu_s_store_writer": round(cpu["store_writer"], 2),
        "cpu_s_loadgen": round(loadgen_cpu, 2),
        "elapsed_s": round(elapsed_queryable, 3),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))
    ratio = report["queryable_spans_per_s"] / OTELCOL_DOCUMENTED_SPANS_PER_S
    print(
        f"\nloratrace collector: {report['queryable_spans_per_s']:,} spans/s until queryable "
        f"(acknowledged at {report['acked_spans_per_s']:,}/s), ack p99 {report['ack_p99_ms']} ms\n"
        "OpenTelemetry Collector (documented, 2 CPUs, not run here): "
        f"~{OTELCOL_DOCUMENTED_SPANS_PER_S:,} spans/s "
        f"-> ratio {ratio:.2f}x; goal 100,000 spans/s with p99 < 50 ms"
    )


if __name__ == "__main__":
    main()
