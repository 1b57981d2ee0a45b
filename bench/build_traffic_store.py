"""Build a large store of seeded generation spans through a real ``loratrace collect`` (for the analysis benchmarks).

    .venv/bin/python bench/build_traffic_store.py --store /tmp/lt-bench-10m

Defaults: 20 adapters x 10 cohorts (+ the base model on each cohort), 24 hours at 1,985 generations per arm
per cohort per hour = 10,003,200 generation spans, 10 % of them evaluated (one ``gen_ai.evaluation.result``
event each), one planted 5-point eval-pass drop (adapter ``ad03`` on cohort ``c02`` from hour 12) and one silent
weight swap (``ad07`` at hour 12). Worker processes generate consecutive hours with
``loratrace.demo.traffic.otlp_requests`` (the pieces are the records of the whole Traffic) and POST them to the
collector over keep-alive connections; the script ends when ``SELECT count(*) FROM spans`` returns them all,
then stops the collector with SIGTERM and prints one JSON line (spans, seconds, spans/s, the traffic settings).
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _common import free_port

START = datetime(2026, 11, 30, tzinfo=timezone.utc)


def bench_traffic(*, adapters: int, cohorts: int, hours: int, rate: int, eval_fraction: float):
    from loratrace.demo.traffic import Effect, Traffic

    names = tuple(f"ad{i:02d}" for i in range(1, adapters + 1))
    cohort_names = tuple(f"c{i:02d}" for i in range(1, cohorts + 1))
    midway = START + timedelta(hours=hours // 2)
    effects = ()
    swaps = ()
    if adapters >= 3 and cohorts >= 2:
        effects = (Effect(names[2], "eval_pass", -0.05, cohort=cohort_names[1], start=midway),)
    if adapters >= 7:
        swaps = ((names[6], midway),)
    return Traffic(
        start=START,
        duration=timedelta(hours=hours),
        requests_per_hour=rate,
        adapters=names,
        cohorts=cohort_names,
        effects=effects,
        swaps=swaps,
        seed=2026,
        eval_fraction=eval_fraction,
    )


def _send_hours(args: tuple) -> int:
    traffic, first_hour, hour_count, port = args
    from loratrace.demo.traffic import otlp_requests

    piece = dataclasses.replace(
        traffic, start=traffic.start + timedelta(hours=first_hour), duration=timedelta(hours=hour_count)
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    sent = 0
    for body in otlp_requests(piece, spans_per_request=512):
        while True:
            conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))  # the collector's back-pressure
        sent += 1
    conn.close()
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--adapters", type=int, default=20)
    parser.add_argument("--cohorts", type=int, default=10)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--rate", type=int, default=1985, help="generations per arm per cohort per hour")
    parser.add_argument("--eval-fraction", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.store.exists() and any(args.store.iterdir()):
        sys.exit(f"{args.store} is not empty; pick a new folder")
    traffic = bench_traffic(
        adapters=args.adapters, cohorts=args.cohorts, hours=args.hours, rate=args.rate, eval_fraction=args.eval_fraction
    )
    expected = args.hours * args.rate * args.cohorts * (args.adapters + 1)
    port, grpc_port = free_port(), free_port()
    loratrace = Path(sys.executable).with_name("loratrace")
    log = open(f"{args.store}.collector.log", "wb")  # noqa: SIM115 (closed below)
    collector = subprocess.Popen(
        [
            str(loratrace),
            "collect",
            "--store",
            str(args.store),
            "--http",
            f"127.0.0.1:{port}",
            "--grpc",
            f"127.0.0.1:{grpc_port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if json.loads(r.read())["status"] == "ok":
                        break
            except OSError:
                if time.monotonic() > deadline or collector.poll() is not None:
                    sys.exit("the collector did not start; see the .collector.log next to the store")
                time.sleep(0.2)
        started = time.perf_counter()
        # consecutive runs of hours per task, so each worker keeps one connection busy
        tasks = [(traffic, h, 1, port) for h in range(args.hours)]
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            requests = sum(pool.imap_unordered(_send_hours, tasks))
        sent = time.perf_counter() - started
        from loratrace.store import query

        while (count := query(args.store, "SELECT count(*) AS n FROM spans")["n"][0]) < expected:
            if time.perf_counter() - started > 3600:
                sys.exit(f"only {count} of {expected} spans visible after an hour")
            time.sleep(1.0)
        visible = time.perf_counter() - started
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(timeout=600)
        log.close()
    print(
        json.dumps(
            {
                "store": str(args.store),
                "spans": int(count),
                "requests": requests,
                "sent_s": round(sent, 1),
                "visible_s": round(visible, 1),
                "spans_per_s": round(count / visible),
                "adapters": args.adapters,
                "cohorts": args.cohorts,
                "hours": args.hours,
                "rate_per_arm_cohort_hour": args.rate,
                "eval_fraction": args.eval_fraction,
                "start": START.isoformat(),
            }
        )
    )


if __name__ == "__main__":
    main()
