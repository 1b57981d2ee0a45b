"""spikes, latency and adapters over a large store: the local store vs the ClickHouse engine (chdb) on the same spans.

\b
    nice .venv/bin/python bench/bench_commands_clickhouse.py --store /tmp/lt-bench-10m --chdb /tmp/lt-bench-10m-chdb

The chdb folder must already hold the copy (``bench/bench_drift_clickhouse.py`` makes it). Each command's one pass
runs where the spans are (DuckDB or Polars for the store, ClickHouse for chdb); rounds alternate the engines and
the median of the warm rounds is reported with the first (cold) round, and the rows each side returned.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any


def _commands() -> dict[str, Callable[[Any], int]]:
    from loratrace.analysis import inventory, latency
    from loratrace.analysis.spike_run import run_spikes

    def spikes(source: Any) -> int:
        return run_spikes(source, window=timedelta(hours=1)).windows.height

    def latency_tables(source: Any) -> int:
        window = {"since": None, "until": None}
        return latency.store_percentiles(source, **window).height + latency.store_counts(source, **window).height

    def adapters(source: Any) -> int:
        return inventory.store_cells(source, since=None, until=None).collect().height

    return {"spikes": spikes, "latency": latency_tables, "adapters": adapters}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--chdb", required=True, help="chdb data folder holding otel_traces_loratrace")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from loratrace.sources import ClickHouseSource, LocalStore

    sources = {
        "local store": LocalStore(args.store),
        "ClickHouse (chdb, materialized)": ClickHouseSource(f"chdb://{args.chdb}?table=otel_traces_loratrace"),
    }
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    for command, run in _commands().items():
        times: dict[str, list[float]] = {name: [] for name in sources}
        rows: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, source in sources.items():
                started = time.perf_counter()
                rows[name] = run(source)
                times[name].append(time.perf_counter() - started)
        for name in sources:
            warm = times[name][1:] or times[name]
            print(
                f"{command:9s} {name:34s} warm median {statistics.median(warm):6.2f} s  "
                f"cold {times[name][0]:6.2f} s  rows {rows[name]}"
            )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    for source in sources.values():
        source.close()


if __name__ == "__main__":
    main()
