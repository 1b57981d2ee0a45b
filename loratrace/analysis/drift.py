"""Stage two: cells → one row per adapter × cohort × metric comparing the adapter with the base model it replaces.

Design of the comparison, strongest first (every row names its own):

* ``paired``: the same inputs through base and adapter (golden-set replay, by ``example_id``). Rates: McNemar's
  exact test on the discordant pairs and the Agresti–Min interval; means: the paired t-test.
* ``concurrent``: base and adapter serving the same cohort and route in the same time windows; base cells are
  counted only for the windows the adapter served in. Rates: the pooled z-test (Fisher's exact test when an
  expected count is below 5) and Newcombe's interval; means: Welch's test and interval.
* ``before_after`` (``baseline="before"`` only): the adapter's traffic against what the same cohort and route saw
  before the adapter's first traffic; confounded by time, and flagged so.

``p_value`` and ``q_value`` answer the release question *is the adapter worse than the base?*: a one-sided test in
the metric's harmful direction, with Benjamini–Hochberg q-values across every cohort row of the run. An
improvement is reported when the one-sided test the other way passes its own Benjamini–Hochberg correction. The
interval is the two-sided ``1 - alpha`` interval of ``delta = adapter_value - base_value``.

A row is ``insufficient_data`` below ``min_n`` in either arm; otherwise ``regressed`` / ``improved`` needs
``q < alpha`` and an effect of at least ``min_effect`` (rates, in absolute points) or ``min_relative_effect`` of the
base value (means); else ``no_change``.

Flags: ``confounded:prompt_version`` / ``confounded:quantization`` / ``confounded:base_model`` when the arms differ
in that (the delta has no clean owner), ``confounded:time`` on before/after rows, ``mix_differs`` on an ``(all)`` row
whose arms' cohort mix differ (its delta is then mix-standardised to the adapter's mix), and ``simpson`` on the
``(all)`` row and the regressed cohort rows of an adapter whose overall delta improved while a cohort regressed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy.stats import norm

from loratrace.analysis import stats
from loratrace.analysis._flags import add_flag
from loratrace.analysis._typing import Baseline
from loratrace.analysis.metrics import Metric

ALL_COHORTS = "(all)"
EFFECT_COLUMNS = ("base_value", "adapter_value", "delta", "ci_low", "ci_high", "p_value")
"""The estimate of an adapter-against-base comparison, in every table of one."""
DRIFT_COLUMNS = (
    "adapter",
    "adapter_id",
    "cohort",
    "metric",
    "design",
    *EFFECT_COLUMNS,
    "q_value",
    "n_base",
    "n_adapter",
    "verdict",
    "flags",
)
_ROW_KEYS = ["adapter", "adapter_id", "cohort", "metric"]
_MATCH_KEYS = ["cohort", "route", "metric", "window_start"]
_CONFOUNDERS = ("prompt_version", "quantization", "base_model")


def _sums(prefix: str = "") -> list[pl.Expr]:
    return [pl.col(c).sum().alias(f"{c}{prefix}") for c in ("n", "sum", "sum_sq")]


def _sets() -> list[pl.Expr]:
    return [pl.col(c).drop_nulls().unique().sort().alias(f"{c}_set") for c in _CONFOUNDERS]


def _with_confounding(joined: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    differs = [(pl.col(f"{c}_set") != pl.col(f"{c}_set_base")).any().alias(f"differs_{c}") for c in _CONFOUNDERS]
    return joined.group_by(keys).agg(
        pl.col("n").sum().alias("n_adapter"),
        pl.col("sum").sum().alias("sum_adapter"),
        pl.col("sum_sq").sum().alias("sum_sq_adapter"),
        pl.col("n_base").sum(),
        pl.col("sum_base").sum(),
        pl.col("sum_sq_base").sum(),
        *differs,
    )


def _concurrent(cells: pl.DataFrame) -> pl.DataFrame:
    grouped = cells.filter(pl.col("arm") == "adapter").group_by(["adapter", "adapter_id", *_MATCH_KEYS])
    adapter = grouped.agg(*_sums(), *_sets())
    base = cells.filter(pl.col("arm") == "base").group_by(_MATCH_KEYS).agg(*_sums(), *_sets())
    joined = adapter.join(base, on=_MATCH_KEYS, suffix="_base", nulls_equal=True)
    return _with_confounding(joined, _ROW_KEYS).with_columns(pl.lit("concurrent").alias("design"))


def _before_after(cells: pl.DataFrame) -> pl.DataFrame:
    adapter_cells = cells.filter(pl.col("arm") == "adapter")
    first = adapter_cells.group_by(["adapter", "cohort", "route"]).agg(pl.col("window_start").min().alias("first_seen"))
    # what the cohort and route saw before the adapter name first served there, whatever served it
    before = (
        cells.join(first, on=["cohort", "route"], suffix="_current")
        .filter(
            (pl.col("window_start") < pl.col("first_seen")) & pl.col("adapter").ne_missing(pl.col("adapter_current"))
        )
        .group_by(["adapter_current", "cohort", "route", "metric"])
        .agg(*_sums(), *_sets())
        .rename({"adapter_current": "adapter"})
    )
    after = adapter_cells.group_by(["adapter", "adapter_id", "cohort", "route", "metric"]).agg(*_sums(), *_sets())
    joined = after.join(before, on=["adapter", "cohort", "route", "metric"], suffix="_base")
    return _with_confounding(joined, _ROW_KEYS).with_columns(pl.lit("before_after").alias("design"))


def _paired(paired: pl.DataFrame) -> pl.DataFrame:
    return (
        paired.group_by(_ROW_KEYS)
        .agg(
            pl.col("n").sum().alias("n_adapter"),
            pl.col("sum_adapter").sum(),
            pl.col("sum_base").sum(),
            pl.col("sum_diff").sum(),
            pl.col("sum_diff_sq").sum(),
            pl.col("base_only").sum(),
            pl.col("adapter_only").sum(),
        )
        .with_columns(pl.col("n_adapter").alias("n_base"), pl.lit("paired").alias("design"))
    )


def _bad_side(harmful_if_higher: np.ndarray) -> list[str]:
    return ["greater" if h else "less" for h in harmful_if_higher]


def _one_sided(p_greater: np.ndarray, p_less: np.ndarray, harmful_if_higher: np.ndarray) -> tuple[np.ndarray, ...]:
    harm = np.where(harmful_if_higher, p_greater, p_less)
    good = np.where(harmful_if_higher, p_less, p_greater)
    return harm, good


def _rate_rows(frame: pl.DataFrame, *, alpha: float) -> dict[str, np.ndarray]:
    n_a, s_a = frame["n_adapter"].to_numpy().astype(float), frame["sum_adapter"].to_numpy()
    n_b, s_b = frame["n_base"].to_numpy().astype(float), frame["sum_base"].to_numpy()
    low, high = stats.newcombe_difference_interval(s_a, n_a, s_b, n_b, alpha=alpha)
    greater = stats.proportion_test(s_a, n_a, s_b, n_b, alternative="greater")
    less = stats.proportion_test(s_a, n_a, s_b, n_b, alternative="less")
    return {"base_value": s_b / n_b, "adapter_value": s_a / n_a, "low": low, "high": high, "g": greater, "l": less}


def _mean_rows(frame: pl.DataFrame, *, alpha: float) -> dict[str, np.ndarray]:
    n_a, n_b = frame["n_adapter"].to_numpy().astype(float), frame["n_base"].to_numpy().astype(float)
    m_a, v_a = stats.mean_and_variance(n_a, frame["sum_adapter"], frame["sum_sq_adapter"])
    m_b, v_b = stats.mean_and_variance(n_b, frame["sum_base"], frame["sum_sq_base"])
    greater, low, high = stats.welch_test(m_a, v_a, n_a, m_b, v_b, n_b, alternative="greater", alpha=alpha)
    less, _, _ = stats.welch_test(m_a, v_a, n_a, m_b, v_b, n_b, alternative="less", alpha=alpha)
    return {"base_value": m_b, "adapter_value": m_a, "low": low, "high": high, "g": greater, "l": less}


def _paired_rate_rows(frame: pl.DataFrame, *, alpha: float) -> dict[str, np.ndarray]:
    n = frame["n_adapter"].to_numpy().astype(float)
    b, c = frame["adapter_only"].to_numpy(), frame["base_only"].to_numpy()
    low, high = stats.agresti_min_paired_interval(n, b, c, alpha=alpha)
    greater = stats.mcnemar_exact_test(b, c, alternative="greater")
    less = stats.mcnemar_exact_test(b, c, alternative="less")
    base, adapter = frame["sum_base"].to_numpy() / n, frame["sum_adapter"].to_numpy() / n
    return {"base_value": base, "adapter_value": adapter, "low": low, "high": high, "g": greater, "l": less}


def _paired_mean_rows(frame: pl.DataFrame, *, alpha: float) -> dict[str, np.ndarray]:
    n = frame["n_adapter"].to_numpy().astype(float)
    greater, low, high = stats.paired_t_test(
        n, frame["sum_diff"], frame["sum_diff_sq"], alternative="greater", alpha=alpha
    )
    less, _, _ = stats.paired_t_test(n, frame["sum_diff"], frame["sum_diff_sq"], alternative="less", alpha=alpha)
    base, adapter = frame["sum_base"].to_numpy() / n, frame["sum_adapter"].to_numpy() / n
    return {"base_value": base, "adapter_value": adapter, "low": low, "high": high, "g": greater, "l": less}


def _statistics(rows: pl.DataFrame, metrics: dict[str, Metric], *, alpha: float) -> pl.DataFrame:
    """Values, interval and both one-sided p-values of every row, by design and metric kind."""
    parts = []
    for (design, kind), frame in rows.with_columns(
        pl.col("metric").replace_strict({n: m.kind for n, m in metrics.items()}, default="rate").alias("kind")
    ).group_by(["design", "kind"]):
        if frame.is_empty():
            continue
        if design == "paired":
            values = (_paired_rate_rows if kind == "rate" else _paired_mean_rows)(frame, alpha=alpha)
        else:
            values = (_rate_rows if kind == "rate" else _mean_rows)(frame, alpha=alpha)
        harmful_if_higher = np.array([not metrics[m].higher_is_better for m in frame["metric"]], dtype=bool)
        harm, good = _one_sided(values["g"], values["l"], harmful_if_higher)
        parts.append(
            frame.with_columns(
                pl.Series("base_value", values["base_value"], dtype=pl.Float64),
                pl.Series("adapter_value", values["adapter_value"], dtype=pl.Float64),
                pl.Series("ci_low", values["low"], dtype=pl.Float64),
                pl.Series("ci_high", values["high"], dtype=pl.Float64),
                pl.Series("p_value", harm, dtype=pl.Float64),
                pl.Series("p_improved", good, dtype=pl.Float64),
            )
        )
    return pl.concat(parts, how="diagonal_relaxed").with_columns(
        (pl.col("adapter_value") - pl.col("base_value")).alias("delta")
    )


def _overall(rows: pl.DataFrame, metrics: dict[str, Metric], *, alpha: float) -> pl.DataFrame:
    """``(all)`` rows: each adapter's delta over its cohorts, standardised to the adapter's own cohort mix.

    The variance is the weighted sum of the cohort variances (normal approximation), so the row gets a z-test.
    """
    out = []
    # the cohort rows carry 1 - alpha intervals: their half-width over this quantile is their standard error
    z_alpha = float(norm.ppf(1 - alpha / 2))
    for (adapter, adapter_id, metric, design), frame in rows.group_by(["adapter", "adapter_id", "metric", "design"]):
        if frame.height < 2:
            continue
        if design == "paired":
            # every pair weighs the same in both arms, so the pooled pairs are the overall comparison itself
            out.append(_pooled_paired(frame, metrics[metric], alpha=alpha))
            continue
        n_a = frame["n_adapter"].to_numpy().astype(float)
        n_b = frame["n_base"].to_numpy().astype(float)
        weights = n_a / n_a.sum()
        se2 = ((frame["ci_high"] - frame["ci_low"]).to_numpy() / (2 * z_alpha)) ** 2
        delta_std = float(np.nansum(weights * frame["delta"].to_numpy()))
        se = float(np.sqrt(np.nansum(weights**2 * se2)))
        base_std = float(np.nansum(weights * frame["base_value"].to_numpy()))
        crude_adapter = float(np.nansum(n_a * frame["adapter_value"].to_numpy()) / n_a.sum())
        crude_base = float(np.nansum(n_b * frame["base_value"].to_numpy()) / n_b.sum())
        z = delta_std / se if se > 0 else 0.0
        higher_bad = not metrics[metric].higher_is_better
        p_harm = float(norm.sf(z) if higher_bad else norm.cdf(z))
        flags = ["mix_differs"] if stats.chi_square_homogeneity(n_a, n_b) < 0.01 and design != "paired" else []
        crude_delta = crude_adapter - crude_base
        improved_overall = crude_delta < 0 if higher_bad else crude_delta > 0
        out.append(
            {
                "adapter": adapter,
                "adapter_id": adapter_id,
                "cohort": ALL_COHORTS,
                "metric": metric,
                "design": design,
                "base_value": base_std,
                "adapter_value": base_std + delta_std,
                "delta": delta_std,
                "ci_low": _bounded(delta_std - z_alpha * se, metrics[metric]),
                "ci_high": _bounded(delta_std + z_alpha * se, metrics[metric]),
                "p_value": p_harm,
                "p_improved": 1.0 - p_harm,
                "n_base": int(n_b.sum()),
                "n_adapter": int(n_a.sum()),
                "flags": flags,
                "crude_improved": improved_overall,
            }
        )
    return pl.DataFrame(out) if out else pl.DataFrame()


def _bounded(value: float, metric: Metric) -> float:
    """A rate difference lies in [-1, 1]; the normal approximation's interval may not."""
    return float(np.clip(value, -1.0, 1.0)) if metric.kind == "rate" else value


def _pooled_paired(frame: pl.DataFrame, metric: Metric, *, alpha: float) -> dict[str, object]:
    """The ``(all)`` row of a paired comparison: the cohorts' pairs pooled, tested as one paired sample."""
    sums = ("n_adapter", "sum_adapter", "sum_base", "sum_diff", "sum_diff_sq", "base_only", "adapter_only")
    pooled = frame.select(pl.col(c).sum() for c in sums)
    values = (_paired_rate_rows if metric.kind == "rate" else _paired_mean_rows)(pooled, alpha=alpha)
    harmful_if_higher = np.array([not metric.higher_is_better])
    harm, good = _one_sided(values["g"], values["l"], harmful_if_higher)
    base, adapter = float(values["base_value"][0]), float(values["adapter_value"][0])
    first = frame.row(0, named=True)
    return {
        "adapter": first["adapter"],
        "adapter_id": first["adapter_id"],
        "cohort": ALL_COHORTS,
        "metric": metric.name,
        "design": "paired",
        "base_value": base,
        "adapter_value": adapter,
        "delta": adapter - base,
        "ci_low": float(values["low"][0]),
        "ci_high": float(values["high"][0]),
        "p_value": float(harm[0]),
        "p_improved": float(good[0]),
        "n_base": int(pooled["n_adapter"][0]),
        "n_adapter": int(pooled["n_adapter"][0]),
        "flags": [],
        "crude_improved": (adapter < base) if not metric.higher_is_better else (adapter > base),
    }


def _verdicts(
    frame: pl.DataFrame, metrics: dict[str, Metric], *, alpha: float, min_n: int, min_effect: float, min_relative: float
) -> pl.DataFrame:
    q = stats.benjamini_hochberg(frame["p_value"].to_numpy())
    q_improved = stats.benjamini_hochberg(frame["p_improved"].to_numpy())
    base = frame["base_value"].to_numpy()
    delta = frame["delta"].to_numpy()
    is_rate = np.array([metrics[m].kind == "rate" for m in frame["metric"]], dtype=bool)
    threshold = np.where(is_rate, min_effect, np.abs(base) * min_relative)
    big = np.abs(delta) >= threshold
    enough = (frame["n_base"].to_numpy() >= min_n) & (frame["n_adapter"].to_numpy() >= min_n)
    verdict = np.where(
        ~enough,
        "insufficient_data",
        np.where((q < alpha) & big, "regressed", np.where((q_improved < alpha) & big, "improved", "no_change")),
    )
    return frame.with_columns(pl.Series("q_value", q, dtype=pl.Float64), pl.Series("verdict", verdict, dtype=pl.String))


def drift(
    cells: pl.DataFrame | pl.LazyFrame,
    *,
    metrics: Sequence[Metric],
    paired: pl.DataFrame | pl.LazyFrame | None = None,
    baseline: Baseline = "concurrent",
    alpha: float = 0.05,
    min_n: int = 30,
    min_effect: float = 0.02,
    min_relative_effect: float = 0.05,
) -> pl.DataFrame:
    """Adapter against base, per adapter × cohort × metric, with intervals, q-values and verdicts.

    Parameters
    ----------
    cells
        From :func:`loratrace.analysis.cells.cells` (with a ``window`` for the concurrent design to match windows).
    metrics
        The metrics ``cells`` holds (their kind and direction).
    paired
        From :func:`loratrace.analysis.cells.paired_cells`: where a row has paired evidence it uses it.
    baseline
        ``concurrent`` (default) or ``before`` (before/after, confounded by time).
    alpha
        False-discovery rate of the run, and ``1 - alpha`` intervals.
    min_n
        Fewest rows (pairs) per arm for a verdict.
    min_effect, min_relative_effect
        Smallest difference that counts: absolute for rates, relative to the base value for means.

    Returns
    -------
    polars.DataFrame
        Columns ``DRIFT_COLUMNS``; one ``(all)`` row per adapter and metric over its cohorts.
    """
    by_name = {m.name: m for m in metrics}
    cells = cells.collect() if isinstance(cells, pl.LazyFrame) else cells
    frames = []
    if cells.height:
        frames.append(_before_after(cells) if baseline == "before" else _concurrent(cells))
    paired_rows = None
    if paired is not None:
        paired = paired.collect() if isinstance(paired, pl.LazyFrame) else paired
        if paired.height:
            paired_rows = _paired(paired)
    if paired_rows is not None:
        if frames:
            # the strongest design wins: a cohort row with paired evidence does not also get a concurrent row
            frames[0] = frames[0].join(paired_rows.select(_ROW_KEYS), on=_ROW_KEYS, how="anti", nulls_equal=True)
        frames.append(paired_rows)
    frames = [f for f in frames if f.height]
    if not frames:
        return empty_drift()
    rows = pl.concat(frames, how="diagonal_relaxed")
    rows = _statistics(rows, by_name, alpha=alpha)
    flag_columns = [f"differs_{c}" for c in _CONFOUNDERS]
    flags = []
    for row in rows.select(
        [c if c in rows.columns else pl.lit(False).alias(c) for c in flag_columns] + ["design"]
    ).iter_rows():
        row_flags = [f"confounded:{c}" for c, differs in zip(_CONFOUNDERS, row[:-1], strict=True) if differs]
        if row[-1] == "before_after":
            row_flags.append("confounded:time")
        flags.append(row_flags)
    rows = rows.with_columns(pl.Series("flags", flags, dtype=pl.List(pl.String)))
    rows = _verdicts(rows, by_name, alpha=alpha, min_n=min_n, min_effect=min_effect, min_relative=min_relative_effect)
    overall = _overall(rows, by_name, alpha=alpha)
    if overall.height:
        overall = _verdicts(
            overall, by_name, alpha=alpha, min_n=min_n, min_effect=min_effect, min_relative=min_relative_effect
        )
        rows, overall = _simpson(rows, overall)
        rows = pl.concat([rows, overall.drop("crude_improved")], how="diagonal_relaxed")
    return (
        rows.select(DRIFT_COLUMNS)
        .with_columns(pl.col("n_base").cast(pl.Int64), pl.col("n_adapter").cast(pl.Int64))
        .sort(["adapter", "adapter_id", "metric", "cohort"], nulls_last=True)
    )


def _simpson(rows: pl.DataFrame, overall: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Flag adapters whose overall delta improved while a cohort regressed, on both kinds of row."""
    regressed = rows.filter(pl.col("verdict") == "regressed").select("adapter", "adapter_id", "metric").unique()
    hidden = overall.filter(pl.col("crude_improved")).join(regressed, on=["adapter", "adapter_id", "metric"])
    if hidden.is_empty():
        return rows, overall
    keys = hidden.select("adapter", "adapter_id", "metric").with_columns(pl.lit(True).alias("_simpson"))

    def mark(frame: pl.DataFrame, only_regressed: bool) -> pl.DataFrame:
        marked = frame.join(keys, on=["adapter", "adapter_id", "metric"], how="left", nulls_equal=True)
        hit = pl.col("_simpson").fill_null(False)
        if only_regressed:
            hit = hit & (pl.col("verdict") == "regressed")
        return marked.with_columns(add_flag(hit, "simpson")).drop("_simpson")

    return mark(rows, True), mark(overall, False)


def empty_drift() -> pl.DataFrame:
    """A drift result with no rows (the columns and their types)."""
    schema: dict[str, pl.DataType | type[pl.DataType]] = {c: pl.String for c in DRIFT_COLUMNS}
    schema.update(
        {c: pl.Float64 for c in ("base_value", "adapter_value", "delta", "ci_low", "ci_high", "p_value", "q_value")}
    )
    schema.update({"n_base": pl.Int64, "n_adapter": pl.Int64, "flags": pl.List(pl.String)})
    return pl.DataFrame(schema=schema)
