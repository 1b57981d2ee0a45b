"""What every source of spans gives the analyses (the local store and ClickHouse alike)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import polars as pl

from loratrace.analysis._typing import Traffic
from loratrace.analysis.metrics import Metric


@dataclass(frozen=True)
class Selection:
    """Which generations an analysis reads: a time window (naive UTC, ``until`` exclusive), traffic, names."""

    since: datetime | None = None
    until: datetime | None = None
    traffic: Traffic = "all"
    adapters: tuple[str, ...] = ()
    cohorts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Present:
    """What a selection's window holds: adapter names, cohorts, generation count, evaluation names."""

    adapters: list[str]
    cohorts: list[str]
    rows: int
    eval_names: list[str]


class Source(Protocol):
    """Spans an analysis reads; ``cells`` runs where the spans are, only the cells come back."""

    def generations(self, selection: Selection = ...) -> pl.LazyFrame:
        """Generation rows with the arm keys (``loratrace.analysis.load.generations``)."""
        ...

    def evals(self, selection: Selection = ...) -> pl.LazyFrame:
        """Evaluation rows with the arm keys (``loratrace.analysis.load.evals``)."""
        ...

    def present(self, selection: Selection = ...) -> Present:
        """What the selection's window holds (adapter and cohort filters not applied)."""
        ...

    def eval_names(self, selection: Selection = ...) -> list[str]:
        """The evaluation names in the selection's window."""
        ...

    def cells_and_paired(
        self, metrics: Sequence[Metric], *, window: timedelta | None, selection: Selection = ...
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """:meth:`cells` and :meth:`paired_cells` together (one pass where the engine allows it)."""
        ...

    def cells(self, metrics: Sequence[Metric], *, window: timedelta | None, selection: Selection = ...) -> pl.DataFrame:
        """Cells of sufficient statistics (``loratrace.analysis.cells.CELL_COLUMNS``)."""
        ...

    def paired_cells(self, metrics: Sequence[Metric], *, selection: Selection = ...) -> pl.DataFrame:
        """Paired cells over the replayed generations (``loratrace.analysis.cells.PAIRED_COLUMNS``)."""
        ...

    def feedback(self) -> pl.DataFrame:
        """Every feedback joined to its generation (``loratrace.analysis.feedback.load_feedback``'s columns)."""
        ...

    def feedback_cells(
        self,
        metrics: Sequence[Metric],
        feedback: pl.DataFrame,
        *,
        window: timedelta | None,
        selection: Selection = ...,
    ) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
        """Cells of ``feedback:<kind>`` metrics, and each asked kind's window completeness
        (``loratrace.analysis.feedback.completeness``)."""
        ...

    def spike_counts(
        self, metric_names: Sequence[str], *, window: timedelta, selection: Selection = ...
    ) -> pl.DataFrame:
        """``loratrace.analysis.spikes.window_ids`` of the selection's generations, computed where they are."""
        ...

    def latest_adapter_id(self, adapter: str) -> str | None:
        """The id that last served under ``adapter`` (the weights a release would keep serving)."""
        ...

    def analysis_query(
        self, sql: str, params: Mapping[str, Any] | None = None, *, kinds: Mapping[str, str] | None = None
    ) -> pl.DataFrame:
        """A DuckDB statement over the store's views (``spans``, ``span_events``, ``evals``, ``generations``), run
        where the spans are: the store's DuckDB, or translated by sqlglot inside ClickHouse."""
        ...

    def query(self, name: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """One of the incident queries shipped in ``loratrace/queries/``."""
        ...

    def close(self) -> None: ...


def narrow(
    cells: pl.DataFrame, paired: pl.DataFrame, adapters: Sequence[str] | None, cohorts: Sequence[str] | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cells and paired cells of the named adapters (the base arm kept: it is what they compare with) and
    cohorts; None or empty keeps all."""
    if adapters:
        keep = pl.col("adapter").is_in(list(adapters))
        cells = cells.filter(keep | (pl.col("arm") == "base"))
        paired = paired.filter(keep)
    if cohorts:
        cells = cells.filter(pl.col("cohort").is_in(list(cohorts)))
        paired = paired.filter(pl.col("cohort").is_in(list(cohorts)))
    return cells, paired


EVERYTHING = Selection()
"""No window, all traffic, every adapter and cohort."""
