"""Scheduled drift checks by seeded simulation: the mixture SPRT next to fixed-sample z-tests re-run at every check.

A simulated week of checks every 5 minutes over 3 adapters × 5 cohorts × 3 rate metrics (45 cells; one base arm
per cohort, shared by the three adapters as in production), base pass rate 85 %, Poisson arrivals at
``--rate`` requests per hour per arm. Alerts are for regressions (the adapter's pass rate lower). Two scenarios:

* null: no true effect; the share of weeks in which any of the 45 cells alarms at any check;
* drift: a 5-point drop in one cohort of one metric of one adapter from its first traffic; the share of runs that
  alarm on that cell, and the median and 90th percentile time to the alarm.

Compared in the same run, on the same simulated streams:

* ``msprt``: loratrace's check (:mod:`loratrace.analysis.sequential`): the normal-mixture SPRT tuned for a
  ``--tuned-effect`` decrease, Bonferroni over the 45 cells at ``--alpha``;
* ``msprt two-sided``: the symmetric mixture (``tau = tuned effect``), same correction;
* ``z re-run``: a fixed-sample two-proportion z-test (pooled) at p < 0.05 re-run at every check on all data so
  far, uncorrected, as common drift tools do; and the same with Bonferroni over the 45 cells.

Then the rolling-window spike check of the alert rules (:mod:`loratrace.alerts.windows`) on null weeks of error
rate, with and without persistence (``for``) and hold-down (``keep_firing_for``): notifications per week.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_sequential.py --runs 1000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from loratrace.analysis import sequential

CHECKS_PER_HOUR = 12
WEEK_CHECKS = 7 * 24 * CHECKS_PER_HOUR
ADAPTERS, COHORTS, METRICS = 3, 5, 3


def _stream(rng: np.random.Generator, runs: int, rate: float, drop: float) -> dict[str, np.ndarray]:
    """Cumulative counts per check: base arm (runs, checks, cohorts, metrics), adapters (runs, checks, A, C, M)."""
    lam = rate / CHECKS_PER_HOUR
    n_base = rng.poisson(lam, (runs, WEEK_CHECKS, COHORTS))
    n_adp = rng.poisson(lam, (runs, WEEK_CHECKS, ADAPTERS, COHORTS))
    p_adp = np.full((ADAPTERS, COHORTS, METRICS), 0.85)
    p_adp[0, 0, 0] -= drop
    s_base = rng.binomial(n_base[..., None], 0.85, (runs, WEEK_CHECKS, COHORTS, METRICS))
    s_adp = rng.binomial(n_adp[..., None], p_adp, (runs, WEEK_CHECKS, ADAPTERS, COHORTS, METRICS))
    n_base_c = np.broadcast_to(n_base.cumsum(1)[:, :, None, :, None], s_adp.shape)
    s_base_c = np.broadcast_to(s_base.cumsum(1)[:, :, None, :, :], s_adp.shape)
    n_adp_c = np.broadcast_to(n_adp.cumsum(1)[..., None], s_adp.shape)
    return {"nb": n_base_c, "sb": s_base_c, "na": n_adp_c, "sa": s_adp.cumsum(1)}


def _alarms(counts: dict[str, np.ndarray], *, alpha: float, tuned_effect: float, min_n: int) -> dict[str, np.ndarray]:
    """Boolean alarm arrays (runs, checks, A, C, M) for each method."""
    nb, sb, na, sa = counts["nb"], counts["sb"], counts["na"], counts["sa"]
    _, _, delta, var = sequential.difference_statistics(nb, sb, sb, na, sa, sa, kind="rate")
    enough = (nb >= min_n) & (na >= min_n)
    level = sequential.bonferroni_level(alpha, ADAPTERS * COHORTS * METRICS)
    out = {}
    for name, alternative in (("msprt", "less"), ("msprt two-sided", "two-sided")):
        center, tau = sequential.mixture(alternative, tuned_effect)
        _, high = sequential.normal_mixture_confidence_sequence(delta, var, alpha=level, tau=tau, center=center)
        out[name] = enough & (high < 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (sb + sa) / (nb + na)
        z = (sa / na - sb / nb) / np.sqrt(pooled * (1 - pooled) * (1 / nb + 1 / na))
    out["z re-run p<0.05"] = enough & (z < stats.norm.ppf(0.025))
    out["z re-run Bonferroni"] = enough & (z < stats.norm.ppf(level / 2))
    return out


def _first_alarm_hours(alarm: np.ndarray) -> np.ndarray:
    """Hours to the first alarm per run (inf when none); ``alarm`` is (runs, checks)."""
    hit = alarm.any(1)
    return np.where(hit, (alarm.argmax(1) + 1) / CHECKS_PER_HOUR, np.inf)


def simulate_drift(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    methods = ("msprt", "msprt two-sided", "z re-run p<0.05", "z re-run Bonferroni")
    null_weeks = {m: 0 for m in methods}
    times: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    other_cells = {m: 0 for m in methods}
    started = time.perf_counter()
    done = 0
    while done < args.runs:
        chunk = min(args.chunk, args.runs - done)
        null = _alarms(_stream(rng, chunk, args.rate, 0.0), alpha=args.alpha, tuned_effect=args.tuned_effect, min_n=30)
        for m in methods:
            null_weeks[m] += int(null[m].any(axis=(1, 2, 3, 4)).sum())
        del null
        drift = _alarms(
            _stream(rng, chunk, args.rate, args.drop), alpha=args.alpha, tuned_effect=args.tuned_effect, min_n=30
        )
        for m in methods:
            times[m].append(_first_alarm_hours(drift[m][:, :, 0, 0, 0]))
            rest = drift[m].copy()
            rest[:, :, 0, 0, 0] = False
            other_cells[m] += int(rest.any(axis=(1, 2, 3, 4)).sum())
        del drift
        done += chunk
    elapsed = time.perf_counter() - started
    print(
        f"{args.runs} simulated weeks per scenario, checks every 5 min ({WEEK_CHECKS} checks), "
        f"{ADAPTERS}x{COHORTS}x{METRICS} cells, {args.rate:g} requests/h/arm, base 85 %, alpha {args.alpha}, "
        f"tuned effect {args.tuned_effect}; {elapsed:.0f} s"
    )
    print(
        "| method | null weeks with any alert | drift found | median h to alert | p90 h to alert | "
        "drift weeks with another cell alerting |"
    )
    print("|---|---|---|---|---|---|")
    for m in methods:
        t = np.concatenate(times[m])
        found = np.isfinite(t).mean()
        print(
            f"| {m} | {null_weeks[m] / args.runs:.1%} | {found:.1%} | {np.median(t):.1f} | "
            f"{np.quantile(t, 0.9):.1f} | {other_cells[m] / args.runs:.1%} |"
        )


def simulate_spikes(args: argparse.Namespace) -> None:
    """Null weeks of a 1 % error rate through the spike rule, with and without persistence and hold-down."""
    from loratrace.alerts import windows

    rng = np.random.default_rng(args.seed + 1)
    cells = ADAPTERS * COHORTS
    window_checks, baseline_checks = 3, 24 * CHECKS_PER_HOUR  # 15-minute window, 24-hour baseline
    lam = args.spike_rate / CHECKS_PER_HOUR
    n = rng.poisson(lam, (args.spike_runs, WEEK_CHECKS + baseline_checks, cells))
    bad = rng.binomial(n, 0.01)
    firing = windows.spike_condition_path(
        n,
        bad,
        window_checks=window_checks,
        baseline_checks=baseline_checks,
        factor=3.0,
        min_delta=0.02,
        min_volume=100,
        alpha=0.001,
    )[:, baseline_checks:]
    print(
        f"\nspike rule on null weeks: 1 % error rate, {args.spike_rate:g} requests/h per adapter x cohort "
        f"({cells} cells), 15-min window vs the 24 h before, volume floor 100, factor 3, +2 points, p < 0.001; "
        f"{args.spike_runs} weeks"
    )
    print("| persistence (for) / hold-down (keep_firing_for) | notifications per week (mean) | weeks with any |")
    print("|---|---|---|")
    for hold_for, keep in ((0, 0), (2, 0), (2, 6), (3, 6)):
        opened = windows.notifications(firing, for_checks=hold_for, keep_firing_checks=keep)
        per_week = opened.sum(axis=(1, 2))
        print(f"| {hold_for * 5} min / {keep * 5} min | {per_week.mean():.3f} | {(per_week > 0).mean():.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="Simulated weeks per scenario.")
    parser.add_argument("--chunk", type=int, default=20, help="Weeks simulated at once (memory bound).")
    parser.add_argument("--rate", type=float, default=100.0, help="Requests per hour per arm and cohort.")
    parser.add_argument("--drop", type=float, default=0.05, help="The planted drop of one cell's pass rate.")
    parser.add_argument("--alpha", type=float, default=0.05, help="Family-wise false-alarm level of the rule set.")
    parser.add_argument("--tuned-effect", type=float, default=0.05, help="The effect the mixture is tuned for.")
    parser.add_argument("--spike-runs", type=int, default=200, help="Simulated null weeks for the spike rule.")
    parser.add_argument("--spike-rate", type=float, default=1000.0, help="Requests per hour per spike cell.")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    simulate_drift(args)
    simulate_spikes(args)


if __name__ == "__main__":
    main()
