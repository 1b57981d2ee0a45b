"""The analyses over a store in one call each: what the CLI, the report, the alerts and the gate run."""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from loratrace.analysis import feedback as feedback_analysis
from loratrace.analysis import load, metrics
from loratrace.analysis._flags import add_flag
from loratrace.analysis._typing import Baseline, Traffic
from loratrace.analysis.cells import paired_cells
from loratrace.analysis.drift import drift

if TYPE_CHECKING:
    from loratrace.sources.base import Source

DEFAULT_WINDOW = timedelta(hours=1)


class EmptySelectionError(ValueError):
    """The selection (window, adapter, cohort) holds no generations; the message says what does."""


def eval_names(evals: pl.LazyFrame) -> list[str]:
    """The evaluation names present in ``evals`` rows."""
    return sorted(evals.select(pl.col("name").drop_nulls().unique()).collect()["name"].to_list())


def _check_names(kind: str, asked: Sequence[str] | None, present: Sequence[str]) -> None:
    for name in asked or ():
        if name not in present:
            near = difflib.get_close_matches(name, list(present), n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            shown = ", ".join(present) if present else "none"
            msg = f"no {kind} {name!r} in the selected data{hint} ({kind}s present: {shown})"
            raise EmptySelectionError(msg)


@dataclass(frozen=True)
class DriftSettings:
    """What a drift run reads and how it decides: the knobs of :func:`drift_for_source` and the ``drift`` command.

    ``since`` / ``until`` bound the window (naive UTC, ``until`` exclusive); ``adapters`` / ``cohorts`` /
    ``metric_names`` narrow it (None: all); ``window`` is the width in which base and adapter traffic are matched
    (None: one window); the rest are :func:`loratrace.analysis.drift.drift`'s. With ``flag_changes`` the rows of
    an adapter id that arrived on a route together with another change carry ``confounded:change``; rows on a
    feedback metric carry ``feedback_incomplete`` while less than ``min_feedback_completeness`` of the analysed
    generations' eventual feedback is likely in.
    """

    since: datetime | None = None
    until: datetime | None = None
    adapters: Sequence[str] | None = None
    cohorts: Sequence[str] | None = None
    metric_names: Sequence[str] | None = None
    window: timedelta | None = DEFAULT_WINDOW
    baseline: Baseline = "concurrent"
    traffic: Traffic = "all"
    alpha: float = 0.05
    min_n: int = 30
    min_effect: float = 0.02
    min_relative_effect: float = 0.05
    flag_changes: bool = True
    min_feedback_completeness: float = 0.9


def drift_for_store(
    store: str | os.PathLike[str], settings: DriftSettings | None = None, **changes: Any
) -> pl.DataFrame:
    """:func:`drift_for_source` over a store folder (``changes``: :class:`DriftSettings` fields to set)."""
    from loratrace.sources.local import LocalStore

    return drift_for_source(LocalStore(store), settings, **changes)


def drift_for_source(source: Source, settings: DriftSettings | None = None, **changes: Any) -> pl.DataFrame:
    """``drift`` over any source: cells (windowed, so base and adapter are matched in time) and paired cells
    computed where the spans are (the store's DuckDB, or inside ClickHouse), then the rows.

    What ``loratrace drift`` runs on ``--store`` and ``--source`` alike. ``settings`` (default
    :class:`DriftSettings`), with ``changes`` applied, say what to read and how to decide. Feedback metrics
    (``feedback:<kind>``) are in the run when asked for, or by default when the source holds feedback; their rows
    are flagged ``feedback_incomplete`` while the analysed windows are still filling. ``confounded:change`` comes
    from ``loratrace doctor``'s confounded-changes query, run on the same source.

    Raises
    ------
    EmptySelectionError
        No generations in the window, or an unknown adapter or cohort (with the nearest names).
    ValueError
        An unknown metric, or an unknown field in ``changes``.
    """
    from loratrace.sources.base import Selection, narrow

    try:
        knobs = replace(settings or DriftSettings(), **changes)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    selection = Selection(since=knobs.since, until=knobs.until, traffic=knobs.traffic)
    names = knobs.metric_names
    wants_evals = not names or any(m.startswith(metrics.EVAL_PREFIXES) for m in names)
    feedback = pl.DataFrame()
    if not names or any(name.startswith(metrics.FEEDBACK_PREFIX) for name in names):
        feedback = source.feedback()
    kinds = sorted(feedback["kind"].drop_nulls().unique().to_list()) if not feedback.is_empty() else []
    chosen = metrics.resolve(names, source.eval_names(selection) if wants_evals else (), kinds)
    on_spans = [m for m in chosen if not m.name.startswith(metrics.FEEDBACK_PREFIX)]
    on_feedback = [m for m in chosen if m.name.startswith(metrics.FEEDBACK_PREFIX)]
    # the one pass over every span runs where the spans are; everything after works on small frames
    cell_frame, paired = source.cells_and_paired(on_spans, window=knobs.window, selection=selection)
    completeness: dict[str, pl.DataFrame] = {}
    if on_feedback:  # feedback is never paired: replayed and mirrored answers cannot receive any
        feedback_cells, completeness = source.feedback_cells(
            on_feedback, feedback, window=knobs.window, selection=selection
        )
        cell_frame = pl.concat([cell_frame, feedback_cells], how="vertical_relaxed")
    if cell_frame.is_empty() and paired.is_empty():
        raise EmptySelectionError(_empty_message(source, knobs.since, knobs.until))
    _check_names("adapter", knobs.adapters, _present(cell_frame, paired, "adapter"))
    _check_names("cohort", knobs.cohorts, _present(cell_frame, paired, "cohort"))
    cell_frame, paired = narrow(cell_frame, paired, knobs.adapters, knobs.cohorts)
    rows = drift(
        cell_frame,
        metrics=chosen,
        paired=paired,
        baseline=knobs.baseline,
        alpha=knobs.alpha,
        min_n=knobs.min_n,
        min_effect=knobs.min_effect,
        min_relative_effect=knobs.min_relative_effect,
    )
    if completeness:  # late feedback: say when the analysed windows' feedback is not all in yet
        rows = feedback_analysis.flag_incomplete(rows, completeness, min_completeness=knobs.min_feedback_completeness)
    if not knobs.flag_changes:
        return rows
    return _flag_confounded_changes(
        rows, source, since=knobs.since, until=knobs.until, window=knobs.window or DEFAULT_WINDOW
    )


CONFOUNDED_CHANGE_FLAG = "confounded:change"


def _flag_confounded_changes(
    rows: pl.DataFrame,
    source: Source,
    *,
    since: datetime | None,
    until: datetime | None,
    window: timedelta,
) -> pl.DataFrame:
    """``confounded:change`` on the rows of an adapter id that arrived on a route together with a new quantization,
    prompt version or base model (``loratrace doctor``'s confounded-changes check, the same query)."""
    from loratrace.doctor import hygiene_findings

    if rows.is_empty():
        return rows
    found = hygiene_findings(source, since=since, until=until, checks=["confounded_changes"], window=window)
    changed = sorted({str(finding.subject["adapter_id"]) for finding in found})
    if not changed:
        return rows
    return rows.with_columns(add_flag(pl.col("adapter_id").is_in(changed), CONFOUNDED_CHANGE_FLAG))


def _paired_for_store(
    store: str | os.PathLike[str],
    chosen: Sequence[metrics.Metric],
    counts: dict[str, int],
    *,
    since: datetime | None,
    until: datetime | None,
    traffic: Traffic,
) -> pl.DataFrame:
    """Paired cells, read only when the store holds replayed or mirrored generations at all."""
    if not counts["replay_rows"] and not counts["shadow_rows"]:
        return paired_cells(pl.LazyFrame(), None, metrics=[]).collect()
    generations = load.load_generations(store, since=since, until=until, traffic=traffic)
    evals = load.load_evals(store, since=since, until=until, traffic=traffic)
    if not counts["shadow_rows"]:  # pairs by example id only: the other rows cannot pair
        generations = generations.filter(pl.col("example_id").is_not_null())
        evals = evals.filter(pl.col("example_id").is_not_null())
    return paired_cells(generations, evals, metrics=chosen).collect()


def _empty_message(source: Source, since: datetime | None, until: datetime | None) -> str:
    path = getattr(source, "path", None)
    if path is not None:
        return _empty_window_message(path, since, until)
    window = f"from {since or 'the start'} to {until or 'now'} (UTC)"
    return f"no generations {window} in {source!r}"


def _present(cell_frame: pl.DataFrame, paired: pl.DataFrame, column: str) -> list[str]:
    values = set(cell_frame[column].drop_nulls()) | set(paired[column].drop_nulls())
    return sorted(values)


def _empty_window_message(store: str | os.PathLike[str], since: datetime | None, until: datetime | None) -> str:
    days = (
        load.load_generations(store)
        .select(pl.col("start_time").dt.date().alias("day"))
        .group_by("day")
        .agg(pl.len().alias("generations"))
        .sort("day")
        .collect()
    )
    window = f"from {since or 'the start'} to {until or 'now'} (UTC)"
    if days.is_empty():
        return f"the store {store} holds no generation spans yet"
    listed = ", ".join(f"{d} ({n})" for d, n in days.iter_rows())
    return f"no generations {window}; days with generations: {listed}"
