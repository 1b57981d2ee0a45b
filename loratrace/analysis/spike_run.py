"""``loratrace spikes`` against a store: read the generations of a time range, check the names asked for, run.

The command line stays thin: this module owns reading the store, the "did you mean" checks and the knobs'
plumbing into :func:`loratrace.analysis.spikes.spike_windows`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import polars as pl

from loratrace.analysis.spikes import (
    DEFAULT_SPIKE_METRICS,
    DEFAULT_SPIKE_SETTINGS,
    DEFAULT_WINDOW,
    SPIKE_METRICS,
    SpikeChanges,
    SpikeSettings,
    counts_of_window_ids,
    spike_episodes,
    spike_windows,
)
from loratrace.store import query

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from loratrace.sources.base import Source

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


def _naive_utc(at: dt.datetime | None) -> dt.datetime | None:
    """The store's ``start_time`` is naive UTC."""
    if at is None or at.tzinfo is None:
        return at
    return at.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _data_range(source: Source) -> str:
    path = getattr(source, "path", None)
    if path is None:
        return f"see `loratrace adapters --source ...` for what {source!r} holds"
    first, last, count = query(path, "SELECT min(start_time), max(start_time), count(*) FROM generations").row(0)
    if not count:
        return "the store holds no generations yet"
    return f"the store's generations run from {first:%Y-%m-%dT%H:%M:%S} to {last:%Y-%m-%dT%H:%M:%S} UTC"


def _check_names(asked: Sequence[str], known: Sequence[str], option: str, problem: str) -> None:
    for name in asked:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, near))}?" if near else ""
            msg = f"{problem.format(name=repr(name))}.{hint} Known: {', '.join(known) or '(none)'}"
            raise SpikeInputError(option, msg)


def run_spikes(
    store: str | os.PathLike[str] | Source,
    settings: SpikeSettings | None = None,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    window: dt.timedelta = DEFAULT_WINDOW,
    adapters: Sequence[str] = (),
    metric_names: Sequence[str] = (),
    **changes: Unpack[SpikeChanges],
) -> SpikeResult:
    """Score every window of the generations in ``[since, until)``.

    ``store`` is a store folder or any :class:`~loratrace.sources.Source`: the one pass over the generations
    (:func:`~loratrace.analysis.spikes.window_ids`) runs there, the scoring on its small frame. ``settings``
    (default :class:`~loratrace.analysis.spikes.SpikeSettings`), with ``changes`` applied (its fields by name:
    ``persistence=3``, ``z_threshold=4.0``, ...), says how windows are scored and flagged.

    Raises
    ------
    SpikeInputError
        The range holds no generations (the message says which range does), or an adapter or metric is unknown
        (the message suggests the nearest names).
    ValueError
        A setting out of range (see :class:`~loratrace.analysis.spikes.SpikeSettings`).
    TypeError
        A name in ``changes`` that is no setting.
    """
    from loratrace.sources import as_source
    from loratrace.sources.base import Selection

    knobs = replace(settings or DEFAULT_SPIKE_SETTINGS, **changes)
    _check_names(metric_names, list(SPIKE_METRICS), "--metric", "{name} is not a rate a spike check watches")
    source = as_source(store)
    chosen = list(metric_names) or list(DEFAULT_SPIKE_METRICS)
    if window <= dt.timedelta(0):
        raise SpikeInputError("--window", f"window must be a positive duration, got {window!r}")
    selection = Selection(since=_naive_utc(since), until=_naive_utc(until))
    per_id = source.spike_counts(chosen, window=window, selection=selection)
    served_now = per_id["adapter"].unique()
    if served_now.len() == 0:
        msg = f"no generations between {since or 'the start'} and {until or 'now'}; {_data_range(source)}"
        raise SpikeInputError("--since", msg)
    served = sorted(name if name is not None else BASE_LABEL for name in served_now)
    _check_names(adapters, served, "--adapter", "no adapter {name} served in this range")
    if adapters:
        keep = pl.col("adapter").is_in([name for name in adapters if name != BASE_LABEL])
        per_id = per_id.filter(keep | pl.col("adapter").is_null() if BASE_LABEL in adapters else keep)
    windows = spike_windows(
        counts=counts_of_window_ids(per_id.lazy(), window=window, metrics=chosen),
        window=window,
        metrics=chosen,
        settings=knobs,
    )
    scored = windows.collect()
    return SpikeResult(windows=scored, episodes=spike_episodes(scored.lazy(), window=window).collect())
