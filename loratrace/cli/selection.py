"""What an analysis command reads: the spans (``--store`` or ``--source``) in a window (``--since`` / ``--until``),
checked before any statistics run, so bad input exits with code 2 and a message naming the flag."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loratrace.cli.options import BadInput, open_source

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from loratrace.sources.base import Source


def parse_window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """``--since`` / ``--until`` as times (durations count back from now)."""
    from loratrace.analysis.timespec import parse_time

    try:
        return (
            None if since is None else parse_time(since),
            None if until is None else parse_time(until),
        )
    except ValueError as exc:
        flag = "--since" if since is not None and str(since) in str(exc) else "--until"
        raise BadInput(f"{flag}: {exc}") from exc


def nonempty_window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """``parse_window`` plus the order check: an empty window is refused before any scan."""
    start, end = parse_window(since, until)
    if start is not None and end is not None and start >= end:
        msg = f"--since/--until: the window is empty (since {start.isoformat()} is not before until {end.isoformat()})"
        raise BadInput(msg)
    return start, end


def duration(value: str, flag: str = "--window") -> timedelta:
    """A duration flag (``--window``, ``--every``), or exit 2 naming the flag."""
    from loratrace.analysis.timespec import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise BadInput(f"{flag}: {exc}") from exc


def none_when_empty(options: dict[str, Any], *names: str) -> None:
    """A repeatable flag given no times means "all", which the analyses spell None."""
    for name in names:
        options[name] = options[name] or None


@dataclass(frozen=True)
class Selection:
    """The spans a command reads and its window; ``store`` is the folder when ``--store`` named one."""

    spans: Source
    store: str | None
    since: datetime | None
    until: datetime | None

    @property
    def target(self) -> str | Source:
        """What the analyses take: the store folder itself (its own fast paths), else the source."""
        return self.store if self.store is not None else self.spans

    @property
    def flag(self) -> str:
        """The flag that named the spans, for messages."""
        return "--store" if getattr(self.spans, "kind", "local") == "local" else "--source"


@contextmanager
def selected(options: dict[str, Any], *, check_order: bool = False) -> Iterator[Selection]:
    """Takes ``store``, ``source``, ``since`` and ``until`` out of a command's ``options`` and opens the spans for
    the length of the block; the window is parsed first, so a bad time fails before anything is opened."""
    parse = nonempty_window if check_order else parse_window
    since, until = parse(options.pop("since"), options.pop("until"))
    store = options.pop("store")
    spans = open_source(store, options.pop("source"))
    try:
        yield Selection(spans, store, since, until)
    finally:
        spans.close()


def checked_cells(selection: Selection, adapter: str | None, cohort: str | None) -> Any:
    """The window's inventory cells after the checks the store commands make (exit code 2): a window with
    generations, a known adapter and cohort; filtered to ``adapter`` (and the base) and ``cohort``."""
    from loratrace.analysis import window
    from loratrace.analysis.inventory import store_cells
    from loratrace.errors import QueryError, StoreError

    start, end = selection.since, selection.until
    try:  # the one pass over the spans runs where they are; the checks use its small frame of cells
        cells = store_cells(selection.spans, since=start, until=end).collect()
    except (StoreError, QueryError) as exc:
        raise BadInput(f"{selection.flag}: {exc}") from None
    if cells.height == 0:
        path = getattr(selection.spans, "path", None)
        if path is not None:
            raise BadInput(window.empty_window_message(path, start, end))
        raise BadInput(f"no generations from {start or 'the start'} until {end or 'now'} in {selection.spans!r}")
    return narrowed(cells, cells, adapter, cohort)


def analysis_frame(store: str, since: str | None, until: str | None, adapter: str | None, cohort: str | None) -> Any:
    """The window's generations as a LazyFrame, after the same checks as :func:`checked_cells`."""
    from loratrace.analysis import window
    from loratrace.errors import StoreError

    start, end = nonempty_window(since, until)
    try:
        frame = window.generations(store, since=start, until=end)
        seen = frame.select("adapter_name", "cohort").unique().collect()
    except StoreError as exc:
        raise BadInput(f"--store: {exc}") from None
    if seen.height == 0:
        raise BadInput(window.empty_window_message(store, start, end))
    return narrowed(frame, seen, adapter, cohort)


def narrowed(frame: Any, seen: Any, adapter: str | None, cohort: str | None) -> Any:
    """``frame`` (eager or lazy) narrowed to ``adapter`` (and the base model) and ``cohort``, each of which must be
    among the ``seen`` ones (exit code 2 naming the nearest otherwise)."""
    import polars as pl

    from loratrace.analysis import window
    from loratrace.errors import ConfigurationError

    try:
        window.check_known("adapter", adapter, seen["adapter_name"].to_list(), flag="--adapter")
        window.check_known("cohort", cohort, seen["cohort"].to_list(), flag="--cohort")
    except ConfigurationError as exc:
        raise BadInput(str(exc)) from None
    if adapter is not None:
        frame = frame.filter(pl.col("adapter_name").is_null() | (pl.col("adapter_name") == adapter))
    if cohort is not None:
        frame = frame.filter(pl.col("cohort") == cohort)
    return frame
