"""Spike detection quality and speed by seeded simulation, side by side with a per-window z-test at p < 0.05.

Null streams (no change) measure false alarms per adapter-week; streams with a planted 3x spike lasting four
windows measure power and how much of the spike the episode covers. The comparison is what a plain rolling
check does: every window against the mean of all earlier windows, one-sided z-test at p < 0.05, no volume
floor, no persistence, no minimum change.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_spikes.py
"""

from __future__ import annotations

import argparse
import sys
import time

import _common  # noqa: F401  (puts the repository root on sys.path, for tests.analysis)
import numpy as np
import polars as pl


def naive_flags(windows: pl.DataFrame) -> pl.DataFrame:
    """Every window against the plain mean of all earlier windows: one-sided z-test at p < 0.05 (z > 1.645)."""
    prior = pl.col("events").cum_sum().shift(1).over("adapter"), pl.col("n").cum_sum().shift(1).over("adapter")
    return (
        windows.sort("adapter", "window_start")
        .with_columns(prior_events=prior[0], prior_n=prior[1])
        .with_columns(p0=pl.col("prior_events") / pl.col("prior_n"), p=pl.col("events") / pl.col("n"))
        .with_columns(
            naive=(
                (pl.col("p") - pl.col("p0")) / (pl.col("p0") * (1 - pl.col("p0")) / pl.col("n")).sqrt() > 1.645
            ).fill_null(False)
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--windows", type=int, default=168)
    parser.add_argument("--traffic", type=int, default=100)
    args = parser.parse_args()
    from loratrace.analysis.spikes import spike_episodes, spike_windows
    from tests.analysis.spike_streams import stream_frame

    print(f"{args.streams} streams x {args.windows} hourly windows, Poisson({args.traffic}) generations per window")
    print("| base rate | stream | method | adapter-weeks with a flag | windows flagged | power | s per 1M rows |")
    print("|---|---|---|---|---|---|---|")
    for rate in (0.05, 0.01):
        for planted in (False, True):
            rates = np.full((args.streams, args.windows), rate)
            spike = range(100, 104)
            if planted:
                rates[:, spike] = 3 * rate
            generations = stream_frame(rates, traffic=args.traffic, seed=2026).collect()
            started = time.perf_counter()
            windows = spike_windows(generations.lazy(), metrics=["fallback_rate"]).collect()
            per_million = (time.perf_counter() - started) / (generations.height / 1e6)
            naive = naive_flags(windows)
            index = (naive["window_start"] - naive["window_start"].min()).dt.total_hours()
            in_spike = index.is_between(spike.start, spike.stop - 1)
            label = "3x for 4 windows" if planted else "null"
            for method, flags in (("loratrace spikes", windows["flagged"]), ("z-test p<0.05", naive["naive"])):
                frame = pl.DataFrame({"adapter": naive["adapter"], "flag": flags, "in_spike": in_spike})
                outside = frame.filter(~pl.col("in_spike") if planted else pl.lit(True))
                weeks = outside.group_by("adapter").agg(pl.col("flag").any())["flag"].mean()
                found = frame.filter("in_spike").group_by("adapter").agg(pl.col("flag").any())["flag"].mean()
                power = f"{found:.1%}" if planted else "-"
                timing = f"{per_million:.2f}" if method == "loratrace spikes" else "-"
                cells = [f"{rate:.0%}", label, method, f"{weeks:.1%}", f"{outside['flag'].mean():.3%}", power, timing]
                print(f"| {' | '.join(cells)} |")
            if planted:
                episodes = spike_episodes(windows.lazy()).collect()
                print(f"  (planted: median episode length {episodes['windows'].median()} windows of {len(spike)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
