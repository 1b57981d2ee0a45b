"""``loratrace drift`` over a large store from the CLI, side by side with the same computation in plain pandas.

    .venv/bin/python bench/build_traffic_store.py --store /tmp/lt-bench-10m     # once: 10M generation spans
    .venv/bin/python bench/bench_drift_10m.py --store /tmp/lt-bench-10m

The CLI runs as a user runs it (a fresh process, JSON out); its wall time and peak RSS are measured per run.
The pandas version computes the same cells in the obvious way — read the spans' and the evaluation events'
Parquet files, mark the arms, group by adapter × cohort × window, match base windows, then one test per row — and
its counts are checked against loratrace's rows so that the two did the same work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

METRIC = "eval_pass:quality"


def _run_cli_measured(store: str, metric: str) -> tuple[float, float, list[dict], float]:
    # os.wait4 gives this child's own peak RSS (communicate() would reap it first)
    exe = str(Path(sys.executable).with_name("loratrace"))
    out_path = Path(f"/tmp/drift-bench-{os.getpid()}.json")
    started = time.perf_counter()
    with open(out_path, "wb") as out:
        process = subprocess.Popen(
            [exe, "drift", "--store", store, "--metric", "error_rate", "--metric", metric, "--format", "json"],
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"loratrace drift exited with status {status}")
    rows = json.loads(out_path.read_text())
    out_path.unlink()
    return elapsed, usage.ru_maxrss / 1024, rows, usage.ru_utime + usage.ru_stime


def _pandas(store: str) -> tuple[float, float, object]:
    import resource

    import numpy as np
    import pandas as pd
    from scipy import stats

    from loratrace.store.readers import counted_files

    started = time.perf_counter()
    cpu_started = time.process_time()
    root = Path(store)
    spans = pd.concat(
        pd.read_parquet(
            f,
            columns=["operation_name", "start_time", "adapter_name", "adapter_id", "variant", "cohort", "route_name",
                     "error_type", "status_code"],
        )
        for f in counted_files(root, "spans")
    )  # fmt: skip
    spans = spans[spans["operation_name"].isin(["text_completion", "chat", "generate_content"])]
    adapter_arm = spans["adapter_name"].notna() & (spans["variant"].fillna("") != "base")
    spans["arm"] = np.where(adapter_arm, "adapter", "base")
    spans["adapter"] = spans["adapter_name"].where(adapter_arm)
    spans["window"] = spans["start_time"].dt.floor("h")
    spans["error"] = (spans["error_type"].notna() | (spans["status_code"] == "ERROR")).astype(float)
    events = pd.concat(
        pd.read_parquet(f, columns=["name", "time", "eval_name", "eval_passed", "adapter_name", "adapter_id",
                                    "variant", "cohort", "route_name"])
        for f in counted_files(root, "span_events")
    )  # fmt: skip
    events = events[(events["name"] == "gen_ai.evaluation.result") & (events["eval_name"] == "quality")]
    adapter_arm = events["adapter_name"].notna() & (events["variant"].fillna("") != "base")
    events["arm"] = np.where(adapter_arm, "adapter", "base")
    events["adapter"] = events["adapter_name"].where(adapter_arm)
    events["window"] = events["time"].dt.floor("h")
    events["value"] = events["eval_passed"].astype(float)
    rows = []
    for metric, frame, column in (("error_rate", spans, "error"), (METRIC, events, "value")):
        keys = ["cohort", "route_name", "window"]
        base = frame[frame["arm"] == "base"].groupby(keys)[column].agg(["count", "sum"]).reset_index()
        adapters = frame[frame["arm"] == "adapter"]
        adapters = adapters.groupby(["adapter", "adapter_id", *keys])[column].agg(["count", "sum"]).reset_index()
        matched = adapters.merge(base, on=keys, suffixes=("_a", "_b"))
        totals = matched.groupby(["adapter", "adapter_id", "cohort"])[["count_a", "sum_a", "count_b", "sum_b"]].sum()
        for (adapter, adapter_id, cohort), row in totals.iterrows():
            pa, pb = row["sum_a"] / row["count_a"], row["sum_b"] / row["count_b"]
            pooled = (row["sum_a"] + row["sum_b"]) / (row["count_a"] + row["count_b"])
            se = np.sqrt(pooled * (1 - pooled) * (1 / row["count_a"] + 1 / row["count_b"]))
            z = (pa - pb) / se if se > 0 else 0.0
            rows.append((adapter, adapter_id, cohort, metric, int(row["count_b"]), int(row["count_a"]),
                         float(stats.norm.sf(z))))  # fmt: skip
    result = pd.DataFrame(rows, columns=["adapter", "adapter_id", "cohort", "metric", "n_base", "n_adapter", "p"])
    elapsed = time.perf_counter() - started
    print(f"(pandas CPU {time.process_time() - cpu_started:.2f} s)")
    return elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="/tmp/lt-bench-10m")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from loratrace.store import query

    spans = query(args.store, "SELECT count(*) AS n FROM generations")["n"][0]
    print(f"store {args.store}: {spans:,} generation spans")
    runs = [_run_cli_measured(args.store, METRIC) for _ in range(args.repeats)]
    cli_seconds = statistics.median(r[0] for r in runs)
    cli_peak = max(r[1] for r in runs)
    cli_cpu = statistics.median(r[3] for r in runs)
    rows = runs[0][2]
    pandas_seconds, pandas_peak, reference = _pandas(args.store)
    ours = {(r["adapter"], r["adapter_id"], r["cohort"], r["metric"]): (r["n_base"], r["n_adapter"]) for r in rows}
    theirs = {(r.adapter, r.adapter_id, r.cohort, r.metric): (r.n_base, r.n_adapter) for r in reference.itertuples()}
    agree = all(ours.get(k) == v for k, v in theirs.items())
    regressed = [(r["adapter"], r["cohort"], r["metric"]) for r in rows if r["verdict"] == "regressed"]
    print(
        f"loratrace drift (CLI, fresh process): median {cli_seconds:.2f} s of {args.repeats}, "
        f"peak RSS {cli_peak:,.0f} MiB, CPU {cli_cpu:.2f} s"
    )
    print(f"plain pandas, same cells and tests:    {pandas_seconds:.2f} s, peak RSS {pandas_peak:,.0f} MiB")
    print(f"speed-up: {pandas_seconds / cli_seconds:.1f}x; {len(theirs)} rows, counts agree: {agree}")
    print(f"regressed rows: {regressed}")


if __name__ == "__main__":
    main()
