"""Latency per adapter configuration, and whether an adapter's requests are slower than the base model's.

Two tables:

* :func:`latency_percentiles`: p50 / p95 / p99 of generation duration (and time to first token) per adapter
  name x rank x merge state x quantization, the base model's own traffic included;
* :func:`slower_than_base`: per adapter x route x cohort, the share of the adapter's requests slower than the
  base model's p95 on the same route and cohort. Were the adapter as fast as the base, that share would be
  about 5 %; each row tests it one-sided. The base p95 is itself estimated from the base sample, and a plain
  binomial test against 5 % ignores that: with as many base as adapter requests it raised a flag in 17 % of
  simulated runs without any slowdown (tests/analysis/test_latency.py). So the p-value is the exact exceedance
  test (Gumbel & von Schelling, 1950): with the base p95 taken as the order statistic ``k = ceil(0.95 m)`` of
  ``m`` base requests, and ``r`` base requests above it, the number ``X`` of the ``n`` adapter requests above it
  satisfies, when both arms draw from one distribution, ``P(X >= x) = P(H >= x)`` with ``H`` hypergeometric
  (``m + n`` requests, ``n`` of them adapter, ``x + r`` drawn): ``scipy.stats.hypergeom.sf``. It tends to the
  binomial test against 5 % as the base sample grows. The p-values of all rows of a call are corrected together
  with Benjamini-Hochberg (``scipy.stats.false_discovery_control``; Benjamini & Hochberg, 1995).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from loratrace.analysis.store_filter import GENERATIONS_WHERE, GenerationSelection, generation_params
from loratrace.errors import ConfigurationError

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from loratrace.sources.base import Source

BASE_P95_SHARE: Final = 0.05
"""The share of requests above the base model's p95 when the adapter is exactly as fast as the base."""

_MS: Final = pl.col("duration_ns") / 1e6


def _adapter_label() -> pl.Expr:
    base = pl.lit("(base) ") + pl.coalesce(pl.col("base_model_name"), pl.col("model"), pl.lit("?"))
    return pl.coalesce(pl.col("adapter_name"), base).alias("adapter")


def _quantization() -> pl.Expr:
    method = pl.col("model_quantization_method")
    bits = pl.col("model_quantization_bits").cast(pl.String)
    return (
        pl.when(method.is_null())
        .then(pl.lit("none"))
        .otherwise(pl.concat_str([method, pl.lit("-"), bits.fill_null("?"), pl.lit("bit")]))
        .alias("quantization")
    )


def latency_percentiles(generations: pl.LazyFrame) -> pl.LazyFrame:
    """p50 / p95 / p99 of duration (ms) and p50 / p95 of time to first token per adapter configuration.

    Quantiles interpolate linearly between order statistics (numpy's and DuckDB's ``quantile_cont`` default).

    Examples
    --------
    >>> import polars as pl
    >>> g = pl.LazyFrame({"adapter_name": ["a1"] * 4, "base_model_name": ["m"] * 4, "model": ["a1"] * 4,
    ...     "adapter_rank": [8] * 4, "adapter_merged": [False] * 4, "model_quantization_method": [None] * 4,
    ...     "model_quantization_bits": [None] * 4, "duration_ns": [1e6, 2e6, 3e6, 4e6], "ttft_ms": [1.0] * 4})
    >>> latency_percentiles(g).collect().select("adapter", "n", "p50_ms").rows()
    [('a1', 4, 2.5)]
    """
    return (
        generations.with_columns(_adapter_label(), _quantization())
        .group_by(
            "adapter", pl.col("adapter_rank").alias("rank"), pl.col("adapter_merged").alias("merged"), "quantization"
        )
        .agg(
            pl.len().alias("n"),
            *[_MS.quantile(q, interpolation="linear").alias(f"p{int(q * 100)}_ms") for q in (0.5, 0.95, 0.99)],
            pl.col("ttft_ms").quantile(0.5, interpolation="linear").alias("ttft_p50_ms"),
            pl.col("ttft_ms").quantile(0.95, interpolation="linear").alias("ttft_p95_ms"),
        )
        .sort("adapter", "rank", "merged", "quantization", nulls_last=True)
    )


def _stats() -> Any:
    try:
        from scipy import stats
    except ImportError:
        msg = "the latency tests need scipy: pip install 'loratrace[analysis]'"
        raise ConfigurationError(msg) from None
    return stats


def exceedance_p_value(slower: int, *, n: int, m: int, above: int) -> float:
    """One-sided p-value of ``slower`` of ``n`` adapter requests above a base order statistic.

    ``above`` of the ``m`` base requests lie above that order statistic. Exact when both arms are independent
    draws from one continuous distribution (the exceedance distribution; see the module docstring).

    Examples
    --------
    >>> round(exceedance_p_value(0, n=100, m=100, above=5), 6)
    1.0
    >>> exceedance_p_value(60, n=100, m=100, above=5) < 1e-15
    True
    """
    if slower <= 0:
        return 1.0
    return float(_stats().hypergeom.sf(slower - 1, m + n, n, slower + above))


def _check_settings(alpha: float, min_n: int) -> None:
    if not 0 < alpha < 1:
        msg = f"slower_than_base(alpha=...) must be within (0, 1), got {alpha!r}"
        raise ValueError(msg)
    if min_n < 1:
        msg = f"slower_than_base(min_n=...) must be at least 1, got {min_n!r}"
        raise ValueError(msg)


def slower_than_base_counts(generations: pl.LazyFrame) -> pl.DataFrame:
    """The counts behind :func:`slower_than_base`, from generations in Polars (see :func:`store_counts`)."""
    frame = generations.with_columns(
        _MS.alias("duration_ms"),
        pl.col("route_name").fill_null("(none)").alias("route"),
        pl.col("cohort").fill_null("(none)"),
    )
    nearest_rank = (pl.len() * (1 - BASE_P95_SHARE)).ceil().cast(pl.Int64) - 1
    base = (
        frame.filter(pl.col("adapter_name").is_null())
        .group_by("route", "cohort")
        .agg(
            pl.col("duration_ms").sort().gather(nearest_rank).first().alias("base_p95_ms"),
            pl.len().alias("n_base"),
            pl.col("duration_ms").alias("_base_durations"),
        )
        .with_columns(
            pl.col("_base_durations")
            .list.eval(pl.element() > pl.element().sort().get(nearest_rank))
            .list.sum()
            .alias("base_above")
        )
        .drop("_base_durations")
    )
    return (
        frame.filter(pl.col("adapter_name").is_not_null())
        .join(base, on=["route", "cohort"], how="left")
        .group_by(pl.col("adapter_name").alias("adapter"), "adapter_id", "route", "cohort")
        .agg(
            pl.col("base_p95_ms").first(),
            pl.col("n_base").first(),
            pl.col("base_above").first(),
            pl.len().alias("n_adapter"),
            (pl.col("duration_ms") > pl.col("base_p95_ms")).sum().alias("slower"),
        )
        .collect()
    )


_COUNTS_SQL = f"""
WITH g AS (
    SELECT adapter_name, adapter_id, coalesce(route_name, '(none)') AS route, coalesce(cohort, '(none)') AS cohort,
           duration_ns / 1e6 AS duration_ms
    FROM spans
    WHERE {GENERATIONS_WHERE}
),
sorted_base AS (
    SELECT route, cohort, count(*) AS n_base, list_sort(list(duration_ms)) AS durations
    FROM g WHERE adapter_name IS NULL GROUP BY route, cohort
),
nearest AS (
    SELECT route, cohort, n_base, durations[ceil(0.95 * n_base)::BIGINT] AS base_p95_ms, durations FROM sorted_base
),
base AS (  -- the lists stay here: only one row per route and cohort joins the adapters' rows
    SELECT route, cohort, n_base, base_p95_ms, len(list_filter(durations, lambda x: x > base_p95_ms)) AS base_above
    FROM nearest
)
SELECT g.adapter_name AS adapter, g.adapter_id, g.route, g.cohort, any_value(b.base_p95_ms) AS base_p95_ms,
       any_value(b.n_base) AS n_base, any_value(b.base_above) AS base_above,
       count(*) AS n_adapter, count(*) FILTER (WHERE g.duration_ms > b.base_p95_ms) AS slower
FROM g LEFT JOIN base AS b ON g.route = b.route AND g.cohort = b.cohort
WHERE g.adapter_name IS NOT NULL
GROUP BY g.adapter_name, g.adapter_id, g.route, g.cohort
"""


def store_counts(store: str | os.PathLike[str] | Source, **selection: Unpack[GenerationSelection]) -> pl.DataFrame:
    """:func:`slower_than_base_counts` of a store's generations in a window, computed by DuckDB in one pass.

    ``adapter`` keeps that adapter and the base model; ``cohort`` keeps one cohort.
    """
    return _store_frame(store, _COUNTS_SQL, selection)


_PERCENTILES_SQL = f"""
SELECT coalesce(adapter_name, '(base) ' || coalesce(base_model_name, model, '?')) AS adapter,
       adapter_rank AS rank, adapter_merged AS merged,
       CASE WHEN model_quantization_method IS NULL THEN 'none'
            ELSE model_quantization_method || '-' || coalesce(model_quantization_bits::VARCHAR, '?') || 'bit' END
           AS quantization,
       count(*) AS n,
       quantile_cont(duration_ns / 1e6, 0.5) AS p50_ms,
       quantile_cont(duration_ns / 1e6, 0.95) AS p95_ms,
       quantile_cont(duration_ns / 1e6, 0.99) AS p99_ms,
       quantile_cont(ttft_ms, 0.5) AS ttft_p50_ms,
       quantile_cont(ttft_ms, 0.95) AS ttft_p95_ms
FROM spans
WHERE {GENERATIONS_WHERE}
GROUP BY ALL
ORDER BY adapter, rank NULLS LAST, merged NULLS LAST, quantization
"""


def store_percentiles(store: str | os.PathLike[str] | Source, **selection: Unpack[GenerationSelection]) -> pl.DataFrame:
    """:func:`latency_percentiles` of a store's generations in a window, computed by DuckDB (``quantile_cont``
    interpolates linearly, as Polars' ``interpolation="linear"``)."""
    return _store_frame(store, _PERCENTILES_SQL, selection)


def _store_frame(store: str | os.PathLike[str] | Source, sql: str, selection: GenerationSelection) -> pl.DataFrame:
    """One of this module's statements where the spans are: the store's DuckDB, or inside ClickHouse (the same
    text, translated by sqlglot)."""
    from loratrace.analysis.window import PARAMETER_KINDS
    from loratrace.sources import as_source

    params = generation_params(
        since=selection["since"],
        until=selection["until"],
        adapter=selection.get("adapter"),
        cohort=selection.get("cohort"),
    )
    return as_source(store).analysis_query(sql, params, kinds=PARAMETER_KINDS)


def slower_than_base(
    generations: pl.LazyFrame, *, alpha: float = 0.05, min_n: int = 30, min_effect: float = 0.02
) -> pl.DataFrame:
    """Per adapter x route x cohort: the share of requests slower than the base's p95 there, tested against 5 %.

    The base p95 is the nearest-rank order statistic of the base durations (``ceil(0.95 m)``-th smallest).
    Columns: ``adapter``, ``adapter_id``, ``route``, ``cohort``, ``base_p95_ms``, ``n_base``, ``n_adapter``,
    ``slower`` (count above the base p95), ``share``, ``p_value`` (one-sided exact exceedance test), ``q_value``
    (Benjamini-Hochberg across the rows with a test), ``verdict``: ``slower`` when q < ``alpha`` and the share
    exceeds 5 % by at least ``min_effect``, ``insufficient_data`` when either arm has fewer than ``min_n``
    requests or the cohort has no base traffic, else ``no_change``.
    """
    _check_settings(alpha, min_n)
    return verdicts(slower_than_base_counts(generations), alpha=alpha, min_n=min_n, min_effect=min_effect)


def verdicts(counts: pl.DataFrame, *, alpha: float = 0.05, min_n: int = 30, min_effect: float = 0.02) -> pl.DataFrame:
    """The statistics of :func:`slower_than_base` on its counts (from Polars or from the store's engine)."""
    _check_settings(alpha, min_n)
    rows = (
        counts.with_columns(
            pl.col("n_base").fill_null(0).cast(pl.Int64),
            pl.col("n_adapter").cast(pl.Int64),
            pl.col("slower").cast(pl.Int64),
            pl.col("base_above").cast(pl.Int64),
            pl.col("base_p95_ms").cast(pl.Float64),
        )
        .with_columns((pl.col("slower") / pl.col("n_adapter")).alias("share"))
        .sort("adapter", "adapter_id", "route", "cohort", nulls_last=True)
    )
    testable = (rows["n_base"] >= min_n) & (rows["n_adapter"] >= min_n) & rows["base_p95_ms"].is_not_null()
    p_values = [
        exceedance_p_value(int(x), n=int(n), m=int(m), above=int(r)) if ok else math.nan
        for x, n, m, r, ok in zip(
            rows["slower"].fill_null(0),
            rows["n_adapter"],
            rows["n_base"],
            rows["base_above"].fill_null(0),
            testable,
            strict=True,
        )
    ]
    tested = [p for p, ok in zip(p_values, testable, strict=True) if ok]
    adjusted = iter(_stats().false_discovery_control(tested, method="bh").tolist() if tested else [])
    q_values = [next(adjusted) if ok else math.nan for ok in testable]
    rows = rows.drop("base_above").with_columns(
        pl.Series("p_value", p_values, dtype=pl.Float64).fill_nan(None),
        pl.Series("q_value", q_values, dtype=pl.Float64).fill_nan(None),
        testable.alias("_testable"),
    )
    verdict = (
        pl.when(~pl.col("_testable"))
        .then(pl.lit("insufficient_data"))
        .when((pl.col("q_value") < alpha) & (pl.col("share") >= BASE_P95_SHARE + min_effect))
        .then(pl.lit("slower"))
        .otherwise(pl.lit("no_change"))
    )
    columns = ["adapter", "adapter_id", "route", "cohort", "base_p95_ms", "n_base", "n_adapter", "slower", "share"]
    return rows.with_columns(verdict.alias("verdict")).select(*columns, "p_value", "q_value", "verdict")
