"""``Literal`` aliases for the analyses' choices, collected in one place (as Polars does in ``polars._typing``)."""

from __future__ import annotations

from typing import Literal

MetricKind = Literal["rate", "mean"]
"""A rate is the mean of a 0/1 value per generation; a mean is the mean of a number."""
MetricSource = Literal["generations", "evals"]
"""The relation a metric's value expression reads: one row per generation, or one row per evaluation result."""
Direction = Literal["higher_is_better", "lower_is_better"]
Design = Literal["paired", "concurrent", "before_after"]
"""How the base arm was formed, strongest first (see docs/analysis.md)."""
Baseline = Literal["concurrent", "before"]
"""``concurrent``: the base model on the same cohort, route and windows; ``before``: the traffic before the adapter."""
Traffic = Literal["all", "production", "replay"]
"""``replay``: generations with an ``example_id`` (golden-set replay); ``production``: the others."""
Verdict = Literal["regressed", "improved", "no_change", "insufficient_data"]
Arm = Literal["base", "adapter"]
SpikeBaseline = Literal["ewma", "same_hour"]
"""A spike check's baseline: the previous windows (``ewma``), or the same time of day on previous days."""
