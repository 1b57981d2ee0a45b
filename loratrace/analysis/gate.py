"""The release gate: may traffic move to this adapter? PASS or FAIL against its base model, with the reasons.

The gate reads the same drift rows as ``loratrace drift`` (:func:`loratrace.analysis.run.drift_for_store`), so it
judges golden-set replay (the paired design, by ``example_id``) and production traffic (the concurrent design)
alike; each reason names its row's design. It fails when any chosen cohort × metric regressed (the row's one-sided
test passes its Benjamini–Hochberg correction and the effect is at least the minimum), and — unless told
``allow_insufficient`` — when a chosen cohort × metric has too little data to tell, or there is no data at all:
a gate that passes on no evidence is no gate. It is a one-time decision before a release, so it uses the
fixed-sample tests of ``drift``; the scheduled alerts use anytime-valid ones.

User-outcome proxies (``feedback:<kind>``) arrive late, so a recent selection holds only part of its eventual
feedback, and both arms' rates are understated alike: a difference seen on incomplete feedback is still evidence
(a regression fails), but the absence of one is not. A feedback criterion whose analysed generations have less
than ``min_feedback_completeness`` of their feedback likely in (:func:`loratrace.analysis.feedback.completeness`
over the adapter id's generations and the base's in the same windows) and no regression is therefore treated as
insufficient data: FAIL unless ``allow_insufficient``. The result carries each feedback metric's completeness.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from loratrace.analysis import feedback as feedback_analysis
from loratrace.analysis import load
from loratrace.analysis.metrics import FEEDBACK_PREFIX

if TYPE_CHECKING:
    from loratrace.analysis.run import DriftSettings
    from loratrace.sources.base import Source

Decision = Literal["PASS", "FAIL"]


@dataclass
class GateResult:
    """The decision, the reasons for a FAIL (or the notes of a PASS), and the rows it was made on."""

    decision: Decision
    adapter: str
    adapter_id: str | None
    reasons: list[str] = field(default_factory=list)
    rows: pl.DataFrame = field(default_factory=pl.DataFrame)
    feedback_completeness: dict[str, float | None] = field(default_factory=dict)
    """Per ``feedback:<kind>`` criterion: the share of the analysed generations' eventual feedback likely in."""

    @property
    def exit_code(self) -> int:
        return 0 if self.decision == "PASS" else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "adapter": self.adapter,
            "adapter_id": self.adapter_id,
            "reasons": self.reasons,
            "feedback_completeness": self.feedback_completeness,
            "rows": self.rows.to_dicts(),
        }


def latest_adapter_id(store: str | os.PathLike[str], adapter: str) -> str | None:
    """The id that last served under ``adapter`` (the weights a release would keep serving)."""
    frame = (
        load.load_generations(store)
        .filter(pl.col("adapter") == adapter)
        .sort("start_time")
        .select(pl.col("adapter_id").last())
        .collect()
    )
    return frame.item() if frame.height else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"


def _reason(row: dict[str, Any]) -> str:
    return (
        f"cohort {row['cohort']}, {row['metric']}: adapter {_fmt(row['adapter_value'])} vs base "
        f"{_fmt(row['base_value'])}, delta {_fmt(row['delta'])} [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}] "
        f"({row['design']}, q {_fmt(row['q_value'])}, n {row['n_adapter']} / {row['n_base']})"
    )


def gate(
    store: str | os.PathLike[str] | Source,
    settings: DriftSettings | None = None,
    *,
    adapter: str,
    adapter_id: str | None = None,
    allow_insufficient: bool = False,
    **changes: Any,
) -> GateResult:
    """Decide whether ``adapter`` may take traffic from its base model.

    ``store`` is a store folder or any :class:`~loratrace.sources.Source` (ClickHouse: ``loratrace.sources``).
    What the gate reads and how each row is decided are the drift run's: ``settings`` (default
    :class:`~loratrace.analysis.run.DriftSettings`), with ``changes`` applied (its fields by name: ``since``,
    ``until``, ``cohorts``, ``metric_names``, ``traffic``, ``alpha``, ``min_n``, ``min_effect``,
    ``min_feedback_completeness``, ...), its ``adapters`` always ``[adapter]``. A feedback criterion passes only
    once ``min_feedback_completeness`` of its feedback is likely in (module docstring).

    Raises
    ------
    loratrace.analysis.run.EmptySelectionError
        No generations in the window, or an unknown adapter or cohort (with the nearest names).
    ValueError
        An unknown metric.
    """
    from loratrace.analysis.run import DriftSettings, drift_for_source
    from loratrace.sources import as_source

    knobs = replace(settings or DriftSettings(), **changes, adapters=[adapter])
    folder = store if isinstance(store, (str, os.PathLike)) else None
    source = as_source(store)
    rows = drift_for_source(source, knobs)
    chosen_id = adapter_id or source.latest_adapter_id(adapter)
    rows = rows.filter((pl.col("adapter") == adapter) & (pl.col("adapter_id") == chosen_id))
    if knobs.cohorts:
        rows = rows.filter(pl.col("cohort").is_in(list(knobs.cohorts)))
    reasons = []
    regressed = rows.filter(pl.col("verdict") == "regressed")
    insufficient = rows.filter(pl.col("verdict") == "insufficient_data")
    reasons += [f"regressed: {_reason(r)}" for r in regressed.iter_rows(named=True)]
    if rows.is_empty():
        reasons.append(f"insufficient data: no comparison of {adapter} ({chosen_id}) with the base in the selection")
    reasons += [
        f"insufficient data: cohort {r['cohort']}, {r['metric']} (n {r['n_adapter']} / {r['n_base']}, "
        f"needs {knobs.min_n} per arm)"
        for r in insufficient.iter_rows(named=True)
    ]
    completeness = _feedback_completeness(folder, rows, adapter, chosen_id, knobs) if folder is not None else {}
    # a source other than a store folder gives no per-gate estimate: its rows' own feedback_incomplete flag decides
    unsettled = [
        row
        for row in rows.filter(pl.col("verdict").is_in(["no_change", "improved"])).iter_rows(named=True)
        if _below(completeness.get(row["metric"]), knobs.min_feedback_completeness)
        or (folder is None and feedback_analysis.FEEDBACK_INCOMPLETE_FLAG in (row["flags"] or []))
    ]
    reasons += [
        f"feedback incomplete: cohort {r['cohort']}, {r['metric']} ({r['verdict']} so far, on about "
        f"{_share(completeness.get(r['metric']))} of the feedback likely to come; needs "
        f"{_share(knobs.min_feedback_completeness)}): judge it again once the feedback is in"
        for r in unsettled
    ]
    undecided = rows.is_empty() or not insufficient.is_empty() or bool(unsettled)
    failing = not regressed.is_empty() or (not allow_insufficient and undecided)
    if not failing and reasons:
        reasons = [f"allowed: {r}" for r in reasons]
    return GateResult("FAIL" if failing else "PASS", adapter, chosen_id, reasons, rows, completeness)


def _below(share: float | None, minimum: float) -> bool:
    return share is not None and share < minimum


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"


def _feedback_completeness(
    store: str | os.PathLike[str],
    rows: pl.DataFrame,
    adapter: str,
    adapter_id: str | None,
    knobs: DriftSettings,
) -> dict[str, float | None]:
    """Per feedback metric among ``rows``: the share of the eventual feedback likely in, over what the rows compare
    (the adapter id's generations and the base's in the same windows)."""
    from loratrace.analysis.run import DEFAULT_WINDOW

    names = sorted(set(rows.filter(pl.col("metric").str.starts_with(FEEDBACK_PREFIX))["metric"].to_list()))
    if not names:
        return {}
    generations = load.load_generations(store, since=knobs.since, until=knobs.until, traffic=knobs.traffic)
    width = knobs.window or DEFAULT_WINDOW  # the windows drift matched base and adapter in
    window = pl.col("start_time").dt.truncate(width)
    judged = (pl.col("adapter") == adapter) & (pl.col("adapter_id") == adapter_id)
    served = generations.filter(judged).select(window.alias("window_start")).unique().collect()["window_start"]
    compared = generations.filter((judged | (pl.col("arm") == "base")) & window.is_in(served.implode()))
    return feedback_analysis.completeness_by_metric(
        compared,
        feedback_analysis.load_feedback(store),
        [name.removeprefix(FEEDBACK_PREFIX) for name in names],
        window=width,
    )
