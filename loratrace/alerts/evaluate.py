"""One evaluation of a rule set over a store: cells once, then each rule's condition per adapter (and cohort).

Everything is computed from the analysis cells (:func:`loratrace.analysis.cells.cells`) on the rule set's cell
window, counting only windows that are complete at the check time, so a check is reproducible: the same store and
``now`` give the same conditions whatever ran before.

* ``drift``: per adapter id × cohort × metric, cumulative cells since the adapter id's first window against the
  base model's cells of the same cohort over the same windows, tested at every window boundary by the mixture
  SPRT (:mod:`loratrace.analysis.sequential`) at ``alpha / m``, ``m`` the drift cells of the whole rule set. The
  condition holds while the confidence sequence excludes "no change" on the rule's side and the difference is at
  least ``min_effect``.
* ``spike``: per adapter × cohort, the rolling ``window``'s bad count against the ``baseline`` before it
  (:func:`loratrace.alerts.windows.spike_condition`).
* ``slo``: per adapter, burn rates over 1 h and 5 m (≥ 14.4) or 6 h and 30 m (≥ 6).
* ``fallback``: per adapter × cohort, the fallback rate over ``window`` at or above ``max_rate``.

The base model is watched as ``(base)`` by the rolling-window rules (it can spike too); drift compares adapters
with it.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl

from loratrace.alerts import feedback_cells, windows
from loratrace.alerts.cells_cache import cache_key, cells_with_cache
from loratrace.alerts.evidence import evidence_query
from loratrace.alerts.rules import BURN_WINDOWS, Rule, RuleSet, parse_duration
from loratrace.analysis import feedback as feedback_analysis
from loratrace.analysis import load, sequential
from loratrace.analysis import metrics as metric_registry
from loratrace.analysis.metrics import Metric
from loratrace.analysis.run import eval_names
from loratrace.analysis.store_cells import store_cells

if TYPE_CHECKING:
    from loratrace.sources.base import Source

BASE_LABEL: Final = "(base)"
_CELL_KEYS: Final = ["arm", "adapter", "adapter_id", "cohort", "metric", "window_start"]


@dataclass(frozen=True)
class Condition:
    """One alert instance's condition at this check, with the numbers behind it."""

    key: str
    rule: str
    type: str
    active: bool
    severity: str
    summary: str
    labels: dict[str, Any]
    values: dict[str, Any]
    query: dict[str, Any]
    for_seconds: float
    keep_firing_seconds: float
    since: str | None = None

    @property
    def dedup_key(self) -> str:
        """Stable across checks and processes: the same alert always has the same key."""
        return "loratrace-" + hashlib.sha256(self.key.encode()).hexdigest()[:32]


@dataclass
class Evaluation:
    """Every condition of a check, and the check's clock."""

    now: datetime
    boundary: datetime
    conditions: list[Condition] = field(default_factory=list)
    drift_cells: int = 0


def latency_metric(threshold_ms: float) -> Metric:
    """A rate metric: the share of generations slower than ``threshold_ms`` (what a latency SLO spends)."""
    threshold_ns = round(float(threshold_ms) * 1e6)  # a validated number, rendered as an integer literal
    return Metric(
        name=f"slower_than_ms:{float(threshold_ms):g}",
        kind="rate",
        source="generations",
        value_sql=f"CASE WHEN duration_ns IS NULL THEN NULL WHEN duration_ns > {threshold_ns} THEN 1 ELSE 0 END",
        direction="lower_is_better",
        description=f"share of generations slower than {float(threshold_ms):g} ms",
    )


def _metric_names(rule: Rule) -> list[str]:
    if rule.type == "slo":
        return [] if rule.bad == "latency" else ["error_rate"]
    if rule.type == "fallback":
        return ["fallback_rate"]
    return list(rule.metrics)


def _slo_metric_name(rule: Rule) -> str:
    return latency_metric(rule.settings["threshold_ms"]).name if rule.bad == "latency" else "error_rate"


def _resolve(ruleset: RuleSet, found_evals: list[str], found_kinds: list[str]) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    offered = metric_registry.available(found_evals, found_kinds)
    for index, rule in enumerate(ruleset.rules):
        for position, name in enumerate(_metric_names(rule)):
            if name not in offered:
                key = "metrics" if rule.type == "drift" else "metric"
                path = ["rules", index, key, position] if key == "metrics" else ["rules", index, key]
                try:
                    metric_registry.resolve([name], found_evals, found_kinds)
                except ValueError as exc:
                    raise ruleset.error(path, str(exc)) from None
            out[name] = offered[name]
        if rule.type == "slo" and rule.bad == "latency":
            metric = latency_metric(rule.settings["threshold_ms"])
            out[metric.name] = metric
    return out


def _needs_evals(ruleset: RuleSet) -> bool:
    """Whether any rule reads evaluation results (a store's span events are only scanned then)."""
    builtin = metric_registry.BUILTIN
    return any(
        not feedback_cells.is_feedback(name) and (name not in builtin or builtin[name].source == "evals")
        for rule in ruleset.rules
        for name in _metric_names(rule)
    )


def _needs_feedback(ruleset: RuleSet) -> bool:
    return any(feedback_cells.is_feedback(name) for rule in ruleset.rules for name in _metric_names(rule))


def _naive_utc(at: datetime) -> datetime:
    return at.astimezone(timezone.utc).replace(tzinfo=None) if at.tzinfo else at


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class Cells:
    """The rule set's cells, its metrics, and the feedback they counted (for the completeness of its windows)."""

    frame: pl.DataFrame
    metrics: dict[str, Metric]
    feedback: pl.DataFrame = field(default_factory=pl.DataFrame)


def _summed(frame: pl.DataFrame) -> pl.DataFrame:
    # alerts sum over routes, prompt versions, quantization and base model
    return (
        frame.group_by(_CELL_KEYS)
        .agg(pl.col("n").sum(), pl.col("sum").sum(), pl.col("sum_sq").sum())
        .with_columns(pl.col("adapter").fill_null(BASE_LABEL))
    )


@dataclass(frozen=True)
class _CellsPart:
    """Cells of one kind that a check reads (those of the spans, those of the feedback), and how they are cached."""

    metrics: Sequence[Metric]
    compute: Callable[[datetime | None], pl.DataFrame]
    folder: Path | None
    """The cache folder; None: computed at every check."""
    meaning: Sequence[str]
    """What else the cells depend on, part of the cache key."""
    tables: tuple[str, ...]
    """The store tables the cells are computed from."""
    window_state: Mapping[str, str] | None = None
    """What else each window's cells depend on (see ``cells_with_cache``)."""


def load_cells(
    store: str | os.PathLike[str] | Source,
    ruleset: RuleSet,
    *,
    boundary: datetime,
    cache_dir: Path | None = None,
) -> Cells:
    """The rule set's cells from the store: complete windows before ``boundary``, summed over routes and versions.

    With ``cache_dir``, the cells of settled windows are kept there between checks
    (:mod:`loratrace.alerts.cells_cache`), so a scheduled check reads only the recent spans. Feedback cells are
    kept apart, keyed on the feedback each window holds (:mod:`loratrace.alerts.feedback_cells`). A
    :class:`~loratrace.sources.Source` (ClickHouse) computes the cells inside its engine at every check.
    """
    if not isinstance(store, (str, os.PathLike)):
        return _source_cells(store, ruleset, boundary=boundary)
    with_evals = _needs_evals(ruleset)
    evals_all = load.load_evals(store, until=boundary) if with_evals else None
    feedback = feedback_analysis.load_feedback(store, before=boundary) if _needs_feedback(ruleset) else pl.DataFrame()
    kinds = feedback_cells.kinds(feedback) if not feedback.is_empty() else []
    needed = _resolve(ruleset, eval_names(evals_all) if evals_all is not None else [], kinds)
    if not needed:
        return Cells(pl.DataFrame(), needed)
    grid = timedelta(seconds=ruleset.window)
    on_spans = [m for m in needed.values() if not feedback_cells.is_feedback(m.name)]
    on_feedback = [m for m in needed.values() if feedback_cells.is_feedback(m.name)]
    frames = []

    def span_cells(since: datetime | None) -> pl.DataFrame:
        # the one pass over the spans runs in the store's engine (DuckDB), from the same metric SQL
        frame, _ = store_cells(store, metrics=on_spans, window=grid, since=since, until=boundary)
        return _summed(frame)

    def outcome_cells(since: datetime | None) -> pl.DataFrame:
        compute = feedback_cells.compute_cells(store, on_feedback, feedback=feedback, grid=grid, boundary=boundary)
        return _summed(compute(since))

    parts = [
        _CellsPart(
            on_spans,
            span_cells,
            cache_dir,
            meaning=["engine=duckdb-store-cells"],
            tables=("spans", "span_events") if with_evals else ("spans",),
        )
    ]
    if on_feedback:
        parts.append(
            _CellsPart(
                on_feedback,
                outcome_cells,
                cache_dir / "feedback" if cache_dir is not None else None,
                meaning=["engine=polars-feedback-cells", *feedback_cells.cache_parts(feedback)],
                tables=("spans",),
                window_state=feedback_cells.window_state(feedback, grid),
            )
        )
    for part in parts:
        if not part.metrics:
            continue
        if part.folder is None:
            frames.append(part.compute(None))
            continue
        definitions = [f"{m.name}|{m.source}|{m.eval_name}|{m.value_sql}" for m in part.metrics]
        key = cache_key([f"grid={grid.total_seconds()}", *part.meaning, *definitions])
        frames.append(
            cells_with_cache(
                store,
                part.folder,
                key=key,
                grid=grid,
                boundary=boundary,
                tables=part.tables,
                compute=part.compute,
                window_state=part.window_state,
            )
        )
    return Cells(pl.concat(frames, how="vertical_relaxed"), needed, feedback)


def _source_cells(source: Source, ruleset: RuleSet, *, boundary: datetime) -> Cells:
    from loratrace.sources.base import Selection

    # a feedback rule's completeness and its given-before-the-boundary filter are computed from the feedback's
    # arrival, which the alert path reads from a store's feedback view only
    for index, rule in enumerate(ruleset.rules):
        if any(feedback_cells.is_feedback(name) for name in _metric_names(rule)):
            key = "metrics" if rule.type == "drift" else "metric"
            msg = "feedback metrics in alert rules read a store: check this rule with --store (drift --source has them)"
            raise ruleset.error(["rules", index, key], msg)
    selection = Selection(until=boundary)
    needed = _resolve(ruleset, source.eval_names(selection) if _needs_evals(ruleset) else [], [])
    if not needed:
        return Cells(pl.DataFrame(), needed)
    frame = source.cells(list(needed.values()), window=timedelta(seconds=ruleset.window), selection=selection)
    return Cells(_summed(frame), needed)


def _keep(rule: Rule, frame: pl.DataFrame, *, with_base: bool = False) -> pl.DataFrame:
    """The rows a rule watches; ``with_base`` keeps the base arm whatever the adapters (drift compares with it)."""
    if rule.adapters is not None:
        chosen = pl.col("adapter").is_in(list(rule.adapters))
        frame = frame.filter(chosen | (pl.col("arm") == "base") if with_base else chosen)
    if rule.cohorts is not None:
        frame = frame.filter(pl.col("cohort").is_in(list(rule.cohorts)))
    return frame


def _window_sums(frame: pl.DataFrame, keys: list[str], start: datetime, end: datetime, suffix: str) -> pl.DataFrame:
    chosen = frame.filter((pl.col("window_start") >= start) & (pl.col("window_start") < end))
    sums = [pl.col("n").sum().alias(f"n{suffix}"), pl.col("sum").sum().alias(f"s{suffix}")]
    if "share" in frame.columns:  # a feedback metric: the generations' expected share of feedback in, summed
        sums.append((pl.col("n") * pl.col("share")).sum().alias(f"in{suffix}"))
    return chosen.group_by(keys).agg(sums)


def _feedback_note(
    metric: Metric, share: float | None, knobs: Mapping[str, Any], delay_p90: Mapping[str, float | None]
) -> tuple[dict[str, Any], str]:
    """The completeness values of a feedback condition, and the words its summary ends with."""
    if not feedback_cells.is_feedback(metric.name):
        return {}, ""
    incomplete = share is not None and share < float(knobs["min_completeness"])
    values = {
        "feedback_completeness": share,
        "feedback_incomplete": incomplete,
        "feedback_delay_p90_s": delay_p90.get(metric.name),
    }
    words = f"; feedback about {_pct(share)} in" + (" (still arriving: rates can only rise)" if incomplete else "")
    return values, words if share is not None else ""


def _drift_completeness(frame: pl.DataFrame) -> dict[tuple[str, str, str], float]:
    """Per adapter id × cohort of one feedback metric's cells (with ``share``): the expected share of feedback in
    over what the drift condition compares, the adapter's generations and the base's from the id's first window."""
    if frame.is_empty() or "share" not in frame.columns:
        return {}
    weighted = frame.with_columns((pl.col("n") * pl.col("share")).alias("n_in"))
    adapter = weighted.filter(pl.col("arm") == "adapter")
    cell = ["adapter", "adapter_id", "cohort"]
    first = adapter.group_by("adapter", "adapter_id").agg(pl.col("window_start").min().alias("first_window"))
    base = (
        adapter.select(cell)
        .unique()
        .join(first, on=["adapter", "adapter_id"])
        .join(weighted.filter(pl.col("arm") == "base").select("cohort", "window_start", "n", "n_in"), on="cohort")
        .filter(pl.col("window_start") >= pl.col("first_window"))
    )
    both = pl.concat([adapter.select(*cell, "n", "n_in"), base.select(*cell, "n", "n_in")], how="vertical_relaxed")
    shares = both.group_by(cell).agg((pl.col("n_in").sum() / pl.col("n").sum()).alias("completeness"))
    return {(a, i, c): float(v) for a, i, c, v in shares.iter_rows()}


def _bad(frame: pl.DataFrame, metric: Metric, suffix: str) -> pl.Expr:
    """The bad count of a rate: its successes when lower is better (errors), else the failures (passes missed)."""
    n, s = pl.col(f"n{suffix}").fill_null(0), pl.col(f"s{suffix}").fill_null(0)
    return (s if not metric.higher_is_better else n - s).alias(f"bad{suffix}")


def _condition(rule: Rule, key: str, active: bool, knobs: dict[str, Any], **fields: Any) -> Condition:
    return Condition(
        key=key,
        rule=rule.name,
        type=rule.type,
        active=bool(active),
        severity=str(knobs["severity"]),
        for_seconds=parse_duration(str(knobs["for"])),
        keep_firing_seconds=parse_duration(str(knobs["keep_firing_for"])),
        **fields,
    )


def _labels(adapter: str, cohort: str | None, metric: str | None, adapter_id: str | None = None) -> dict[str, Any]:
    return {"adapter": adapter, "adapter_id": adapter_id, "cohort": cohort, "metric": metric}


def _spike(
    rule: Rule,
    frame: pl.DataFrame,
    metric: Metric,
    boundary: datetime,
    delay_p90: Mapping[str, float | None] | None = None,
) -> list[Condition]:
    window = timedelta(seconds=parse_duration(str(rule.settings["window"])))
    baseline = timedelta(seconds=parse_duration(str(rule.settings["baseline"])))
    frame = _keep(rule, frame.filter(pl.col("metric") == metric.name))
    keys = ["adapter", "cohort"]
    now_w = _window_sums(frame, keys, boundary - window, boundary, "_w")
    before = _window_sums(frame, keys, boundary - window - baseline, boundary - window, "_b")
    joined = now_w.join(before, on=keys, how="full", coalesce=True)
    joined = joined.with_columns(_bad(joined, metric, "_w"), _bad(joined, metric, "_b"))
    out = []
    for row in joined.iter_rows(named=True):
        knobs = rule.knobs(adapter=row["adapter"], cohort=row["cohort"])
        n_w, n_b = row["n_w"] or 0, row["n_b"] or 0
        active = windows.spike_condition(
            n_w,
            row["bad_w"],
            n_b,
            row["bad_b"],
            factor=float(knobs["factor"]),
            min_delta=float(knobs["min_delta"]),
            min_volume=int(knobs["min_volume"]),
            alpha=float(knobs["alpha"]),
        )
        rate_w = row["bad_w"] / n_w if n_w else None
        rate_b = (row["bad_b"] + 0.5) / (n_b + 1)
        since = boundary - window
        share_w = row["in_w"] / n_w if n_w and row.get("in_w") is not None else None
        note, words = _feedback_note(metric, share_w, knobs, delay_p90 or {})
        if note:
            note["feedback_completeness_baseline"] = row["in_b"] / n_b if n_b and row.get("in_b") is not None else None
        out.append(
            _condition(
                rule,
                f"{rule.name}|{row['adapter']}|{row['cohort']}|{metric.name}",
                bool(active),
                knobs,
                summary=(
                    f"{metric.name} of {row['adapter']} on {row['cohort']}: "
                    f"{_pct(rate_w)} of {n_w} in the last {_human(window)} vs {_pct(rate_b)} before{words}"
                ),
                labels=_labels(row["adapter"], row["cohort"], metric.name),
                values={"value": rate_w, "baseline": rate_b, "n_window": n_w, "n_baseline": n_b, **note},
                query=evidence_query(metric.name, adapter=_adapter_param(row["adapter"]), since=since, until=boundary),
            )
        )
    return out


def _slo(rule: Rule, frame: pl.DataFrame, metric: Metric, boundary: datetime) -> list[Condition]:
    frame = _keep(rule, frame.filter(pl.col("metric") == metric.name))
    keys = ["adapter"]
    spans = sorted({parse_duration(w) for long, short, _ in BURN_WINDOWS for w in (long, short)})
    sums = frame.select(keys).unique()
    for seconds in spans:
        part = _window_sums(frame, keys, boundary - timedelta(seconds=seconds), boundary, f"_{int(seconds)}")
        sums = sums.join(part, on=keys, how="left")
    out = []
    for row in sums.iter_rows(named=True):
        knobs = rule.knobs(adapter=row["adapter"])
        objective = float(knobs["objective"])
        burns = {}
        active = False
        for long, short, factor in BURN_WINDOWS:
            pair = []
            for w in (long, short):
                s = int(parse_duration(w))
                n = row.get(f"n_{s}") or 0
                bad = (row.get(f"s_{s}") or 0) if not metric.higher_is_better else n - (row.get(f"s_{s}") or 0)
                burns[w] = float(windows.burn_rate(bad, n, objective=objective))
                pair.append((burns[w], n))
            enough = pair[0][1] >= int(knobs["min_volume"])
            active = active or (enough and pair[0][0] >= factor and pair[1][0] >= factor)
        what = "latency" if metric.name.startswith("slower_than_ms:") else "errors"
        out.append(
            _condition(
                rule,
                f"{rule.name}|{row['adapter']}",
                active,
                knobs,
                summary=(
                    f"{what} SLO ({objective:.4g}) of {row['adapter']}: burn rate "
                    + ", ".join(f"{w} {b:.1f}x" for w, b in burns.items())
                ),
                labels=_labels(row["adapter"], None, metric.name),
                values={"burn_rates": burns, "objective": objective},
                query=evidence_query(
                    metric.name,
                    adapter=_adapter_param(row["adapter"]),
                    since=boundary - timedelta(hours=6),
                    until=boundary,
                ),
            )
        )
    return out


def _fallback(rule: Rule, frame: pl.DataFrame, metric: Metric, boundary: datetime) -> list[Condition]:
    window = timedelta(seconds=parse_duration(str(rule.settings["window"])))
    frame = _keep(rule, frame.filter(pl.col("metric") == metric.name))
    sums = _window_sums(frame, ["adapter", "cohort"], boundary - window, boundary, "")
    out = []
    for row in sums.iter_rows(named=True):
        knobs = rule.knobs(adapter=row["adapter"], cohort=row["cohort"])
        rate = row["s"] / row["n"] if row["n"] else 0.0
        active = row["n"] >= int(knobs["min_volume"]) and rate >= float(knobs["max_rate"])
        out.append(
            _condition(
                rule,
                f"{rule.name}|{row['adapter']}|{row['cohort']}",
                active,
                knobs,
                summary=(
                    f"fallback rate of {row['adapter']} on {row['cohort']}: {_pct(rate)} of {row['n']} in the "
                    f"last {_human(window)} (limit {_pct(float(knobs['max_rate']))})"
                ),
                labels=_labels(row["adapter"], row["cohort"], metric.name),
                values={"value": rate, "limit": float(knobs["max_rate"]), "n_window": row["n"]},
                query=evidence_query(
                    metric.name, adapter=_adapter_param(row["adapter"]), since=boundary - window, until=boundary
                ),
            )
        )
    return out


def drift_paths(frame: pl.DataFrame, metric_names: Sequence[str]) -> pl.DataFrame:
    """Cumulative base and adapter statistics at every window boundary since each adapter id's first window.

    One row per adapter id × cohort × metric × window in which the adapter or the base model of that cohort
    had data, from the adapter id's first window on; ``n``, ``sum``, ``sum_sq`` (adapter) and ``n_base``,
    ``sum_base``, ``sum_sq_base`` cumulated in time order. Every drift rule filters these rows.
    """
    cells_of = frame.lazy().filter(pl.col("metric").is_in(list(metric_names)))
    adapter = cells_of.filter(pl.col("arm") == "adapter")
    base = cells_of.filter(pl.col("arm") == "base").select("cohort", "metric", "window_start", "n", "sum", "sum_sq")
    first = adapter.group_by("adapter", "adapter_id").agg(pl.col("window_start").min().alias("first_window"))
    labels = ["adapter", "adapter_id", "cohort", "metric"]
    # an integer per cell, so the joins and window functions below hash one integer instead of four strings
    cell_ids = adapter.select(labels).unique().with_row_index("cell").collect().lazy()
    adapter_side = adapter.join(cell_ids, on=labels).select("cell", "window_start", "n", "sum", "sum_sq")
    base_side = (
        cell_ids.join(first, on=["adapter", "adapter_id"])
        .join(base, on=["cohort", "metric"])
        .filter(pl.col("window_start") >= pl.col("first_window"))
        .select("cell", "window_start", "n", "sum", "sum_sq")
    )
    joined = adapter_side.join(base_side, on=["cell", "window_start"], how="full", coalesce=True, suffix="_base")
    # sorted by time only: the window functions then cumulate each cell's rows in time order
    cum = [pl.col(c).fill_null(0).cum_sum().over("cell") for c in _SUMS]
    paths = joined.sort("window_start").with_columns(cum).filter(pl.col("n") > 0)
    return paths.join(cell_ids, on="cell", maintain_order="left").drop("cell").collect()


def _rule_paths(rule: Rule, paths: pl.DataFrame, metric: str) -> pl.DataFrame:
    chosen = paths.filter(pl.col("metric") == metric)
    if rule.adapters is not None:
        chosen = chosen.filter(pl.col("adapter").is_in(list(rule.adapters)))
    if rule.cohorts is not None:
        chosen = chosen.filter(pl.col("cohort").is_in(list(rule.cohorts)))
    return chosen


_SUMS: Final = ("n", "sum", "sum_sq", "n_base", "sum_base", "sum_sq_base")


def _knob_table(rule: Rule, metric: Metric, pairs: pl.DataFrame) -> pl.DataFrame:
    """The drift knobs of every adapter × cohort present, one row each (overrides resolved once per pair)."""
    rows = []
    for adapter, cohort in pairs.iter_rows():
        k = rule.knobs(adapter=adapter, cohort=cohort)
        rows.append(
            {
                "adapter": adapter,
                "cohort": cohort,
                "k_tuned": float(k["tuned_effect"]),
                "k_min_effect": float(k["min_effect"]),
                "k_min_n": int(k["min_n"]),
                "k_alpha": float(k["alpha"]),
                "k_sign": _harmful_sign(metric, str(k["direction"])),
                "direction": str(k["direction"]),
            }
        )
    return pl.DataFrame(rows, schema_overrides={"adapter": pl.String, "cohort": pl.String})


def _drift(
    rule: Rule,
    paths: pl.DataFrame,
    metric: Metric,
    *,
    level_divisor: int,
    boundary: datetime,
    completeness: Mapping[tuple[str, str, str], float] | None = None,
    delay_p90: Mapping[str, float | None] | None = None,
) -> list[Condition]:
    if paths.is_empty():
        return []
    knobs_of = _knob_table(rule, metric, paths.select("adapter", "cohort").unique())
    paths = paths.join(knobs_of, on=["adapter", "cohort"], how="left", maintain_order="left")
    col = {c: paths[c].to_numpy().astype(np.float64) for c in _SUMS}
    base_value, adapter_value, delta, variance = sequential.difference_statistics(
        col["n_base"], col["sum_base"], col["sum_sq_base"], col["n"], col["sum"], col["sum_sq"], kind=metric.kind
    )
    scale = np.abs(base_value) if metric.kind == "mean" else np.ones_like(base_value)
    tuned = paths["k_tuned"].to_numpy() * np.where(scale > 0, scale, 1.0)
    min_effect = paths["k_min_effect"].to_numpy() * scale
    min_n = paths["k_min_n"].to_numpy()
    level = paths["k_alpha"].to_numpy() / max(level_divisor, 1)
    harmful = paths["k_sign"].to_numpy()
    center, tau = sequential.mixture_parameters(harmful, tuned)
    with np.errstate(invalid="ignore", divide="ignore"):
        low, high = sequential.normal_mixture_confidence_sequence(delta, variance, alpha=level, tau=tau, center=center)
        log_e = sequential.normal_mixture_log_e_value(delta, variance, tau=tau, center=center)
    enough = (col["n"] >= min_n) & (col["n_base"] >= min_n) & np.isfinite(variance)
    big = np.abs(delta) >= min_effect
    # the interval excludes "no change" below (adapter lower) or above (adapter higher) the base
    lower, higher = high < 0, low > 0
    regression = enough & big & (lower if metric.higher_is_better else higher)
    improvement = enough & big & (higher if metric.higher_is_better else lower)
    out = paths.with_columns(
        pl.Series("base_value", base_value),
        pl.Series("adapter_value", adapter_value),
        pl.Series("delta", delta),
        pl.Series("ci_low", low),
        pl.Series("ci_high", high),
        pl.Series("log_e", np.where(enough, log_e, -np.inf)),
        pl.Series("regression", regression),
        pl.Series("improvement", improvement),
    )
    group = ["adapter", "adapter_id", "cohort"]
    out = out.with_columns(
        pl.when(pl.col("direction") == "regression")
        .then(pl.col("regression"))
        .when(pl.col("direction") == "improvement")
        .then(pl.col("improvement"))
        .otherwise(pl.col("regression") | pl.col("improvement"))
        .alias("condition"),
        pl.col("log_e").cum_max().over(group).alias("max_log_e"),
        pl.col("window_start").min().over(["adapter", "adapter_id"]).alias("first_window"),
    )
    out = out.with_columns(
        pl.when(pl.col("condition")).then(pl.col("window_start")).min().over(group).alias("first_crossed")
    )
    conditions = []
    for row in out.group_by(group, maintain_order=True).last().iter_rows(named=True):
        knobs = rule.knobs(adapter=row["adapter"], cohort=row["cohort"])
        crossed = row["first_crossed"]
        p_value = float(min(1.0, math.exp(-row["max_log_e"]))) if row["max_log_e"] > -math.inf else 1.0
        share = (completeness or {}).get((row["adapter"], row["adapter_id"], row["cohort"]))
        note, words = _feedback_note(metric, share, knobs, delay_p90 or {})
        conditions.append(
            _condition(
                rule,
                f"{rule.name}|{row['adapter']}|{row['adapter_id']}|{row['cohort']}|{metric.name}",
                bool(row["condition"]),
                knobs,
                summary=(
                    f"{metric.name} of {row['adapter']} on {row['cohort']}: {_num(row['adapter_value'])} vs base "
                    f"{_num(row['base_value'])} (delta {_num(row['delta'])}, anytime-valid interval "
                    f"[{_num(row['ci_low'])}, {_num(row['ci_high'])}], n {int(row['n'])} / {int(row['n_base'])})"
                    f"{words}"
                ),
                labels=_labels(row["adapter"], row["cohort"], metric.name, row["adapter_id"]),
                values={
                    "value": row["adapter_value"],
                    "baseline": row["base_value"],
                    "delta": row["delta"],
                    "ci_low": row["ci_low"],
                    "ci_high": row["ci_high"],
                    "p_value": p_value,
                    "n_adapter": int(row["n"]),
                    "n_base": int(row["n_base"]),
                    "method": "normal-mixture SPRT (anytime-valid), Bonferroni across the rule set's drift cells",
                    "cells": level_divisor,
                    **note,
                },
                since=_iso(crossed),
                query=evidence_query(metric.name, adapter=row["adapter"], since=row["first_window"], until=boundary),
            )
        )
    return conditions


def _harmful_sign(metric: Metric, direction: str) -> int:
    """The sign of ``adapter - base`` the mixture favours: -1, +1, or 0 (both sides)."""
    if direction == "both":
        return 0
    worse = -1 if metric.higher_is_better else 1
    return worse if direction == "regression" else -worse


def _adapter_param(adapter: str) -> str | None:
    return None if adapter == BASE_LABEL else adapter


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"


def _human(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def evaluate(
    store: str | os.PathLike[str] | Source, ruleset: RuleSet, *, now: datetime, cache_dir: Path | None = None
) -> Evaluation:
    """Every rule's conditions over the store as of ``now`` (windows complete by then)."""
    grid = timedelta(seconds=ruleset.window)
    now_utc = _naive_utc(now)
    epoch = datetime(1970, 1, 1)
    boundary = epoch + ((now_utc - epoch) // grid) * grid
    loaded = load_cells(store, ruleset, boundary=boundary, cache_dir=cache_dir)
    frame, metrics = loaded.frame, loaded.metrics
    result = Evaluation(now=now_utc, boundary=boundary)
    if frame.is_empty():
        return result
    frame = frame.filter(pl.col("window_start") < boundary)
    by_metric = {name: part for (name,), part in frame.partition_by("metric", as_dict=True).items()}
    outcomes = sorted(name for name in by_metric if feedback_cells.is_feedback(name))
    delay_p90 = feedback_cells.delay_p90(loaded.feedback, outcomes) if outcomes else {}
    if outcomes:  # each window's expected share of its feedback in by the boundary, on the feedback metrics' cells
        shares = feedback_cells.window_shares(
            loaded.feedback, outcomes, frame["window_start"], grid=grid, boundary=boundary
        )
        for name in outcomes:
            by_metric[name] = by_metric[name].join(
                shares.filter(pl.col("metric") == name).drop("metric"), on="window_start", how="left"
            )
    empty = frame.clear()
    drift_rules = [r for r in ruleset.rules if r.type == "drift"]
    all_paths = drift_paths(frame, sorted({m for r in drift_rules for m in r.metrics})) if drift_rules else None
    paths = {(r.name, m): _rule_paths(r, all_paths, m) for r in drift_rules for m in r.metrics if all_paths is not None}
    result.drift_cells = sum(p.select("adapter_id", "cohort").unique().height for p in paths.values())
    for rule in ruleset.rules:
        if rule.type == "drift":
            for name in rule.metrics:
                result.conditions += _drift(
                    rule,
                    paths[(rule.name, name)],
                    metrics[name],
                    level_divisor=result.drift_cells,
                    boundary=boundary,
                    completeness=_drift_completeness(by_metric.get(name, empty)) if name in outcomes else None,
                    delay_p90=delay_p90,
                )
        elif rule.type == "spike":
            name = rule.metrics[0]
            result.conditions += _spike(rule, by_metric.get(name, empty), metrics[name], boundary, delay_p90)
        elif rule.type == "slo":
            name = _slo_metric_name(rule)
            result.conditions += _slo(rule, by_metric.get(name, empty), metrics[name], boundary)
        else:
            result.conditions += _fallback(
                rule, by_metric.get("fallback_rate", empty), metrics["fallback_rate"], boundary
            )
    return result
