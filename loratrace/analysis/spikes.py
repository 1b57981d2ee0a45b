"""Spikes: an adapter's bad-event rates per time window against its own trailing baseline.

Each window's rate is compared with a baseline built only from earlier windows of the same adapter and metric,
as a one-sided binomial z-score. A window is *above* when it has enough traffic (volume floor), its baseline has
enough history, the rate exceeds the baseline by a minimum relative change and the z-score passes the threshold;
it is *flagged* once ``persistence`` consecutive windows were above. Consecutive above windows that reached the
persistence make one *episode*.

Baselines (``baseline=``):

- ``"ewma"``: an exponentially weighted average of the previous windows, weighted by their traffic
  (``sum w_i x_i / sum w_i n_i`` with ``w_i = 0.5 ** (age_i / half_life)``);
- ``"same_hour"``: the same average over the windows at the same time of day on previous days, for traffic
  whose failure rate follows the clock (batch jobs at night, peak hours).

The z-score accounts for the baseline's own uncertainty and carries Yates' continuity correction, which keeps
the normal approximation from over-alarming on windows of a few events:
``z = (p - p0 - 1/(2n)) / sqrt(p0 (1 - p0) (1/n + 1/m))`` where
``m = (sum w_i n_i)^2 / sum w_i^2 n_i`` is the baseline's effective sample size (Kish, *Survey Sampling*, 1965)
and ``p0`` the baseline with a Jeffreys half-count added (``(x + 0.5) / (n + 1)``) so that a baseline of zero
events does not make every first event infinitely surprising. Windows above their baseline do not feed it (found
in a first pass, left out of the second), so a spike is not learnt as normal while it lasts; a lasting shift
still becomes normal once the first pass's baseline has caught up with it: a spike check finds changes, a drift
check finds levels.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypedDict

import polars as pl

from loratrace.analysis._typing import SpikeBaseline
from loratrace.analysis.metrics import BUILTIN, Metric

DEFAULT_SPIKE_METRICS: Final = ("error_rate", "timeout_rate", "fallback_rate", "schema_retry_rate")
"""The rates a spike check watches unless told otherwise."""
DEFAULT_WINDOW: Final = dt.timedelta(hours=1)
"""The width of a spike check's windows unless told otherwise."""
SPIKE_METRICS: Final[dict[str, Metric]] = {
    name: metric for name, metric in BUILTIN.items() if metric.kind == "rate" and metric.source == "generations"
}
"""Every rate of one generation that a spike check can watch (the analysis registry's definitions)."""

WINDOW_COLUMNS = (
    "adapter",
    "adapter_id",
    "metric",
    "window_start",
    "n",
    "events",
    "rate",
    "baseline",
    "z",
    "above",
    "flagged",
    "episode",
)
"""The columns of :func:`spike_windows`, in order."""

_DAY = dt.timedelta(days=1)


@dataclass(frozen=True, kw_only=True)
class SpikeSettings:
    """How a spike check decides which windows are above their baseline and which are flagged.

    The knobs of :func:`spike_windows`, :func:`loratrace.analysis.spike_run.run_spikes` and ``loratrace spikes``;
    the defaults are the ones measured in docs/benchmarks.md.

    Parameters
    ----------
    baseline
        ``"ewma"`` (previous windows) or ``"same_hour"`` (the same time of day on previous days).
    half_life
        Age, in baseline windows, at which a window's weight halves (None: 24 for ``"ewma"``, 7 days for
        ``"same_hour"``; see :attr:`baseline_half_life`).
    z_threshold
        One-sided binomial z-score a window must reach.
    min_n
        Volume floor: windows with fewer counted generations are never above.
    min_baseline_n
        The baseline's effective sample size below which it is still warming up (no window is above).
    min_relative_change
        The rate must be at least ``baseline * (1 + min_relative_change)``.
    persistence
        Consecutive above windows needed before a window is flagged.

    Raises
    ------
    ValueError
        A baseline that is not one of the two, or a half-life, floor or persistence below what can be scored.
    """

    baseline: SpikeBaseline = "ewma"
    half_life: float | None = None
    z_threshold: float = 3.0
    min_n: int = 50
    min_baseline_n: float = 200.0
    min_relative_change: float = 0.5
    persistence: int = 2

    def __post_init__(self) -> None:
        if self.baseline not in ("ewma", "same_hour"):
            msg = f"baseline must be 'ewma' or 'same_hour', got {self.baseline!r}"
            raise ValueError(msg)
        if self.half_life is not None and self.half_life <= 0:
            msg = f"half_life must be positive (in baseline windows), got {self.half_life!r}"
            raise ValueError(msg)
        if self.min_n < 1 or self.min_baseline_n < 1:
            msg = f"min_n and min_baseline_n must be at least 1, got {self.min_n!r} and {self.min_baseline_n!r}"
            raise ValueError(msg)
        if self.persistence < 1:
            msg = f"persistence must be at least 1 window, got {self.persistence!r}"
            raise ValueError(msg)

    @property
    def baseline_half_life(self) -> float:
        """``half_life``, or the baseline's default when it is None."""
        if self.half_life is not None:
            return self.half_life
        return 24.0 if self.baseline == "ewma" else 7.0


DEFAULT_SPIKE_SETTINGS: Final = SpikeSettings()


class SpikeChanges(TypedDict, total=False):
    """:class:`SpikeSettings` fields given by name to a function that applies them (``run_spikes(persistence=3)``);
    the same names and types (a test keeps them in step)."""

    baseline: SpikeBaseline
    half_life: float | None
    z_threshold: float
    min_n: int
    min_baseline_n: float
    min_relative_change: float
    persistence: int


def _check_window(window: dt.timedelta, metrics: Sequence[str], settings: SpikeSettings) -> None:
    if window <= dt.timedelta(0):
        msg = f"window must be a positive duration, got {window!r}"
        raise ValueError(msg)
    if settings.baseline == "same_hour" and (window > _DAY or _DAY % window):
        msg = f"baseline='same_hour' needs a window that divides a day (e.g. 1h, 15m), got {window}"
        raise ValueError(msg)
    _check_metrics(metrics)


def window_counts(
    generations: pl.LazyFrame, *, window: dt.timedelta = DEFAULT_WINDOW, metrics: Sequence[str] = DEFAULT_SPIKE_METRICS
) -> pl.LazyFrame:
    """Events and traffic per adapter × metric × window, with empty windows filled in as ``n = 0``.

    Parameters
    ----------
    generations
        Generation rows as :func:`loratrace.analysis.load.generations` gives them (at least ``start_time``,
        ``adapter`` (null for the base arm), ``adapter_id`` and the columns the metrics read).
    window
        Width of a window; windows start at multiples of it since the Unix epoch (UTC).
    metrics
        Names from :data:`SPIKE_METRICS`.

    Returns
    -------
    pl.LazyFrame
        ``adapter`` (null for the base model), ``adapter_id`` (the last id seen in the window), ``metric``,
        ``window_start`` (Datetime UTC), ``n`` and ``events``. Each adapter × metric runs without gaps from its
        first window to the last window of the input.

    Examples
    --------
    >>> import datetime as dt
    >>> gens = pl.LazyFrame(
    ...     {
    ...         "start_time": [dt.datetime(2026, 1, 1, h, m) for h, m in [(0, 5), (0, 50), (2, 0)]],
    ...         "adapter": ["a1", "a1", "a1"],
    ...         "adapter_id": ["sha256:1", "sha256:1", "sha256:1"],
    ...         "fallback": [True, False, False],
    ...     }
    ... )
    >>> window_counts(gens, metrics=["fallback_rate"]).collect().select("window_start", "n", "events")
    shape: (3, 3)
    ┌─────────────────────────┬─────┬────────┐
    │ window_start            ┆ n   ┆ events │
    │ ---                     ┆ --- ┆ ---    │
    │ datetime[μs, UTC]       ┆ i64 ┆ f64    │
    ╞═════════════════════════╪═════╪════════╡
    │ 2026-01-01 00:00:00 UTC ┆ 2   ┆ 1.0    │
    │ 2026-01-01 01:00:00 UTC ┆ 0   ┆ 0.0    │
    │ 2026-01-01 02:00:00 UTC ┆ 1   ┆ 0.0    │
    └─────────────────────────┴─────┴────────┘
    """
    return counts_of_window_ids(window_ids(generations, window=window, metrics=metrics), window=window, metrics=metrics)


def _check_metrics(metrics: Sequence[str]) -> None:
    unknown = [name for name in metrics if name not in SPIKE_METRICS]
    if unknown or not metrics:
        msg = f"metrics must be among {sorted(SPIKE_METRICS)}, got {list(metrics)!r}"
        raise ValueError(msg)


def window_ids(
    generations: pl.LazyFrame, *, window: dt.timedelta = DEFAULT_WINDOW, metrics: Sequence[str] = DEFAULT_SPIKE_METRICS
) -> pl.LazyFrame:
    """The one pass over the generations: per adapter × adapter id × window, the last span's time and each
    metric's ``n:<metric>`` (rows it counts) and ``events:<metric>``.

    This is the step that runs where the spans are (``loratrace.sources``: here in Polars, inside ClickHouse
    from the same metric SQL there); :func:`counts_of_window_ids` takes it from either.
    """
    _check_metrics(metrics)
    start = pl.col("start_time")
    start_type = generations.collect_schema()["start_time"]
    if isinstance(start_type, pl.Datetime) and start_type.time_zone is None:
        start = start.dt.replace_time_zone("UTC")
    else:
        start = start.dt.convert_time_zone("UTC")
    values = generations.select(
        start.dt.cast_time_unit("us").alias("start_time"),
        pl.col("adapter"),
        pl.col("adapter_id"),
        *(SPIKE_METRICS[name].expr().alias(name) for name in metrics),
    )
    # keyed by id too (cheaper than picking an id per group out of millions of rows); the small per-id frame
    # then gives each window its counts and latest id
    return (
        values.with_columns(window_start=pl.col("start_time").dt.truncate(window))
        .group_by("adapter", "adapter_id", "window_start")
        .agg(
            pl.col("start_time").max().alias("last_seen"),
            *(pl.col(name).count().cast(pl.Int64).alias(f"n:{name}") for name in metrics),
            *(pl.col(name).sum().alias(f"events:{name}") for name in metrics),
        )
    )


def counts_of_window_ids(
    per_id: pl.LazyFrame, *, window: dt.timedelta = DEFAULT_WINDOW, metrics: Sequence[str] = DEFAULT_SPIKE_METRICS
) -> pl.LazyFrame:
    """:func:`window_counts` from :func:`window_ids`' frame (computed by Polars or by the source's engine)."""
    _check_metrics(metrics)
    # collected here so that the input is read once: everything after reads this small frame several times
    per_window = (
        per_id.group_by("adapter", "window_start")
        .agg(
            pl.col("adapter_id").sort_by("last_seen").drop_nulls().last(),
            *(pl.col(f"n:{name}").sum() for name in metrics),
            *(pl.col(f"events:{name}").fill_null(0.0).sum() for name in metrics),
        )
        .collect()
        .lazy()
    )
    counts = pl.concat(
        [
            per_window.select(
                "adapter",
                pl.lit(name).alias("metric"),
                "window_start",
                "adapter_id",
                pl.col(f"n:{name}").alias("n"),
                pl.col(f"events:{name}").alias("events"),
            ).filter(pl.col("n") > 0)
            for name in metrics
        ]
    )
    last_window = counts.select(pl.col("window_start").max().alias("last"))
    firsts = counts.group_by("adapter", "metric").agg(pl.col("window_start").min().alias("first"))
    grid = (
        firsts.join(last_window, how="cross")
        .with_columns(
            window_start=pl.datetime_ranges("first", "last", interval=window, time_unit="us", time_zone="UTC")
        )
        .explode("window_start")
        .select("adapter", "metric", "window_start")
    )
    return (
        grid.join(counts, on=["adapter", "metric", "window_start"], how="left", nulls_equal=True)
        .with_columns(pl.col("n").fill_null(0), pl.col("events").fill_null(0.0))
        .select("adapter", "adapter_id", "metric", "window_start", "n", "events")
        .sort("adapter", "metric", "window_start", nulls_last=False)
    )


def spike_windows(
    generations: pl.LazyFrame | None = None,
    *,
    counts: pl.LazyFrame | None = None,
    window: dt.timedelta = DEFAULT_WINDOW,
    metrics: Sequence[str] = DEFAULT_SPIKE_METRICS,
    settings: SpikeSettings = DEFAULT_SPIKE_SETTINGS,
) -> pl.LazyFrame:
    """Every adapter × metric × window with its rate, trailing baseline, z-score and whether it is a spike.

    Parameters
    ----------
    generations
        Generation rows (see :func:`window_counts`).
    counts
        Instead of ``generations``: their :func:`window_counts` (from a source's engine, for instance).
    window
        Width of a window.
    metrics
        Rates to watch, from :data:`SPIKE_METRICS`.
    settings
        How windows are scored and flagged (:class:`SpikeSettings`: baseline, half-life, z threshold, floors,
        minimum relative change, persistence).

    Returns
    -------
    pl.LazyFrame
        Columns :data:`WINDOW_COLUMNS`: ``rate`` (null when ``n = 0``), ``baseline`` (null before any history),
        ``z``, ``above``, ``flagged`` and ``episode`` (1, 2, ... per adapter × metric; null outside episodes).

    Examples
    --------
    Eight hourly windows of 100 generations; fallbacks jump from 5 to 30 per window in the last three:

    >>> import datetime as dt
    >>> hours = [dt.datetime(2026, 1, 1, h) for h in range(8)]
    >>> gens = pl.LazyFrame(
    ...     {
    ...         "start_time": [t for t in hours for _ in range(100)],
    ...         "fallback": [i < (30 if t.hour >= 5 else 5) for t in hours for i in range(100)],
    ...     }
    ... ).with_columns(adapter=pl.lit("a1"), adapter_id=pl.lit("sha256:1"))
    >>> spikes = spike_windows(gens, metrics=["fallback_rate"]).collect()
    >>> spikes.select(pl.col("window_start").dt.hour(), "rate", "baseline", "above", "flagged", "episode")
    shape: (8, 6)
    ┌──────────────┬──────┬──────────┬───────┬─────────┬─────────┐
    │ window_start ┆ rate ┆ baseline ┆ above ┆ flagged ┆ episode │
    │ ---          ┆ ---  ┆ ---      ┆ ---   ┆ ---     ┆ ---     │
    │ i8           ┆ f64  ┆ f64      ┆ bool  ┆ bool    ┆ u32     │
    ╞══════════════╪══════╪══════════╪═══════╪═════════╪═════════╡
    │ 0            ┆ 0.05 ┆ null     ┆ false ┆ false   ┆ null    │
    │ 1            ┆ 0.05 ┆ 0.05     ┆ false ┆ false   ┆ null    │
    │ 2            ┆ 0.05 ┆ 0.05     ┆ false ┆ false   ┆ null    │
    │ 3            ┆ 0.05 ┆ 0.05     ┆ false ┆ false   ┆ null    │
    │ 4            ┆ 0.05 ┆ 0.05     ┆ false ┆ false   ┆ null    │
    │ 5            ┆ 0.3  ┆ 0.05     ┆ true  ┆ false   ┆ 1       │
    │ 6            ┆ 0.3  ┆ 0.05     ┆ true  ┆ true    ┆ 1       │
    │ 7            ┆ 0.3  ┆ 0.05     ┆ true  ┆ true    ┆ 1       │
    └──────────────┴──────┴──────────┴───────┴─────────┴─────────┘
    """
    if (generations is None) == (counts is None):
        msg = "spike_windows takes generations or counts (exactly one)"
        raise ValueError(msg)
    _check_window(window, metrics, settings)
    series = ["adapter", "metric"]
    history = [*series, "time_of_day"] if settings.baseline == "same_hour" else series
    decay = 0.5 ** (1.0 / settings.baseline_half_life)
    prior = pl.int_range(pl.len()).over(history)  # earlier windows in this baseline's history

    def trailing_sum(column: str, weight: float) -> pl.Expr:
        # ewm_mean(adjust=True) divides by the weight sum; times that sum it is sum_{i>=0} weight**i * x_{t-i},
        # shifted so that a window never sits in its own baseline
        weight_sum = (1.0 - pl.lit(weight).pow(prior)) / (1.0 - weight)
        mean = pl.col(column).ewm_mean(alpha=1.0 - weight, adjust=True).shift(1).over(history)
        return mean.fill_null(0.0) * weight_sum

    def score(frame: pl.LazyFrame, learn: pl.Expr) -> pl.LazyFrame:
        """Baseline, z and ``above`` for every window; only windows where ``learn`` holds feed the baselines."""
        return (
            frame.with_columns(
                learnt_events=pl.when(learn).then(pl.col("events")).otherwise(0.0),
                learnt_n=pl.when(learn).then(pl.col("n")).otherwise(0),
            )
            .with_columns(
                base_events=trailing_sum("learnt_events", decay),
                base_n=trailing_sum("learnt_n", decay),
                base_n_sq=trailing_sum("learnt_n", decay * decay),
            )
            .with_columns(
                rate=pl.when(pl.col("n") > 0).then(pl.col("events") / pl.col("n")),
                baseline=pl.when(pl.col("base_n") > 0).then(pl.col("base_events") / pl.col("base_n")),
                effective_n=pl.when(pl.col("base_n_sq") > 0).then(pl.col("base_n") ** 2 / pl.col("base_n_sq")),
                smoothed=(pl.col("base_events") + 0.5) / (pl.col("base_n") + 1.0),
            )
            .with_columns(
                z=(pl.col("rate") - pl.col("smoothed") - 0.5 / pl.col("n"))
                / (
                    pl.col("smoothed") * (1.0 - pl.col("smoothed")) * (1.0 / pl.col("n") + 1.0 / pl.col("effective_n"))
                ).sqrt()
            )
            .with_columns(
                above=(
                    (pl.col("n") >= settings.min_n)
                    & (pl.col("effective_n") >= settings.min_baseline_n)
                    & (pl.col("z") >= settings.z_threshold)
                    & (pl.col("rate") > 0)
                    & (pl.col("rate") >= pl.col("baseline") * (1.0 + settings.min_relative_change))
                ).fill_null(False)
            )
        )

    # both scoring passes read the counts: computed once (they are small, arms x metrics x windows)
    if counts is None:
        if generations is None:
            raise ValueError("spike_windows needs the generations or their window counts")
        counts = window_counts(generations, window=window, metrics=metrics)
    counts = (
        counts.with_columns(time_of_day=pl.col("window_start").dt.time())
        .sort(*history, "window_start", nulls_last=False)
        .collect()
        .lazy()
    )
    # Two passes: windows a first pass finds above do not feed the second pass's baseline, so a spike is not
    # learnt as normal while it lasts. A lasting shift still becomes the new normal once the first pass's
    # baseline has caught up with it.
    first = score(counts, pl.lit(True)).select(*history, "window_start", pl.col("above").alias("first_above"))
    scored = score(
        counts.join(first, on=[*history, "window_start"], how="left", nulls_equal=True, maintain_order="left").sort(
            *history, "window_start", nulls_last=False
        ),
        ~pl.col("first_above").fill_null(False),
    )
    # persistence runs over consecutive windows in time, whichever history the baseline used
    run = (pl.col("above") != pl.col("above").shift(1)).fill_null(True).cum_sum().over(series)
    return (
        scored.sort(*series, "window_start", nulls_last=False)
        .with_columns(run=run)
        .with_columns(
            run_position=pl.int_range(1, pl.len() + 1).over([*series, "run"]),
            run_length=pl.len().over([*series, "run"]),
        )
        .with_columns(
            flagged=pl.col("above") & (pl.col("run_position") >= settings.persistence),
            in_episode=pl.col("above") & (pl.col("run_length") >= settings.persistence),
        )
        .with_columns(
            episode=pl.when(pl.col("in_episode")).then(
                (pl.col("in_episode") & pl.col("run_position").eq(1)).cum_sum().over(series)
            )
        )
        .select(WINDOW_COLUMNS)
    )


def spike_episodes(windows: pl.LazyFrame, *, window: dt.timedelta = DEFAULT_WINDOW) -> pl.LazyFrame:
    """One row per episode of :func:`spike_windows`: when it started, was flagged and ended, and how high it went.

    Parameters
    ----------
    windows
        The output of :func:`spike_windows`.
    window
        The window width that output was computed with (an episode ends one window after its last start).

    Returns
    -------
    pl.LazyFrame
        ``adapter``, ``adapter_id``, ``metric``, ``episode``, ``start``, ``flagged_at``, ``end``, ``windows``,
        ``n``, ``events``, ``baseline`` (before the episode), ``peak_rate`` and ``peak_z``, newest first.

    Examples
    --------
    >>> import datetime as dt
    >>> hours = [dt.datetime(2026, 1, 1, h) for h in range(8)]
    >>> fallback = [i < (30 if t.hour >= 5 else 5) for t in hours for i in range(100)]  # 5, then 30 from 05:00
    >>> gens = pl.LazyFrame({"start_time": [t for t in hours for _ in range(100)], "fallback": fallback})
    >>> gens = gens.with_columns(adapter=pl.lit("a1"), adapter_id=pl.lit("sha256:1"))
    >>> episodes = spike_episodes(spike_windows(gens, metrics=["fallback_rate"])).collect()
    >>> episodes.select("metric", pl.col("start", "flagged_at", "end").dt.hour(), "windows", "peak_rate")
    shape: (1, 6)
    ┌───────────────┬───────┬────────────┬─────┬─────────┬───────────┐
    │ metric        ┆ start ┆ flagged_at ┆ end ┆ windows ┆ peak_rate │
    │ ---           ┆ ---   ┆ ---        ┆ --- ┆ ---     ┆ ---       │
    │ str           ┆ i8    ┆ i8         ┆ i8  ┆ u32     ┆ f64       │
    ╞═══════════════╪═══════╪════════════╪═════╪═════════╪═══════════╡
    │ fallback_rate ┆ 5     ┆ 6          ┆ 8   ┆ 3       ┆ 0.3       │
    └───────────────┴───────┴────────────┴─────┴─────────┴───────────┘
    """
    return (
        windows.filter(pl.col("episode").is_not_null())
        .sort("window_start")
        .group_by("adapter", "metric", "episode")
        .agg(
            pl.col("adapter_id").drop_nulls().last(),
            start=pl.col("window_start").min(),
            flagged_at=pl.col("window_start").filter(pl.col("flagged")).min(),
            end=pl.col("window_start").max() + window,
            windows=pl.len(),
            n=pl.col("n").sum(),
            events=pl.col("events").sum(),
            baseline=pl.col("baseline").first(),
            peak_rate=pl.col("rate").max(),
            peak_z=pl.col("z").max(),
        )
        .select(
            "adapter",
            "adapter_id",
            "metric",
            "episode",
            "start",
            "flagged_at",
            "end",
            "windows",
            "n",
            "events",
            "baseline",
            "peak_rate",
            "peak_z",
        )
        .sort("start", "adapter", "metric", descending=[True, False, False], nulls_last=True)
    )
