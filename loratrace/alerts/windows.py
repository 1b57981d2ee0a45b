"""Rolling-window conditions (spikes, SLO burn rates, rate limits) and the pending → firing → resolved machine.

Rolling-window checks are not anytime-valid tests: a condition re-evaluated every few minutes on fresh windows
will be true now and then by chance. Their false alarms per week are bounded instead by a volume floor (no
verdict on a handful of requests), a small per-window test level, persistence (``for``: the condition must hold
over consecutive checks spanning that long before an alert opens) and hold-down (``keep_firing_for``: a firing
alert stays open that long after its condition clears, so a flapping rate pages once). The figures measured by
``bench/bench_sequential.py`` are in docs/benchmarks.md.

Every function here works on scalars and on numpy arrays alike, so the alert check and the simulation that
measures it run the same code.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import stats

INACTIVE: Final = 0
PENDING: Final = 1
FIRING: Final = 2

ArrayLike = npt.ArrayLike


def spike_condition(
    n_window: ArrayLike,
    bad_window: ArrayLike,
    n_baseline: ArrayLike,
    bad_baseline: ArrayLike,
    *,
    factor: float,
    min_delta: float,
    min_volume: int,
    alpha: float,
) -> npt.NDArray[np.bool_]:
    """Whether a window's rate spiked above its baseline.

    All of: at least ``min_volume`` generations in the window; the window's rate at least ``factor`` times the
    baseline's and ``min_delta`` above it; and the one-sided binomial test of the window's count against the
    baseline rate significant at ``alpha`` (``scipy.stats.binom.sf``). The baseline rate uses half a pseudo-count
    (``(bad + 0.5) / (n + 1)``) so that a clean baseline is not a rate of exactly zero.

    Examples
    --------
    >>> bool(spike_condition(200, 20, 10_000, 100, factor=3, min_delta=0.02, min_volume=100, alpha=0.001))
    True
    >>> bool(spike_condition(50, 20, 10_000, 100, factor=3, min_delta=0.02, min_volume=100, alpha=0.001))
    False
    """
    n_w = np.asarray(n_window, dtype=np.float64)
    bad_w = np.asarray(bad_window, dtype=np.float64)
    base_rate = (np.asarray(bad_baseline, dtype=np.float64) + 0.5) / (np.asarray(n_baseline, dtype=np.float64) + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_w = np.where(n_w > 0, bad_w / n_w, 0.0)
    p_value = stats.binom.sf(bad_w - 1, n_w, base_rate)
    return (n_w >= min_volume) & (rate_w >= factor * base_rate) & (rate_w - base_rate >= min_delta) & (p_value < alpha)


def burn_rate(bad: ArrayLike, n: ArrayLike, *, objective: float) -> npt.NDArray[np.float64]:
    """How fast a window spends the error budget: its bad share over ``1 - objective`` (SRE workbook, ch. 5).

    Examples
    --------
    >>> round(float(burn_rate(3, 100, objective=0.99)), 6)
    3.0
    """
    n_arr = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(n_arr > 0, np.asarray(bad, dtype=np.float64) / n_arr, 0.0)
    return share / (1.0 - objective)


def rolling_sums(counts: npt.NDArray[np.int64], width: int) -> npt.NDArray[np.int64]:
    """Sums over the last ``width`` steps along axis 1 (shorter at the start)."""
    c = np.cumsum(counts, axis=1)
    shifted = np.zeros_like(c)
    shifted[:, width:] = c[:, :-width]
    return c - shifted


def spike_condition_path(
    n: npt.NDArray[np.int64],
    bad: npt.NDArray[np.int64],
    *,
    window_checks: int,
    baseline_checks: int,
    factor: float,
    min_delta: float,
    min_volume: int,
    alpha: float,
) -> npt.NDArray[np.bool_]:
    """:func:`spike_condition` at every step of counts ``(runs, steps, ...)``: each window vs the baseline before it."""
    n_w, bad_w = rolling_sums(n, window_checks), rolling_sums(bad, window_checks)
    n_wb, bad_wb = rolling_sums(n, window_checks + baseline_checks), rolling_sums(bad, window_checks + baseline_checks)
    return spike_condition(
        n_w, bad_w, n_wb - n_w, bad_wb - bad_w, factor=factor, min_delta=min_delta, min_volume=min_volume, alpha=alpha
    )


def transition(
    status: ArrayLike,
    active_since: ArrayLike,
    last_active: ArrayLike,
    active: ArrayLike,
    now: ArrayLike,
    *,
    hold_for: float,
    keep_firing_for: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """One check of the alert state machine (Prometheus' pending → firing → resolved with ``keep_firing_for``).

    Parameters
    ----------
    status
        :data:`INACTIVE`, :data:`PENDING` or :data:`FIRING` before this check.
    active_since, last_active
        When the condition became true (for ``hold_for``) and was last true (for ``keep_firing_for``), seconds.
    active
        The condition at this check.
    now
        This check's time, seconds.
    hold_for, keep_firing_for
        Seconds the condition must hold before firing; seconds a firing alert stays open after it clears.

    Returns
    -------
    (status, active_since, last_active, notify)
        ``notify`` is 1 when the alert opened at this check, -1 when it resolved, 0 otherwise: notifications go
        out on these changes only.

    Examples
    --------
    >>> s, since, last, note = transition(INACTIVE, np.nan, np.nan, True, 0.0, hold_for=0, keep_firing_for=0)
    >>> int(s), int(note)
    (2, 1)
    """
    st = np.asarray(status, dtype=np.int64)
    act = np.asarray(active, dtype=bool)
    t = np.asarray(now, dtype=np.float64)
    since = np.where(act & (st == INACTIVE), t, np.asarray(active_since, dtype=np.float64))
    last = np.where(act, t, np.asarray(last_active, dtype=np.float64))
    held = act & (t - since >= hold_for)
    cleared_long_enough = ~act & (t - last >= keep_firing_for)
    new = np.where(
        st == FIRING,
        np.where(cleared_long_enough, INACTIVE, FIRING),
        np.where(held, FIRING, np.where(act, PENDING, INACTIVE)),
    )
    notify = np.where((new == FIRING) & (st != FIRING), 1, np.where((st == FIRING) & (new != FIRING), -1, 0))
    since = np.where(new == INACTIVE, np.nan, since)
    return new.astype(np.int64), since, last, notify.astype(np.int64)


def notifications(
    condition: npt.NDArray[np.bool_], *, for_checks: int, keep_firing_checks: int
) -> npt.NDArray[np.bool_]:
    """Where alerts open, for a condition path ``(runs, checks, ...)`` run through :func:`transition`."""
    shape = condition.shape[:1] + condition.shape[2:]
    status = np.full(shape, INACTIVE, dtype=np.int64)
    since = np.full(shape, np.nan)
    last = np.full(shape, np.nan)
    opened = np.zeros(condition.shape, dtype=bool)
    for step in range(condition.shape[1]):
        status, since, last, notify = transition(
            status,
            since,
            last,
            condition[:, step],
            float(step),
            hold_for=float(for_checks),
            keep_firing_for=float(keep_firing_checks),
        )
        opened[:, step] = notify == 1
    return opened
