"""``loratrace spikes`` against a store: read the generations of a time range, check the names asked for, run.

The command line stays thin: this module owns reading the store, the "did you mean" checks and the knobs'
plumbing into :func:`loratrace.analysis.spikes.spike_windows`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from loratrace.analysis.spike_metrics import DEFAULT_SPIKE_METRICS, SPIKE_METRICS
from loratrace.analysis.spikes import SpikeBaseline, spike_episodes, spike_windows
from loratrace.store import query

_COLUMNS = ("start_time", "adapter_name", "adapter_id", "status_code", "error_type", "fallback", "schema_attempts")
BASE_LABEL = "(base)"
"""How the base model's arm is named on the command line and in tables (its ``adapter`` is null)."""


class SpikeInputError(ValueError):
    """A name or range asked for that the store cannot answer; ``option`` names the flag at fault."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class SpikeResult:
    """Every window scored, and the episodes among them."""

    windows: pl.DataFrame
    episodes: pl.DataFrame


def load_generations(
    store: str | os.PathLike[str], *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> pl.DataFrame:
    """The ``generations`` columns a spike check reads, for ``since <= start_time < until`` (UTC)."""
    conditions, params = [], []
    if since is not None:
        conditions.append("start_time >= ?")
        params.append(_naive_utc(since))
    if until is not None:
        conditions.append("start_time < ?")
        params.append(_naive_utc(until))
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    frame = query(store, f"SELECT {', '.join(_COLUMNS)} FROM generations{where}", params)
    if frame.height == 0:
        return pl.DataFrame(schema={"start_time": pl.Datetime("us"), "adapter_name": pl.String})
    return frame


def _naive_utc(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.timezone.utc).replace(tzinfo=None) if at.tzinfo else at


def _data_range(store: str | os.PathLike[str]) -> str:
    first, last, count = query(store, "SELECT min(start_time), max(start_time), count(*) FROM generations").row(0)
    if not count:
        return "the store holds no generations yet"
    return f"the store's generations run from {first:%Y-%m-%dT%H:%M:%S} to {last:%Y-%m-%dT%H:%M:%S} UTC"


def _check_names(asked: Sequence[str], known: Sequence[str], option: str, what: str) -> None:
    for name in asked:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, near))}?" if near else ""
            msg = f"no {what} {name!r} in this range.{hint} Known: {', '.join(known) or '(none)'}"
            raise SpikeInputError(option, msg)


def run_spikes(
    store: str | os.PathLike[str],
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    window: dt.timedelta = dt.timedelta(hours=1),
    adapters: Sequence[str] = (),
    metrics: Sequence[str] = (),
    baseline: SpikeBaseline = "ewma",
    persistence: int = 2,
    min_n: int = 50,
    z_threshold: float = 3.0,
) -> SpikeResult:
    """Score every window of the store's generations in ``[since, until)``; see ``spike_windows`` for the knobs.

    Raises
    ------
    SpikeInputError
        The range holds no generations (the message says which range does), or an adapter or metric is unknown
        (the message suggests the nearest names).
    """
    _check_names(metrics, list(SPIKE_METRICS), "--metric", "metric")
    generations = load_generations(store, since=since, until=until)
    if generations.height == 0:
        msg = f"no generations between {since or 'the start'} and {until or 'now'}; {_data_range(store)}"
        raise SpikeInputError("--since", msg)
    served = sorted({name if name is not None else BASE_LABEL for name in generations["adapter_name"].unique()})
    _check_names(adapters, served, "--adapter", "adapter")
    if adapters:
        keep = pl.col("adapter_name").is_in([name for name in adapters if name != BASE_LABEL])
        generations = generations.filter(keep | pl.col("adapter_name").is_null() if BASE_LABEL in adapters else keep)
    windows = spike_windows(
        generations.lazy(),
        window=window,
        metrics=list(metrics) or DEFAULT_SPIKE_METRICS,
        baseline=baseline,
        persistence=persistence,
        min_n=min_n,
        z_threshold=z_threshold,
    )
    scored = windows.collect()
    return SpikeResult(windows=scored, episodes=spike_episodes(scored.lazy(), window=window).collect())
