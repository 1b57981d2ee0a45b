"""Anytime-valid comparison of an adapter with its base: a mixture SPRT and its confidence sequence.

A scheduled check that re-runs a fixed-sample test every few minutes over the same growing data raises a false
alarm almost surely given time (the "peeking" problem). The tests here keep their guarantee however often they
are looked at: for each cell (adapter × cohort × metric) the evidence against "no difference" is a test
martingale, and by Ville's inequality the chance that it *ever* crosses ``1/alpha`` under the null is at most
``alpha``.

The method is the normal-mixture sequential probability ratio test of Robbins (1970), as used for always-valid
A/B-test p-values by Johari, Pekelis & Walsh, "Always valid inference: continuous monitoring of A/B tests"
(Operations Research 70(3), 2022; arXiv:1512.04922), and the matching confidence sequence of Howard, Ramdas,
McAuliffe & Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences" (Annals of Statistics
49(2), 2021), section 3. With ``delta`` the observed difference ``adapter - base`` and ``variance`` its
estimated variance (``I = 1 / variance`` the information, ``S = delta * I``), the likelihood ratio of a
difference ``theta`` against 0 is ``exp(theta * S - theta**2 * I / 2)``; mixed over ``theta ~ N(center, tau**2)``
it has the closed form computed by :func:`normal_mixture_log_e_value`::

    log E = -1/2 log(1 + tau² I) + (S + center/tau²)² / (2 (I + 1/tau²)) - center² / (2 tau²)

Any mixture gives a valid test; the mixture only decides *where* the test is most sensitive.

**Tuning** (the mixture, documented in docs/alerts.md). ``tuned_effect`` is the effect the test should find
fastest (in the metric's units: rate points for rates; for means, a fraction of the base arm's mean).

* ``alternative="two-sided"``: ``center = 0``, ``tau = tuned_effect`` (Johari et al.'s symmetric mixture).
* ``alternative="less"`` / ``"greater"`` (the adapter is worse in a known direction, what a regression alert
  wants): ``center = -tuned_effect`` / ``+tuned_effect`` and ``tau = tuned_effect / 2``, so most of the prior
  lies on the harmful side. With a 5-point tuned effect this finds a 5-point drop at 100 requests per hour per
  arm in a median of ~15 hours with a Bonferroni correction over 45 cells, where the symmetric mixture needs
  ~18 hours (bench/bench_sequential.py).

The statistics are computed from cumulative sufficient statistics (``n``, ``sum``, ``sum_sq``) per arm, so a
check is stateless and reproducible: cumulate the additive cells over the windows since the adapter's first
traffic and evaluate at every window boundary. Variances use the normal approximation with plug-in estimates
(the asymptotic setting of Johari et al.); a rate's variance uses the Agresti–Caffo pseudo-counts
``(sum + 1) / (n + 2)`` so that an arm with no failures yet still has a positive variance.

**Across cells.** A rule set watches many cells; :func:`bonferroni_level` spends ``alpha / m`` per cell, which
keeps the chance that *any* cell ever alarms under the null at most ``alpha`` (Ville's inequality per cell and a
union bound: time-uniform, under any dependence between cells). :func:`e_bh` (Wang & Ramdas, "False discovery
rate control with e-values", JRSS-B 84(3), 2022) is offered for a false-discovery-rate reading at one check;
unlike Bonferroni its guarantee is per check, not uniform over time, so scheduled alerts use Bonferroni.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

Alternative = Literal["two-sided", "less", "greater"]
"""The side of ``adapter - base`` the mixture favours: ``less`` finds decreases fastest, ``greater`` increases."""
Kind = Literal["rate", "mean"]

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike


def mixture(alternative: Alternative, tuned_effect: float) -> tuple[float, float]:
    """The normal mixture ``(center, tau)`` used for an alternative and a tuned effect (see the module notes).

    Examples
    --------
    >>> mixture("two-sided", 0.05)
    (0.0, 0.05)
    >>> mixture("less", 0.05)
    (-0.05, 0.016666666666666666)
    """
    if not tuned_effect > 0:
        msg = f"tuned_effect must be positive, got {tuned_effect!r}"
        raise ValueError(msg)
    signs = {"two-sided": 0, "less": -1, "greater": 1}
    if alternative not in signs:
        msg = f"alternative takes 'two-sided', 'less' or 'greater', got {alternative!r}"
        raise ValueError(msg)
    center, tau = mixture_parameters(signs[alternative], tuned_effect)
    return float(center), float(tau)


def mixture_parameters(sign: ArrayLike, tuned_effect: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """:func:`mixture` for arrays: ``sign`` -1 (``less``), +1 (``greater``) or 0 (``two-sided``) per cell.

    Examples
    --------
    >>> center, tau = mixture_parameters([-1, 0], [0.06, 0.06])
    >>> center.tolist(), tau.round(3).tolist()
    ([-0.06, 0.0], [0.02, 0.06])
    """
    side = np.asarray(sign, dtype=np.float64)
    tuned = np.asarray(tuned_effect, dtype=np.float64)
    return side * tuned, np.where(side == 0, tuned, tuned / 3)


def normal_mixture_log_e_value(
    delta: ArrayLike, variance: ArrayLike, *, tau: ArrayLike, center: ArrayLike = 0.0
) -> FloatArray:
    """Log of the normal-mixture likelihood ratio against "no difference" (Robbins 1970; Johari et al. 2022).

    Parameters
    ----------
    delta
        Observed difference minus the null value (``adapter - base - theta0``).
    variance
        Estimated variance of ``delta`` (positive).
    tau, center
        The mixture ``theta ~ N(center, tau**2)`` over the true difference.

    Returns
    -------
    numpy.ndarray
        ``log E``; under the null ``E`` is a nonnegative martingale with mean 1, so
        ``P(sup_t E_t >= 1/alpha) <= alpha``.

    Examples
    --------
    >>> float(normal_mixture_log_e_value(0.0, 1.0, tau=1.0))  # no evidence: -log(2)/2
    -0.34657359027997264
    """
    d = np.asarray(delta, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    t2 = np.asarray(tau, dtype=np.float64) ** 2
    c = np.asarray(center, dtype=np.float64)
    info = 1.0 / v
    s = d * info
    return -0.5 * np.log1p(t2 * info) + (s + c / t2) ** 2 / (2.0 * (info + 1.0 / t2)) - c**2 / (2.0 * t2)


def normal_mixture_confidence_sequence(
    delta: ArrayLike, variance: ArrayLike, *, alpha: float | FloatArray, tau: ArrayLike, center: ArrayLike = 0.0
) -> tuple[FloatArray, FloatArray]:
    """The confidence sequence the mixture test inverts: every ``theta0`` it does not reject at ``alpha``.

    The interval covers the true difference at *every* time at once with probability at least ``1 - alpha``
    (Howard et al. 2021, section 3). ``center`` is relative to ``theta0`` (the mixture is over
    ``theta - theta0``), so a ``less`` mixture gives an interval whose upper end is tighter.

    Returns
    -------
    (low, high)
        Arrays of the interval's ends.

    Examples
    --------
    >>> low, high = normal_mixture_confidence_sequence(0.0, 1e-4, alpha=0.05, tau=0.05)
    >>> bool(low < 0 < high), bool(abs(low + high) < 1e-12)
    (True, True)
    """
    d = np.asarray(delta, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    t2 = np.asarray(tau, dtype=np.float64) ** 2
    c = np.asarray(center, dtype=np.float64)
    info = 1.0 / v
    # log E(S) < L  <=>  (S + c/tau²)² < 2 (I + 1/tau²) (L + log(1 + tau² I)/2 + c²/(2 tau²)), S = (delta - theta0) I
    radius = np.sqrt(2.0 * (info + 1.0 / t2) * (np.log(1.0 / alpha) + 0.5 * np.log1p(t2 * info) + c**2 / (2.0 * t2)))
    shift = c / t2
    return d - (radius - shift) / info, d + (radius + shift) / info


def difference_statistics(
    n_base: ArrayLike,
    sum_base: ArrayLike,
    sum_sq_base: ArrayLike,
    n_adapter: ArrayLike,
    sum_adapter: ArrayLike,
    sum_sq_adapter: ArrayLike,
    *,
    kind: Kind,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Means of both arms, their difference and its variance, from (cumulative) sufficient statistics.

    Returns
    -------
    (base_value, adapter_value, delta, variance)
        ``delta = adapter_value - base_value``; ``variance`` is NaN where an arm has too few observations
        (none for a rate, fewer than two for a mean).

    Examples
    --------
    >>> b, a, d, v = difference_statistics(100, 85, 85, 100, 80, 80, kind="rate")
    >>> round(float(d), 2), round(float(v), 6)
    (-0.05, 0.002958)
    """
    nb = np.asarray(n_base, dtype=np.float64)
    na = np.asarray(n_adapter, dtype=np.float64)
    sb = np.asarray(sum_base, dtype=np.float64)
    sa = np.asarray(sum_adapter, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_b = sb / nb
        mean_a = sa / na
        if kind == "rate":
            # Agresti–Caffo pseudo-counts keep the variance positive while an arm has no failures yet
            pb = (sb + 1.0) / (nb + 2.0)
            pa = (sa + 1.0) / (na + 2.0)
            var = pb * (1.0 - pb) / nb + pa * (1.0 - pa) / na
            var = np.where((nb > 0) & (na > 0), var, np.nan)
        elif kind == "mean":
            qb = np.asarray(sum_sq_base, dtype=np.float64)
            qa = np.asarray(sum_sq_adapter, dtype=np.float64)
            var_b = np.maximum(qb - sb * mean_b, 0.0) / (nb - 1.0)
            var_a = np.maximum(qa - sa * mean_a, 0.0) / (na - 1.0)
            var = np.where((nb > 1) & (na > 1), var_b / nb + var_a / na, np.nan)
            # a constant metric (every value equal) carries no noise; a tiny floor keeps the statistic finite
            var = np.where(var == 0.0, np.finfo(np.float64).tiny, var)
        else:
            msg = f"kind takes 'rate' or 'mean', got {kind!r}"
            raise ValueError(msg)
    return mean_b, mean_a, mean_a - mean_b, var


def bonferroni_level(alpha: float, cells: int) -> float:
    """The per-cell level that keeps the chance of any false alarm among ``cells`` at most ``alpha``.

    Examples
    --------
    >>> bonferroni_level(0.05, 45)
    0.0011111111111111111
    """
    if not 0 < alpha < 1:
        msg = f"alpha must be within (0, 1), got {alpha!r}"
        raise ValueError(msg)
    return alpha / max(int(cells), 1)


def e_bh(e_values: Sequence[float] | FloatArray, alpha: float) -> npt.NDArray[np.bool_]:
    """The e-Benjamini–Hochberg procedure (Wang & Ramdas 2022): which hypotheses to reject at FDR ``alpha``.

    Rejects the ``k`` largest e-values, ``k`` the largest index with ``e_(k) >= m / (alpha k)``; valid under any
    dependence between the e-values.

    Examples
    --------
    >>> e_bh([100.0, 50.0, 1.0, 0.5], 0.05).tolist()
    [True, True, False, False]
    """
    e = np.asarray(e_values, dtype=np.float64)
    m = e.size
    if m == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(-e, kind="stable")
    ranks = np.arange(1, m + 1)
    passing = np.nonzero(e[order] >= m / (alpha * ranks))[0]
    out = np.zeros(m, dtype=bool)
    if passing.size:
        out[order[: passing[-1] + 1]] = True
    return out


def always_valid_p_value(log_e_path: ArrayLike) -> FloatArray:
    """The running always-valid p-value ``min(1, 1 / max_{s<=t} E_s)`` along the last axis (Johari et al.).

    Examples
    --------
    >>> always_valid_p_value([0.0, 2.0, 1.0]).round(4).tolist()
    [1.0, 0.1353, 0.1353]
    """
    log_e = np.asarray(log_e_path, dtype=np.float64)
    running = np.maximum.accumulate(np.nan_to_num(log_e, nan=-np.inf), axis=-1)
    return np.minimum(1.0, np.exp(-running))
