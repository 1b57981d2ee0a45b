"""The anytime-valid statistics against references: numerical integration of the mixture (scipy), the inversion
that defines the confidence sequence, numpy/scipy for the sufficient statistics, the definition of e-BH, and a
seeded brute-force simulation of continuous monitoring."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from loratrace.analysis import sequential


def _mixture_by_quadrature(delta: float, variance: float, tau: float, center: float) -> float:
    """The mixture likelihood ratio as the integral its closed form claims to solve."""
    info = 1.0 / variance
    s = delta * info

    def integrand(theta: float) -> float:
        return math.exp(theta * s - theta**2 * info / 2) * stats.norm.pdf(theta, loc=center, scale=tau)

    lo, hi = center - 12 * tau, center + 12 * tau
    peak = (s + center / tau**2) / (info + 1 / tau**2)
    value, _ = integrate.quad(integrand, lo, hi, points=[min(max(peak, lo), hi)], limit=200)
    return math.log(value)


@settings(max_examples=60, deadline=None)
@given(
    delta=st.floats(-0.08, 0.08),
    n=st.integers(30, 5000),
    tau=st.floats(0.005, 0.2),
    center=st.floats(-0.1, 0.1),
)
def test_closed_form_mixture_equals_numerical_integration(delta, n, tau, center):
    variance = 0.25 / n
    closed = float(sequential.normal_mixture_log_e_value(delta, variance, tau=tau, center=center))
    assert closed == pytest.approx(_mixture_by_quadrature(delta, variance, tau, center), rel=1e-6, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    delta=st.floats(-0.1, 0.1),
    n=st.integers(30, 5000),
    alpha=st.floats(0.001, 0.2),
    alternative=st.sampled_from(["two-sided", "less", "greater"]),
)
def test_confidence_sequence_is_the_set_the_test_does_not_reject(delta, n, alpha, alternative):
    variance = 0.2 / n
    center, tau = sequential.mixture(alternative, 0.05)
    low, high = sequential.normal_mixture_confidence_sequence(delta, variance, alpha=alpha, tau=tau, center=center)
    threshold = math.log(1 / alpha)

    def log_e(theta0: float) -> float:
        return float(sequential.normal_mixture_log_e_value(delta - theta0, variance, tau=tau, center=center))

    assert low < high
    assert log_e(float(low)) == pytest.approx(threshold, abs=1e-6)
    assert log_e(float(high)) == pytest.approx(threshold, abs=1e-6)
    assert log_e((low + high) / 2) < threshold
    assert log_e(float(low) - 1e-3) > threshold
    assert log_e(float(high) + 1e-3) > threshold


def test_symmetric_mixture_interval_is_johari_et_al_closed_form():
    # Johari, Pekelis & Walsh: delta ± sqrt(V (V + tau²)/tau² · (2 log(1/alpha) + log((V + tau²)/V)))
    delta, variance, tau, alpha = -0.031, 2.5e-4, 0.05, 0.01
    low, high = sequential.normal_mixture_confidence_sequence(delta, variance, alpha=alpha, tau=tau)
    half = math.sqrt(
        variance * (variance + tau**2) / tau**2 * (2 * math.log(1 / alpha) + math.log((variance + tau**2) / variance))
    )
    assert (float(low), float(high)) == pytest.approx((delta - half, delta + half), rel=1e-12)


def test_difference_statistics_of_means_match_numpy():
    rng = np.random.default_rng(7)
    base, adapter = rng.normal(800, 120, 400), rng.normal(830, 150, 250)
    b, a, d, v = sequential.difference_statistics(
        base.size, base.sum(), (base**2).sum(), adapter.size, adapter.sum(), (adapter**2).sum(), kind="mean"
    )
    assert float(b) == pytest.approx(base.mean())
    assert float(a) == pytest.approx(adapter.mean())
    assert float(d) == pytest.approx(adapter.mean() - base.mean())
    welch_var = base.var(ddof=1) / base.size + adapter.var(ddof=1) / adapter.size
    assert float(v) == pytest.approx(welch_var, rel=1e-9)
    # the same variance as scipy's Welch test uses: t = d / sqrt(v)
    t = stats.ttest_ind(adapter, base, equal_var=False).statistic
    assert float(d / np.sqrt(v)) == pytest.approx(t, rel=1e-9)


def test_difference_statistics_of_rates_use_agresti_caffo_pseudo_counts():
    _, _, d, v = sequential.difference_statistics(200, 200, 200, 150, 141, 141, kind="rate")
    pb, pa = 201 / 202, 142 / 152
    assert float(d) == pytest.approx(141 / 150 - 1.0)
    assert float(v) == pytest.approx(pb * (1 - pb) / 200 + pa * (1 - pa) / 150)
    _, _, _, missing = sequential.difference_statistics(0, 0, 0, 10, 5, 5, kind="rate")
    assert math.isnan(float(missing))


def _e_bh_by_definition(e: list[float], alpha: float) -> set[int]:
    m = len(e)
    best: set[int] = set()
    for k in range(1, m + 1):
        for chosen in itertools.combinations(range(m), k):
            if all(e[i] >= m / (alpha * k) for i in chosen) and len(chosen) > len(best):
                best = set(chosen)
    return best


@settings(max_examples=80, deadline=None)
@given(e=st.lists(st.floats(0, 400), min_size=1, max_size=7), alpha=st.sampled_from([0.05, 0.1, 0.2]))
def test_e_bh_rejects_the_largest_set_the_definition_allows(e, alpha):
    assert set(np.nonzero(sequential.e_bh(e, alpha))[0].tolist()) == _e_bh_by_definition(e, alpha)


def test_bonferroni_level_and_always_valid_p_value():
    assert sequential.bonferroni_level(0.05, 45) == pytest.approx(0.05 / 45)
    assert sequential.always_valid_p_value([-1.0, math.log(50), 0.0]).tolist() == pytest.approx([1.0, 0.02, 0.02])
    with pytest.raises(ValueError, match="alpha"):
        sequential.bonferroni_level(1.5, 3)
    with pytest.raises(ValueError, match="tuned_effect"):
        sequential.mixture("less", 0.0)


@pytest.mark.parametrize("alternative", ["two-sided", "less"])
def test_continuous_monitoring_keeps_false_alarms_below_alpha_where_fixed_tests_do_not(alternative):
    """Brute force: 4,000 null paths of 1,000 looks each; the mixture test may alarm in at most alpha of them."""
    rng = np.random.default_rng(2016)
    paths, looks, alpha = 4000, 1000, 0.1
    draws = rng.normal(0.0, 1.0, (paths, looks))  # one unit-variance observation of the difference per look
    n = np.arange(1, looks + 1)
    delta = draws.cumsum(axis=1) / n
    variance = 1.0 / n
    center, tau = sequential.mixture(alternative, 0.5)
    log_e = sequential.normal_mixture_log_e_value(delta, variance, tau=tau, center=center)
    mixture_rate = (log_e >= math.log(1 / alpha)).any(axis=1).mean()
    fixed_rate = (np.abs(delta / np.sqrt(variance)) >= stats.norm.ppf(1 - alpha / 2)).any(axis=1).mean()
    standard_error = math.sqrt(alpha * (1 - alpha) / paths)
    assert mixture_rate <= alpha + 3 * standard_error
    assert fixed_rate > 3 * alpha  # the peeking problem the sequential test exists to avoid
    # and it finds a real effect: a shift of 0.3 standard deviations is caught in almost every path
    shifted = (draws + 0.3 * (-1 if alternative == "less" else 1)).cumsum(axis=1) / n
    power = (
        (sequential.normal_mixture_log_e_value(shifted, variance, tau=tau, center=center) >= math.log(1 / alpha))
        .any(axis=1)
        .mean()
    )
    assert power > 0.99
