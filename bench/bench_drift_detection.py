"""Detection quality of ``loratrace drift`` by seeded simulation, side by side with uncorrected per-cell z-tests.

3 adapters × 5 cohorts × 3 rate metrics (45 cells), base pass rate 85 %, 2,000 requests per arm and cell. Null
runs: no true effect anywhere; effect runs: one cohort of one adapter drops 5 points on one metric. Both methods
see the same simulated counts in every run. loratrace's verdicts come from the real ``drift()`` on real cells
frames; the baseline is what common drift tools do: a two-sided z-test per cell at p < 0.05, no correction.

    .venv/bin/python bench/bench_drift_detection.py --runs 1000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl

from loratrace.analysis import metrics, stats
from loratrace.analysis.drift import drift

ADAPTERS = ("a1", "a2", "a3")
COHORTS = ("c1", "c2", "c3", "c4", "c5")
METRICS = [metrics.eval_metrics(name)[0] for name in ("m1", "m2", "m3")]


def _cells(rng: np.random.Generator, n: int, base_rate: float, effect: float | None) -> pl.DataFrame:
    rows = []
    for cohort in COHORTS:
        for metric in METRICS:
            rows.append((None, None, "base", cohort, metric.name, n, rng.binomial(n, base_rate)))
            for adapter in ADAPTERS:
                rate = base_rate
                if effect is not None and (adapter, cohort, metric.name) == ("a1", "c1", METRICS[0].name):
                    rate += effect
                rows.append((adapter, f"sha256:{adapter}", "adapter", cohort, metric.name, n, rng.binomial(n, rate)))
    frame = pl.DataFrame(
        rows, schema=["adapter", "adapter_id", "arm", "cohort", "metric", "n", "sum"], orient="row"
    ).with_columns(
        pl.col("sum").cast(pl.Float64),
        pl.col("sum").cast(pl.Float64).alias("sum_sq"),
        pl.lit("support").alias("route"),
        pl.lit("v1").alias("prompt_version"),
        pl.lit(None, dtype=pl.String).alias("quantization"),
        pl.lit("tiny").alias("base_model"),
        pl.lit(None, dtype=pl.Datetime("us")).alias("window_start"),
    )
    return frame


def _uncorrected(cells: pl.DataFrame) -> set[tuple[str, str, str]]:
    base = cells.filter(pl.col("arm") == "base").select(
        "cohort", "metric", pl.col("n").alias("nb"), pl.col("sum").alias("sb")
    )
    adapter = cells.filter(pl.col("arm") == "adapter").join(base, on=["cohort", "metric"])
    p = stats.two_proportion_z_test(adapter["sum"], adapter["n"], adapter["sb"], adapter["nb"])
    hit = adapter.filter(pl.Series(p < 0.05))
    return set(zip(hit["adapter"], hit["cohort"], hit["metric"], strict=True))


def _loratrace(cells: pl.DataFrame) -> tuple[set[tuple[str, str, str]], set[tuple[str, str, str]]]:
    rows = drift(cells, metrics=METRICS).filter(pl.col("cohort") != "(all)")
    regressed = rows.filter(pl.col("verdict") == "regressed")
    improved = rows.filter(pl.col("verdict") == "improved")
    key = ("adapter", "cohort", "metric")
    return (
        set(zip(*(regressed[k] for k in key), strict=True)),
        set(zip(*(improved[k] for k in key), strict=True)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--n", type=int, default=2000, help="requests per arm and cell")
    parser.add_argument("--seed", type=int, default=20261201)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    target = ("a1", "c1", METRICS[0].name)
    tally = {k: 0 for k in ("null_any_lt", "null_any_improved", "null_any_unc", "hit_lt", "hit_unc")}
    flags_lt = false_lt = flags_unc = false_unc = regressions = false_regressions = 0
    fdp_lt = fdp_unc = 0.0
    started = time.perf_counter()
    for _ in range(args.runs):
        null = _cells(rng, args.n, 0.85, None)
        regressed, improved = _loratrace(null)
        tally["null_any_lt"] += bool(regressed)
        tally["null_any_improved"] += bool(improved)
        tally["null_any_unc"] += bool(_uncorrected(null))
        effect = _cells(rng, args.n, 0.85, -0.05)
        regressed, improved = _loratrace(effect)
        flagged = regressed | improved
        tally["hit_lt"] += target in regressed
        flags_lt += len(flagged)
        false_lt += len(flagged - {target})
        regressions += len(regressed)
        false_regressions += len(regressed - {target})
        fdp_lt += len(regressed - {target}) / max(len(regressed), 1)
        unc = _uncorrected(effect)
        tally["hit_unc"] += target in unc
        flags_unc += len(unc)
        false_unc += len(unc - {target})
        fdp_unc += len(unc - {target}) / max(len(unc), 1)
    elapsed = time.perf_counter() - started
    runs = args.runs
    print(f"{runs} null runs and {runs} effect runs, 45 cells, n={args.n} per arm, base 85 %, drop 5 points")
    print(f"{'':44} {'loratrace drift':>16} {'uncorrected z':>14}")
    print(
        f"{'null runs raising any regression flag':44} {tally['null_any_lt'] / runs:16.1%} "
        f"{tally['null_any_unc'] / runs:14.1%}"
    )
    print(f"{'null runs with any improved verdict':44} {tally['null_any_improved'] / runs:16.1%} {'':>14}")
    print(
        f"{'effect runs flagging the planted drop':44} {tally['hit_lt'] / runs:16.1%} {tally['hit_unc'] / runs:14.1%}"
    )
    print(
        f"{'false share of regression flags (effect runs)':44} {false_regressions / max(regressions, 1):16.1%} "
        f"{false_unc / max(flags_unc, 1):14.1%}"
    )
    print(f"{'false discovery rate (mean share per run)':44} {fdp_lt / runs:16.1%} {fdp_unc / runs:14.1%}")
    print(f"{'false share of all verdicts but no_change':44} {false_lt / max(flags_lt, 1):16.1%} {'':>14}")
    print(f"({elapsed:.0f} s, {elapsed / (2 * runs) * 1000:.1f} ms per drift run)")


if __name__ == "__main__":
    main()
