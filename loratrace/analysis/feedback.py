"""User-outcome proxies as analysed metrics: which generations could have received feedback, how complete recent
windows are, and the before/after view of an adapter's arrival on a route.

Three things make feedback different from an evaluation:

* **The denominator.** A rate of thumbs-down counts only generations that *could* have received one: production
  answers (not golden-set replay), shown to a user (not shadow traffic), on a route where that kind of feedback is
  collected at all (a route that has received at least one). :func:`with_feedback` adds, per kind, a column
  ``feedback:<kind>`` to the generation rows: the number of such feedback on the generation, NULL when it could not
  have received any. The metric ``feedback:<kind>`` (:func:`loratrace.analysis.metrics.feedback_metric`) reads it,
  so ``drift`` compares adapter and base on the same cohort and windows like any rate.
* **Late arrival.** Feedback comes minutes to days after the answer, so recent windows are incomplete and change as
  it arrives. :func:`completeness` estimates, per window, the share of its eventual feedback already in, from the
  empirical distribution of delays seen so far.
* **Before/after.** An adapter's effect on a route's outcome can also be read as an interrupted time series around
  its first traffic there (:func:`before_after`): segmented regression, always labelled confounded by time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Final

import numpy as np
import polars as pl

from loratrace import semconv
from loratrace.analysis._flags import add_flag
from loratrace.analysis._typing import Traffic
from loratrace.analysis.drift import EFFECT_COLUMNS
from loratrace.analysis.load import NONE_LABEL
from loratrace.analysis.metrics import FEEDBACK_PREFIX, feedback_metric
from loratrace.errors import QueryError
from loratrace.store import query

FEEDBACK_INCOMPLETE_FLAG: Final = "feedback_incomplete"
CONFOUNDED_BY_TIME_FLAG: Final = "confounded:time"

FEEDBACK_SQL: Final = (
    "SELECT target_trace_id AS trace_id, generation_span_id AS span_id, kind, "
    f"coalesce(route_name, '{NONE_LABEL}') AS route, time, delay_s, generation_time "
    "FROM feedback WHERE generation_span_id IS NOT NULL"
)
"""Every feedback with the generation it is about, over the store's ``feedback`` view (DuckDB; translated for
ClickHouse by ``loratrace.sources``)."""


def feedback_column(kind: str) -> str:
    """The generation-row column holding ``kind``'s feedback count."""
    return f"{FEEDBACK_PREFIX}{kind}"


def load_feedback(store: str | os.PathLike[str], *, before: datetime | None = None) -> pl.DataFrame:
    """Every feedback joined to its generation: ``trace_id``, ``span_id`` (the generation's), ``kind``, ``route``,
    ``time``, ``delay_s`` (from the end of the answer) and ``generation_time`` (the answer's start).

    ``before`` keeps only the feedback given before that time (UTC), so a check replayed at an earlier time sees
    what had arrived by then.
    """
    try:
        frame = query(
            store,
            f"{FEEDBACK_SQL} AND ($before::TIMESTAMP IS NULL OR time < $before::TIMESTAMP)",
            {"before": _naive_utc(before) if before is not None else None},
        )
    except QueryError:
        # a catalog built before the feedback view (CATALOG_VERSION < 4) until its collector restarts: no feedback
        if "feedback" in query(store, "SELECT view_name FROM duckdb_views()")["view_name"].to_list():
            raise
        frame = pl.DataFrame()
    return empty_feedback() if frame.is_empty() else frame


def empty_feedback() -> pl.DataFrame:
    """:func:`load_feedback`'s frame with no rows."""
    return pl.DataFrame(
        schema={
            "trace_id": pl.String,
            "span_id": pl.String,
            "kind": pl.String,
            "route": pl.String,
            "time": pl.Datetime("us"),
            "delay_s": pl.Float64,
            "generation_time": pl.Datetime("us"),
        }
    )


def _could_receive() -> pl.Expr:
    return pl.col("example_id").is_null() & (pl.col("variant").fill_null("") != semconv.VARIANT_SHADOW)


def with_feedback(generations: pl.LazyFrame, feedback: pl.DataFrame) -> tuple[pl.LazyFrame, list[str]]:
    """``generations`` with a ``feedback:<kind>`` column per kind in ``feedback``, and the kinds.

    The column is the number of feedback of that kind on the generation (0 when none arrived), NULL when the
    generation could not have received it (see the module docstring).

    Examples
    --------
    >>> gens = pl.LazyFrame({
    ...     "trace_id": ["t1", "t2", "t3", "t4"], "span_id": ["s1", "s2", "s3", "s4"],
    ...     "route": ["r", "r", "r", "other"], "example_id": [None, None, "e1", None], "variant": ["base"] * 4,
    ... })
    >>> fb = pl.DataFrame({"trace_id": ["t1"], "span_id": ["s1"], "kind": ["thumbs_down"], "route": ["r"]})
    >>> frame, kinds = with_feedback(gens, fb)
    >>> kinds, frame.collect()["feedback:thumbs_down"].to_list()
    (['thumbs_down'], [1, 0, None, None])
    """
    kinds = sorted(feedback["kind"].drop_nulls().unique().to_list())
    if not kinds:
        return generations, []
    counts = (
        feedback.lazy()
        .filter(pl.col("kind").is_in(kinds))
        .group_by("trace_id", "span_id")
        .agg(pl.col("kind").filter(pl.col("kind") == kind).len().alias(feedback_column(kind)) for kind in kinds)
    )
    channels = {
        kind: feedback.filter(pl.col("kind") == kind)["route"].drop_nulls().unique().to_list() for kind in kinds
    }
    joined = generations.join(counts, on=["trace_id", "span_id"], how="left", maintain_order="left")
    return (
        joined.with_columns(
            pl.when(_could_receive() & pl.col("route").is_in(channels[kind]))
            .then(pl.col(feedback_column(kind)).fill_null(0))
            .otherwise(None)
            .cast(pl.Int64)
            .alias(feedback_column(kind))
            for kind in kinds
        ),
        kinds,
    )


def load_generations_with_feedback(
    store: str | os.PathLike[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    traffic: Traffic = "all",
) -> tuple[pl.LazyFrame, list[str]]:
    """:func:`loratrace.analysis.load.load_generations` with the ``feedback:<kind>`` columns, and the kinds: what
    any caller evaluating a ``feedback:`` metric (alert rules, the gate) reads instead of the plain rows."""
    from loratrace.analysis.load import load_generations

    generations = load_generations(store, since=since, until=until, traffic=traffic)
    return with_feedback(generations, load_feedback(store))


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo is not None else moment


def completeness(
    generations: pl.LazyFrame,
    feedback: pl.DataFrame,
    *,
    kind: str,
    window: timedelta = timedelta(days=1),
    now: datetime | None = None,
) -> pl.DataFrame:
    """How complete each window's ``kind`` feedback is likely to be, from the delays observed so far.

    The expected share of a generation's eventual feedback already in, at age ``a``, is the empirical CDF of the
    observed delays at ``a``; a window's completeness is its generations' mean. The estimate is optimistic while the
    store is younger than the longest delays (long delays are not observed yet: right truncation).

    Returns
    -------
    polars.DataFrame
        ``window_start``, ``generations`` (that could have received it), ``with_feedback``, ``rate`` (so far),
        ``completeness`` (0-1), ``projected_rate`` (``rate / completeness``), and ``delay_p50_s`` / ``delay_p90_s``
        of the delays the estimate is built from.

    Examples
    --------
    >>> gens = pl.LazyFrame({
    ...     "trace_id": ["a", "b", "c"], "span_id": ["1", "2", "3"], "route": ["r"] * 3, "example_id": [None] * 3,
    ...     "variant": ["base"] * 3, "start_time": [datetime(2026, 1, 1), datetime(2026, 1, 1), datetime(2026, 1, 3)],
    ... })
    >>> fb = pl.DataFrame({"trace_id": ["a"], "span_id": ["1"], "kind": ["escalation"], "route": ["r"],
    ...                    "delay_s": [86400.0 * 1.5]})
    >>> out = completeness(gens, fb, kind="escalation", now=datetime(2026, 1, 3, 12))
    >>> out.select("window_start", "generations", "with_feedback", "completeness").rows()
    [(datetime.datetime(2026, 1, 1, 0, 0), 2, 1, 1.0), (datetime.datetime(2026, 1, 3, 0, 0), 1, 0, 0.0)]
    """
    frame, kinds = with_feedback(generations, feedback)
    if kind not in kinds:
        msg = f"no {kind!r} feedback in the store (kinds present: {', '.join(kinds) or 'none'})"
        raise ValueError(msg)
    reference = _naive_utc(now or datetime.now(timezone.utc))
    column = feedback_column(kind)
    rows = (
        frame.filter(pl.col(column).is_not_null())
        .select(
            pl.col("start_time").dt.truncate(window).alias("window_start"),
            ((pl.lit(reference) - pl.col("start_time")).dt.total_microseconds() / 1e6).alias("age_s"),
            pl.lit(1, dtype=pl.Int64).alias("generations"),
            (pl.col(column) > 0).cast(pl.Int64).alias("with_feedback"),
        )
        .collect()
    )
    return completeness_of_ages(rows, feedback, kind=kind)


def completeness_of_ages(rows: pl.DataFrame, feedback: pl.DataFrame, *, kind: str) -> pl.DataFrame:
    """:func:`completeness` from generations grouped by age: ``window_start``, ``age_s`` (seconds before the
    reference time), ``generations`` and ``with_feedback`` (of those, how many received ``kind``). One row per
    generation gives :func:`completeness` exactly; a source's engine sends one row per second of start time."""
    delays = np.sort(np.clip(feedback.filter(pl.col("kind") == kind)["delay_s"].drop_nulls().to_numpy(), 0, None))
    ages = rows["age_s"].to_numpy()
    share = np.searchsorted(delays, ages, side="right") / len(delays) if len(delays) else np.ones(len(ages))
    per_window = (
        rows.with_columns((pl.Series("share_in", share, dtype=pl.Float64) * pl.col("generations")).alias("share_in"))
        .group_by("window_start")
        .agg(
            pl.col("generations").sum().cast(pl.Int64),
            pl.col("with_feedback").sum().cast(pl.Int64),
            (pl.col("share_in").sum() / pl.col("generations").sum()).alias("completeness"),
        )
        .sort("window_start")
    )
    quantiles = np.quantile(delays, [0.5, 0.9]) if len(delays) else [None, None]
    return per_window.with_columns(
        (pl.col("with_feedback") / pl.col("generations")).alias("rate"),
        pl.when(pl.col("completeness") > 0)
        .then(pl.col("with_feedback") / pl.col("generations") / pl.col("completeness"))
        .alias("projected_rate"),
        pl.lit(quantiles[0], dtype=pl.Float64).alias("delay_p50_s"),
        pl.lit(quantiles[1], dtype=pl.Float64).alias("delay_p90_s"),
    ).select(
        "window_start",
        "generations",
        "with_feedback",
        "rate",
        "completeness",
        "projected_rate",
        "delay_p50_s",
        "delay_p90_s",
    )


def window_completeness(
    window_starts: Sequence[datetime], *, width: timedelta, delays: np.ndarray, at: datetime
) -> np.ndarray:
    """The expected share of each window's eventual feedback in by ``at``, for windows ``[start, start + width)``.

    What :func:`completeness` gives per generation, for generations spread evenly over each window (what the
    alerts know of a window: its cells, not its rows): the mean over the window's ages of the empirical CDF of
    ``delays`` (seconds), ``(1 / width) * sum_d clip(a1 - max(d, a0), 0, width) / len(delays)`` for ages ``a0`` (the
    window's end) to ``a1`` (its start). 1 when no delay was observed yet (nothing says feedback is late).

    Examples
    --------
    >>> at = datetime(2026, 1, 1, 12)
    >>> window_completeness([datetime(2026, 1, 1, 10), datetime(2026, 1, 1, 11)], width=timedelta(hours=1),
    ...                     delays=np.array([3600.0 * 1.5]), at=at).tolist()
    [0.5, 0.0]
    """
    reference = _naive_utc(at)
    step = width.total_seconds()
    young = np.array([(reference - _naive_utc(start)).total_seconds() - step for start in window_starts], dtype=float)
    if len(delays) == 0:
        return np.ones(len(young))
    young = np.clip(young, 0.0, None)
    sorted_delays = np.sort(np.asarray(delays, dtype=float))
    # integral of the ECDF over [a0, a0 + width]: every delay d below a0 + width contributes a0 + width - max(d, a0)
    covered = np.clip(young[:, None] + step - np.maximum(sorted_delays[None, :], young[:, None]), 0.0, step)
    return covered.sum(axis=1) / (step * len(sorted_delays))


def overall_completeness(windows: pl.DataFrame) -> float | None:
    """The generation-weighted mean completeness of :func:`completeness`'s windows (None without generations)."""
    total = windows["generations"].sum() if not windows.is_empty() else 0
    if not total:
        return None
    return float((windows["completeness"] * windows["generations"]).sum()) / float(total)


def completeness_by_metric(
    generations: pl.LazyFrame,
    feedback: pl.DataFrame,
    kinds: Sequence[str],
    *,
    window: timedelta = timedelta(hours=1),
    now: datetime | None = None,
) -> dict[str, float | None]:
    """``{"feedback:<kind>": share}``: the generation-weighted :func:`completeness` of ``generations`` per kind
    (None for a kind absent from ``feedback``)."""
    present = set(feedback["kind"].drop_nulls().unique().to_list())
    return {
        feedback_column(kind): (
            overall_completeness(completeness(generations, feedback, kind=kind, window=window, now=now))
            if kind in present
            else None
        )
        for kind in kinds
    }


BEFORE_AFTER_COLUMNS: Final = (
    "adapter",
    "route",
    "metric",
    "design",
    "first_traffic",
    "windows_before",
    "windows_after",
    *EFFECT_COLUMNS,
    "slope_change",
    "slope_change_p_value",
    "n_base",
    "n_adapter",
    "verdict",
    "flags",
)


def before_after(
    generations: pl.LazyFrame,
    feedback: pl.DataFrame,
    *,
    kind: str,
    adapter: str,
    route: str,
    window: timedelta = timedelta(hours=1),
    alpha: float = 0.05,
    min_windows: int = 3,
    min_completeness: float = 0.9,
    now: datetime | None = None,
) -> pl.DataFrame:
    """Interrupted time series of a route's ``kind`` feedback rate around ``adapter``'s first traffic on it.

    Segmented regression (Wagner, Soumerai, Zhang & Ross-Degnan 2002, *J. Clin. Pharm. Ther.* 27:299-309) of the
    windowed rate on time, a level change and a slope change at the adapter's first window, weighted by each
    window's generations: ``rate = b0 + b1 t + b2 after + b3 (t - t0) after``, with t-based inference from the
    wider of the ordinary WLS and the Newey-West (HAC, 1 lag, small-sample corrected) standard errors of the level
    change, so that autocorrelated windows do not narrow the interval. ``delta`` is ``b2`` (the level change at
    the arrival), ``base_value`` the pre-arrival trend extrapolated to it. Anything else that changed at that time
    changes the rate too, so the row is always flagged ``confounded:time``; windows whose feedback is less than
    ``min_completeness`` in (:func:`completeness`) are left out and the row is flagged ``feedback_incomplete``.

    Returns
    -------
    polars.DataFrame
        One row with ``BEFORE_AFTER_COLUMNS``; verdict ``insufficient_data`` with fewer than ``min_windows``
        windows on either side.
    """
    import statsmodels.api as sm

    frame, kinds = with_feedback(generations, feedback)
    if kind not in kinds:
        msg = f"no {kind!r} feedback in the store (kinds present: {', '.join(kinds) or 'none'})"
        raise ValueError(msg)
    column = feedback_column(kind)
    on_route = frame.filter((pl.col("route") == route) & pl.col(column).is_not_null())
    first = on_route.filter(pl.col("adapter") == adapter).select(pl.col("start_time").min()).collect().item()
    if first is None:
        msg = f"adapter {adapter!r} served no generation on route {route!r} that could receive {kind!r} feedback"
        raise ValueError(msg)
    arrival = pl.select(pl.lit(first).dt.truncate(window)).item()
    per_window = (
        on_route.group_by(pl.col("start_time").dt.truncate(window).alias("window_start"))
        .agg(pl.len().alias("n"), (pl.col(column) > 0).sum().alias("k"))
        .sort("window_start")
        .collect()
    )
    flags = [CONFOUNDED_BY_TIME_FLAG]
    known = completeness(generations.filter(pl.col("route") == route), feedback, kind=kind, window=window, now=now)
    complete = known.filter(pl.col("completeness") >= min_completeness)["window_start"]
    if complete.len() < known.height:
        flags.append(FEEDBACK_INCOMPLETE_FLAG)
    per_window = per_window.filter(pl.col("window_start").is_in(complete.implode()))
    step = window.total_seconds()
    t = np.array([(w - arrival).total_seconds() / step for w in per_window["window_start"].to_list()], dtype=float)
    n = per_window["n"].to_numpy().astype(float)
    k = per_window["k"].to_numpy().astype(float)
    after = (t >= 0).astype(float)
    before_n, after_n = int(n[after == 0].sum()), int(n[after == 1].sum())
    row: dict[str, object] = {
        "adapter": adapter,
        "route": route,
        "metric": column,
        "design": "before_after",
        "first_traffic": first,
        "windows_before": int((after == 0).sum()),
        "windows_after": int((after == 1).sum()),
        "n_base": before_n,
        "n_adapter": after_n,
        "flags": flags,
    }
    empty = dict.fromkeys(
        ("base_value", "adapter_value", "delta", "ci_low", "ci_high", "p_value", "slope_change", "slope_change_p_value")
    )
    # the window counts are ints in a row of mixed values
    if row["windows_before"] < min_windows or row["windows_after"] < min_windows:  # type: ignore[operator]
        return _before_after_frame({**row, **empty, "verdict": "insufficient_data"})
    design = np.column_stack([np.ones_like(t), t, after, t * after])
    model = sm.WLS(k / n, design, weights=n)
    candidates = (
        model.fit(use_t=True),
        model.fit(cov_type="HAC", cov_kwds={"maxlags": 1, "use_correction": True}, use_t=True),
    )
    # HAC errors alone ran liberal on 48 independent windows (9.7 % false alarms at alpha 5 %); the wider of the
    # two keeps independent windows at their level and autocorrelated ones covered
    fit = max(candidates, key=lambda candidate: float(candidate.bse[2]))
    low, high = fit.conf_int(alpha=alpha)[2]
    level, p_value = float(fit.params[2]), float(fit.pvalues[2])
    base_value = float(fit.params[0])
    higher_is_worse = not feedback_metric(kind).higher_is_better
    verdict = "no_change"
    if p_value < alpha:
        verdict = "regressed" if (level > 0) == higher_is_worse else "improved"
    return _before_after_frame(
        {
            **row,
            "base_value": base_value,
            "adapter_value": base_value + level,
            "delta": level,
            "ci_low": float(low),
            "ci_high": float(high),
            "p_value": p_value,
            "slope_change": float(fit.params[3]),
            "slope_change_p_value": float(fit.pvalues[3]),
            "verdict": verdict,
        }
    )


def _before_after_frame(row: dict[str, object]) -> pl.DataFrame:
    schema: dict[str, pl.DataType | type[pl.DataType]] = {
        "adapter": pl.String,
        "route": pl.String,
        "metric": pl.String,
        "design": pl.String,
        "first_traffic": pl.Datetime("us"),
        "windows_before": pl.Int64,
        "windows_after": pl.Int64,
        "base_value": pl.Float64,
        "adapter_value": pl.Float64,
        "delta": pl.Float64,
        "ci_low": pl.Float64,
        "ci_high": pl.Float64,
        "p_value": pl.Float64,
        "slope_change": pl.Float64,
        "slope_change_p_value": pl.Float64,
        "n_base": pl.Int64,
        "n_adapter": pl.Int64,
        "verdict": pl.String,
        "flags": pl.List(pl.String),
    }
    return pl.DataFrame([row], schema=schema).select(BEFORE_AFTER_COLUMNS)


def flag_incomplete(
    rows: pl.DataFrame, windows: dict[str, pl.DataFrame], *, min_completeness: float = 0.9
) -> pl.DataFrame:
    """Add ``feedback_incomplete`` to the flags of drift rows on a ``feedback:<kind>`` metric whose analysed
    generations are, on average, less than ``min_completeness`` in (``windows``: :func:`completeness` by kind)."""
    incomplete = []
    for kind, frame in windows.items():
        overall = overall_completeness(frame)
        if overall is not None and overall < min_completeness:
            incomplete.append(feedback_column(kind))
    if not incomplete or rows.is_empty():
        return rows
    return rows.with_columns(add_flag(pl.col("metric").is_in(incomplete), FEEDBACK_INCOMPLETE_FLAG))
