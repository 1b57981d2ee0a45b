"""The demo's simulated traffic: a day of seeded serving with one planted regression and one planted spike.

Written next to the real tiny-model spans and kept apart from them: its own service (``loratrace-traffic``),
route (``simulated``), adapter names (``sim-``) and base model name, so no analysis mixes the two.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from loratrace.demo.traffic import Effect, Traffic

ROUTE: Final = "simulated"
ADAPTERS: Final = ("sim-a1", "sim-a2")
COHORTS: Final = ("enterprise", "smb", "free")
REGRESSED_ADAPTER: Final = "sim-a1"
REGRESSED_COHORT: Final = "enterprise"
REGRESSED_METRIC: Final = "eval_pass"
REGRESSION: Final = -0.12
"""Points of evaluation pass rate ``sim-a1`` loses on ``enterprise`` (and only there)."""
SPIKED_ADAPTER: Final = "sim-a2"
SPIKE: Final = 0.12
"""Extra fallback rate of ``sim-a2`` during four hours of the day."""
HOURS: Final = 24


def planted_traffic(*, now: dt.datetime | None = None, seed: int = 2026) -> Traffic:
    """The last ``HOURS`` whole hours before ``now`` of simulated traffic with the planted effects."""
    now = now or dt.datetime.now(dt.timezone.utc)
    start = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=HOURS)
    spike_start = start + dt.timedelta(hours=15)
    return Traffic(
        start=start,
        duration=dt.timedelta(hours=HOURS),
        requests_per_hour=40,
        adapters=ADAPTERS,
        cohorts=COHORTS,
        effects=(
            Effect(adapter=REGRESSED_ADAPTER, metric=REGRESSED_METRIC, delta=REGRESSION, cohort=REGRESSED_COHORT),
            Effect(
                adapter=SPIKED_ADAPTER,
                metric="fallback",
                delta=SPIKE,
                start=spike_start,
                end=spike_start + dt.timedelta(hours=4),
            ),
        ),
        seed=seed,
        # the same draws every run, whatever the clock: the demo's findings never depend on when it runs
        stream_origin=start,
        route=ROUTE,
        base_model="tiny-llama-simulated",
    )
