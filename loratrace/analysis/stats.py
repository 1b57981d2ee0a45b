"""The statistics the analyses use, one function per method, vectorised over numpy arrays.

Each function is named after its method and cites it; the distributions, the Wilson interval and the
Benjamini–Hochberg correction come from scipy and statsmodels rather than hand-written numerics. The tests compare
every function with scipy / statsmodels on the same numbers (tests/analysis/test_stats.py).

``alternative`` follows scipy: ``"greater"`` tests whether the first group's parameter exceeds the second's,
``"less"`` the reverse, ``"two-sided"`` either.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import stats as _scipy
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

Alternative = Literal["two-sided", "greater", "less"]
FloatArray = np.ndarray


def _arrays(*values: object) -> list[np.ndarray]:
    return [np.asarray(v, dtype=float) for v in values]


def _tail(z: np.ndarray, alternative: Alternative) -> np.ndarray:
    if alternative == "greater":
        return _scipy.norm.sf(z)
    if alternative == "less":
        return _scipy.norm.cdf(z)
    return 2 * _scipy.norm.sf(np.abs(z))


def _t_tail(t: np.ndarray, df: np.ndarray, alternative: Alternative) -> np.ndarray:
    if alternative == "greater":
        return _scipy.t.sf(t, df)
    if alternative == "less":
        return _scipy.t.cdf(t, df)
    return 2 * _scipy.t.sf(np.abs(t), df)


def wilson_interval(successes: object, n: object, *, alpha: float = 0.05) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval for a proportion (Wilson 1927), via ``statsmodels.stats.proportion.proportion_confint``."""
    s, total = _arrays(successes, n)
    low, high = proportion_confint(s, total, alpha=alpha, method="wilson")
    return np.asarray(low, dtype=float), np.asarray(high, dtype=float)


def newcombe_difference_interval(
    successes1: object, n1: object, successes2: object, n2: object, *, alpha: float = 0.05
) -> tuple[FloatArray, FloatArray]:
    """Interval for ``p1 - p2`` of two independent proportions: Newcombe's hybrid score method 10 (Newcombe 1998).

    Built from the two Wilson intervals; equal to statsmodels' ``confint_proportions_2indep(method="newcomb")``.
    """
    s1, t1, s2, t2 = _arrays(successes1, n1, successes2, n2)
    p1, p2 = s1 / t1, s2 / t2
    l1, u1 = wilson_interval(s1, t1, alpha=alpha)
    l2, u2 = wilson_interval(s2, t2, alpha=alpha)
    d = p1 - p2
    low = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return low, high


def two_proportion_z_test(
    successes1: object, n1: object, successes2: object, n2: object, *, alternative: Alternative = "two-sided"
) -> FloatArray:
    """p-value of the pooled two-proportion z-test of ``p1 = p2`` (as ``statsmodels ... proportions_ztest``)."""
    s1, t1, s2, t2 = _arrays(successes1, n1, successes2, n2)
    pooled = (s1 + s2) / (t1 + t2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / t1 + 1 / t2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (s1 / t1 - s2 / t2) / se, 0.0)
    return _tail(z, alternative)


def fisher_exact_test(
    successes1: object, n1: object, successes2: object, n2: object, *, alternative: Alternative = "two-sided"
) -> FloatArray:
    """p-value of Fisher's exact test on the 2×2 table of two proportions (``scipy.stats.fisher_exact``)."""
    s1, t1, s2, t2 = _arrays(successes1, n1, successes2, n2)
    out = np.empty(s1.shape, dtype=float)
    for i in np.ndindex(s1.shape):
        table = [[s1[i], t1[i] - s1[i]], [s2[i], t2[i] - s2[i]]]
        out[i] = _scipy.fisher_exact(np.asarray(table, dtype=np.int64), alternative=alternative).pvalue
    return out


def proportion_test(
    successes1: object, n1: object, successes2: object, n2: object, *, alternative: Alternative = "two-sided"
) -> FloatArray:
    """The z-test, or Fisher's exact test where any expected count of the 2×2 table is below 5 (Cochran's rule)."""
    shape = np.shape(np.asarray(successes1))
    s1, t1, s2, t2 = (np.atleast_1d(a) for a in _arrays(successes1, n1, successes2, n2))
    p = two_proportion_z_test(s1, t1, s2, t2, alternative=alternative)
    pooled = (s1 + s2) / (t1 + t2)
    expected = np.minimum.reduce([t1 * pooled, t1 * (1 - pooled), t2 * pooled, t2 * (1 - pooled)])
    small = expected < 5
    if small.any():
        p = p.copy()
        p[small] = fisher_exact_test(s1[small], t1[small], s2[small], t2[small], alternative=alternative)
    return p.reshape(shape)


def mean_and_variance(n: object, total: object, total_sq: object) -> tuple[FloatArray, FloatArray]:
    """Mean and unbiased sample variance from ``n``, the sum and the sum of squares (NaN variance for n < 2)."""
    count, s, q = _arrays(n, total, total_sq)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / count
        variance = np.where(count > 1, np.maximum(q - count * mean**2, 0.0) / (count - 1), np.nan)
    return mean, variance


def welch_test(
    mean1: object,
    var1: object,
    n1: object,
    mean2: object,
    var2: object,
    n2: object,
    *,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Welch's unequal-variance t-test of ``mean1 = mean2`` and the ``1 - alpha`` interval of the difference.

    Welch (1947), Satterthwaite degrees of freedom; as ``scipy.stats.ttest_ind(equal_var=False)``.
    Returns ``(p_value, ci_low, ci_high)``.
    """
    m1, v1, t1, m2, v2, t2 = _arrays(mean1, var1, n1, mean2, var2, n2)
    a, b = v1 / t1, v2 / t2
    se = np.sqrt(a + b)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (a + b) ** 2 / (a**2 / (t1 - 1) + b**2 / (t2 - 1))
        t = (m1 - m2) / se
    p = _t_tail(t, df, alternative)
    half = _scipy.t.ppf(1 - alpha / 2, df) * se
    d = m1 - m2
    return p, d - half, d + half


def paired_t_test(
    n: object, sum_diff: object, sum_diff_sq: object, *, alternative: Alternative = "two-sided", alpha: float = 0.05
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Paired t-test of a zero mean difference, from the sufficient statistics of the differences.

    As ``scipy.stats.ttest_rel(a, b)`` with differences ``a - b``. Returns ``(p_value, ci_low, ci_high)``.
    """
    count = np.asarray(n, dtype=float)
    mean, variance = mean_and_variance(count, sum_diff, sum_diff_sq)
    se = np.sqrt(variance / count)
    df = count - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / se
    p = _t_tail(t, df, alternative)
    half = _scipy.t.ppf(1 - alpha / 2, df) * se
    return p, mean - half, mean + half


def mcnemar_exact_test(
    first_only: object, second_only: object, *, alternative: Alternative = "two-sided"
) -> FloatArray:
    """McNemar's exact test on the discordant pairs: a binomial test of ``first_only`` out of both at 1/2.

    ``alternative="greater"`` asks whether the first arm succeeds alone more often than the second. The two-sided
    value equals ``statsmodels.stats.contingency_tables.mcnemar(exact=True)``.
    """
    b, c = _arrays(first_only, second_only)
    out = np.empty(b.shape, dtype=float)
    for i in np.ndindex(b.shape):
        total = int(b[i] + c[i])
        out[i] = 1.0 if total == 0 else _scipy.binomtest(int(b[i]), total, 0.5, alternative=alternative).pvalue
    return out


def agresti_min_paired_interval(
    n: object, first_only: object, second_only: object, *, alpha: float = 0.05
) -> tuple[FloatArray, FloatArray]:
    """Interval for the difference of two paired proportions (first − second): Agresti & Min (2005).

    The Wald interval after adding 1/2 to each of the four cells of the paired 2×2 table.
    """
    count, b, c = _arrays(n, first_only, second_only)
    n_adj, b_adj, c_adj = count + 2, b + 0.5, c + 0.5
    d = (b_adj - c_adj) / n_adj
    se = np.sqrt(np.maximum((b_adj + c_adj) - (b_adj - c_adj) ** 2 / n_adj, 0.0)) / n_adj
    z = _scipy.norm.ppf(1 - alpha / 2)
    return np.clip(d - z * se, -1, 1), np.clip(d + z * se, -1, 1)


def benjamini_hochberg(p_values: object) -> FloatArray:
    """Benjamini–Hochberg (1995) adjusted p-values (q-values); NaN entries stay NaN and are not counted.

    ``statsmodels.stats.multitest.multipletests(method="fdr_bh")`` on the finite entries.
    """
    p = np.asarray(p_values, dtype=float)
    q = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        q[finite] = multipletests(p[finite], method="fdr_bh")[1]
    return q


def chi_square_homogeneity(counts1: object, counts2: object) -> float:
    """p-value that two count vectors over the same categories share one distribution (Pearson's chi-square)."""
    a, b = _arrays(counts1, counts2)
    table = np.vstack([a, b])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(_scipy.chi2_contingency(table, correction=False).pvalue)
