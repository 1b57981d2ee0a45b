"""Every statistic against scipy / statsmodels on the same numbers (hypothesis draws the numbers)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from loratrace.analysis import stats

counts = st.integers(min_value=5, max_value=5000).flatmap(
    lambda n: st.tuples(st.integers(min_value=1, max_value=n - 1), st.just(n))
)


@settings(max_examples=200, deadline=None)
@given(counts, counts)
def test_newcombe_interval_equals_statsmodels(first, second) -> None:
    (s1, n1), (s2, n2) = first, second
    low, high = stats.newcombe_difference_interval(s1, n1, s2, n2)
    ref_low, ref_high = confint_proportions_2indep(s1, n1, s2, n2, method="newcomb", compare="diff")
    assert low == pytest.approx(ref_low, abs=1e-10)
    assert high == pytest.approx(ref_high, abs=1e-10)


@settings(max_examples=200, deadline=None)
@given(counts, counts, st.sampled_from(["two-sided", "larger", "smaller"]))
def test_pooled_z_test_equals_statsmodels(first, second, alternative) -> None:
    (s1, n1), (s2, n2) = first, second
    ours = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}[alternative]
    p = stats.two_proportion_z_test(s1, n1, s2, n2, alternative=ours)
    _, ref = proportions_ztest([s1, s2], [n1, n2], alternative=alternative)
    assert p == pytest.approx(ref, abs=1e-10)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 8), st.integers(9, 20), st.integers(0, 8), st.integers(9, 20))
def test_small_counts_use_fisher_exact(s1, n1, s2, n2) -> None:
    p = stats.proportion_test(s1, n1, s2, n2, alternative="less")
    pooled = (s1 + s2) / (n1 + n2)
    if min(n1 * pooled, n1 * (1 - pooled), n2 * pooled, n2 * (1 - pooled)) < 5:
        ref = scipy_stats.fisher_exact([[s1, n1 - s1], [s2, n2 - s2]], alternative="less").pvalue
        assert p == pytest.approx(ref, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 2**31), st.integers(3, 300), st.integers(3, 300), st.sampled_from(["two-sided", "greater", "less"])
)
def test_welch_from_sufficient_statistics_equals_scipy(seed, n1, n2, alternative) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(10, 3, n1), rng.normal(10.5, 1, n2)
    m1, v1 = stats.mean_and_variance(n1, a.sum(), (a * a).sum())
    m2, v2 = stats.mean_and_variance(n2, b.sum(), (b * b).sum())
    p, low, high = stats.welch_test(m1, v1, n1, m2, v2, n2, alternative=alternative)
    ref = scipy_stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
    assert p == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-12)
    interval = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (low, high) == pytest.approx((interval.low, interval.high), rel=1e-6)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**31), st.integers(3, 300), st.sampled_from(["two-sided", "greater", "less"]))
def test_paired_t_equals_scipy(seed, n, alternative) -> None:
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, n)
    adapter = base + rng.normal(0.1, 0.5, n)
    d = adapter - base
    p, low, high = stats.paired_t_test(n, d.sum(), (d * d).sum(), alternative=alternative)
    ref = scipy_stats.ttest_rel(adapter, base, alternative=alternative)
    assert p == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-12)
    interval = scipy_stats.ttest_rel(adapter, base).confidence_interval(0.95)
    assert (low, high) == pytest.approx((interval.low, interval.high), rel=1e-6)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 60), st.integers(0, 60))
def test_mcnemar_exact_equals_statsmodels(b, c) -> None:
    p = stats.mcnemar_exact_test(b, c)
    ref = mcnemar([[10, b], [c, 10]], exact=True).pvalue
    assert p == pytest.approx(min(1.0, ref), abs=1e-12)


def test_agresti_min_interval_covers_at_the_nominal_rate() -> None:
    """Seeded coverage simulation: 2,000 paired samples of 300 with a 4-point true difference."""
    rng = np.random.default_rng(7)
    p_base, p_adapter, rho = 0.85, 0.81, 0.5
    covered = 0
    runs = 2000
    for _ in range(runs):
        shared = rng.random(300)
        own = rng.random(300)
        use_shared = rng.random(300) < rho
        u_base = np.where(use_shared, shared, rng.random(300))
        u_adapter = np.where(use_shared, shared, own)
        base, adapter = u_base < p_base, u_adapter < p_adapter
        b = int((adapter & ~base).sum())
        c = int((base & ~adapter).sum())
        low, high = stats.agresti_min_paired_interval(300, b, c)
        covered += bool(low <= p_adapter - p_base <= high)
    assert 0.93 <= covered / runs <= 0.97


def test_benjamini_hochberg_equals_statsmodels_and_skips_nan() -> None:
    p = np.array([0.01, np.nan, 0.04, 0.03, 0.2, 0.001])
    q = stats.benjamini_hochberg(p)
    finite = ~np.isnan(p)
    assert np.isnan(q[1])
    np.testing.assert_allclose(q[finite], multipletests(p[finite], method="fdr_bh")[1])


def test_wilson_equals_statsmodels() -> None:
    from statsmodels.stats.proportion import proportion_confint

    low, high = stats.wilson_interval([3, 50, 99], [10, 100, 100])
    ref = proportion_confint([3, 50, 99], [10, 100, 100], method="wilson")
    np.testing.assert_allclose(low, ref[0])
    np.testing.assert_allclose(high, ref[1])
