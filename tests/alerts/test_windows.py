"""The rolling-window conditions against scipy, and the pending → firing → resolved machine step by step."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from loratrace.alerts import windows
from loratrace.alerts.windows import FIRING, INACTIVE, PENDING


def _run(conditions: list[bool], *, hold_for: float, keep: float, step: float = 300.0) -> list[tuple[int, int]]:
    status, since, last = INACTIVE, np.nan, np.nan
    out = []
    for index, active in enumerate(conditions):
        status, since, last, notify = windows.transition(
            status, since, last, active, index * step, hold_for=hold_for, keep_firing_for=keep
        )
        out.append((int(status), int(notify)))
    return out


def test_an_alert_waits_for_its_for_time_then_fires_once_and_resolves():
    states = _run([False, True, True, True, True, False, False], hold_for=600, keep=0)
    assert states == [
        (INACTIVE, 0),
        (PENDING, 0),  # true at t=300
        (PENDING, 0),  # 300 s held
        (FIRING, 1),  # 600 s held: opens, one notification
        (FIRING, 0),  # still firing: no repeat
        (INACTIVE, -1),  # cleared: resolved, one notification
        (INACTIVE, 0),
    ]


def test_a_blip_shorter_than_for_never_fires():
    assert all(note == 0 for _, note in _run([True, False, True, False, True, False], hold_for=600, keep=0))


def test_hold_down_keeps_a_flapping_condition_to_one_page():
    flapping = [True, False] * 6 + [False] * 8
    without = _run(flapping, hold_for=0, keep=0)
    held = _run(flapping, hold_for=0, keep=1800)
    assert sum(note == 1 for _, note in without) == 6
    assert sum(note == 1 for _, note in held) == 1
    assert sum(note == -1 for _, note in held) == 1
    resolved_at = next(i for i, (_, note) in enumerate(held) if note == -1)
    assert resolved_at == 10 + 6  # last true at check 10, resolved 30 minutes (6 checks) later


def test_the_vectorised_notifications_equal_step_by_step_runs():
    rng = np.random.default_rng(4)
    paths = rng.random((5, 60, 3)) < 0.3
    opened = windows.notifications(paths, for_checks=2, keep_firing_checks=3)
    for run in range(5):
        for cell in range(3):
            expected = [note == 1 for _, note in _run(list(paths[run, :, cell]), hold_for=2, keep=3, step=1)]
            assert opened[run, :, cell].tolist() == expected


@pytest.mark.parametrize(("n_w", "bad_w"), [(200, 6), (200, 12), (500, 25), (150, 9), (80, 40), (300, 10)])
def test_spike_condition_is_the_binomial_test_with_floors(n_w, bad_w):
    n_b, bad_b = 20_000, 200
    base = (bad_b + 0.5) / (n_b + 1)
    p = stats.binomtest(bad_w, n_w, base, alternative="greater").pvalue
    rate = bad_w / n_w
    expected = bool(n_w >= 100 and rate >= 3 * base and rate - base >= 0.02 and p < 0.001)
    got = windows.spike_condition(n_w, bad_w, n_b, bad_b, factor=3, min_delta=0.02, min_volume=100, alpha=0.001)
    assert bool(got) is expected


def test_spike_path_compares_each_window_with_the_baseline_before_it():
    n = np.full((1, 40, 1), 100)
    bad = np.ones((1, 40, 1), dtype=np.int64)
    bad[0, 30:33, 0] = 20  # a spike over three steps
    path = windows.spike_condition_path(
        n, bad, window_checks=3, baseline_checks=20, factor=3, min_delta=0.02, min_volume=100, alpha=0.001
    )[0, :, 0]
    assert path[30:34].all()  # windows holding most of the spike
    assert not path[:30].any()
    assert not path[35:].any()  # later windows: the spike is in their baseline now, and outside the window


def test_burn_rate():
    assert float(windows.burn_rate(144, 1000, objective=0.99)) == pytest.approx(14.4)
    assert float(windows.burn_rate(0, 0, objective=0.99)) == 0.0
