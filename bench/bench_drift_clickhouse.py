"""Drift over a large store: the local store (Polars over the Parquet segments) vs the ClickHouse engine (chdb),
on the same spans, side by side in one run.

    .venv/bin/python bench/build_traffic_store.py --store /tmp/lt-bench-10m          # once (the 10M store)
    .venv/bin/python bench/bench_drift_clickhouse.py --store /tmp/lt-bench-10m --chdb /tmp/lt-bench-10m-chdb

The spans are copied once into chdb's ``otel_traces`` (loratrace's variant with the promoted columns
materialized, and, with ``--plain``, the exporter's own schema where every value is read from SpanAttributes);
the copy's time is reported apart. Then ``drift_for_source`` runs on each source in turn (rounds alternate the
order), and the rows of the two are checked equal, so both did the same work.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

METRICS = ("error_rate", "eval_pass:quality")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True)
    parser.add_argument("--chdb", required=True, help="chdb data folder (created; reused when it holds the copy)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--plain", action="store_true", help="also the exporter's own otel_traces schema")
    parser.add_argument("--metric", action="append", help=f"repeatable; default {', '.join(METRICS)}")
    args = parser.parse_args()

    import polars as pl
    from polars.testing import assert_frame_equal

    from loratrace.analysis.run import drift_for_source
    from loratrace.sources.clickhouse import ClickHouseSource
    from loratrace.sources.local import LocalStore
    from loratrace.store import query

    spans = query(args.store, "SELECT count(*) AS n FROM generations").item()
    tables = {"materialized": "otel_traces_loratrace", **({"plain": "otel_traces"} if args.plain else {})}
    sources = {"local": LocalStore(args.store)}
    loads = {}
    for variant, table in tables.items():
        source = ClickHouseSource(f"chdb://{args.chdb}?table={table}")
        present = source.frame("SELECT count() AS n FROM system.tables WHERE name = {t:String}", {"t": table}).item()
        if not present:
            source.create_table(materialized=variant == "materialized")
            started = time.perf_counter()
            source.load_store(args.store)
            loads[variant] = round(time.perf_counter() - started, 1)
        sources[variant] = source
    timings: dict[str, list[float]] = {name: [] for name in sources}
    rows: dict[str, pl.DataFrame] = {}
    for round_index in range(args.rounds):
        order = list(sources) if round_index % 2 == 0 else list(reversed(sources))
        for name in order:
            started = time.perf_counter()
            rows[name] = drift_for_source(sources[name], metric_names=args.metric or list(METRICS))
            timings[name].append(time.perf_counter() - started)
            print(json.dumps({"source": name, "round": round_index, "s": round(timings[name][-1], 2)}), flush=True)
    keys = ["adapter", "cohort", "metric", "design"]
    for name in sources:
        if name != "local":
            assert_frame_equal(rows["local"].sort(keys), rows[name].sort(keys), check_exact=False, rel_tol=1e-9)
    report = {
        "generation_spans": spans,
        "drift_rows": rows["local"].height,
        "median_s": {name: round(statistics.median(t), 2) for name, t in timings.items()},
        "copy_into_chdb_s": loads,
        "chdb_folder_bytes": sum(p.stat().st_size for p in Path(args.chdb).rglob("*") if p.is_file()),
        "store_segment_bytes": sum(p.stat().st_size for p in (Path(args.store) / "segments").rglob("*.parquet")),
    }
    print(json.dumps(report, indent=2))
    local = report["median_s"]["local"]
    for name in tables:
        print(f"drift, {name} ClickHouse (chdb) vs local Polars: {report['median_s'][name]} s vs {local} s")


if __name__ == "__main__":
    main()
