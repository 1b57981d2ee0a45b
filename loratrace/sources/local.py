"""The local store as a source: Polars scans of the Parquet segments, DuckDB for the incident queries."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl

from loratrace.analysis import load
from loratrace.analysis.cells import cells, paired_cells
from loratrace.analysis.metrics import Metric
from loratrace.sources.base import EVERYTHING, Present, Selection, narrow


def _names(frame: pl.LazyFrame, selection: Selection) -> pl.LazyFrame:
    if selection.adapters:
        frame = frame.filter(pl.col("adapter").is_in(list(selection.adapters)) | (pl.col("arm") == "base"))
    if selection.cohorts:
        frame = frame.filter(pl.col("cohort").is_in(list(selection.cohorts)))
    return frame


class LocalStore:
    """A store folder written by ``loratrace collect`` or ``loratrace.instrument(store=...)``."""

    kind = "local"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.path)!r})"

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own readers."""

    def _generations(self, selection: Selection) -> pl.LazyFrame:
        return load.load_generations(self.path, since=selection.since, until=selection.until, traffic=selection.traffic)

    def _evals(self, selection: Selection) -> pl.LazyFrame:
        return load.load_evals(self.path, since=selection.since, until=selection.until, traffic=selection.traffic)

    def generations(self, selection: Selection = EVERYTHING) -> pl.LazyFrame:
        return _names(self._generations(selection), selection)

    def evals(self, selection: Selection = EVERYTHING) -> pl.LazyFrame:
        return _names(self._evals(selection), selection)

    def present(self, selection: Selection = EVERYTHING) -> Present:
        row = (
            self._generations(selection)
            .select(
                pl.col("adapter").drop_nulls().unique().sort().implode(),
                pl.col("cohort").drop_nulls().unique().sort().implode(),
                pl.len().alias("rows"),
            )
            .collect()
            .row(0, named=True)
        )
        names = self._evals(selection).select(pl.col("name").drop_nulls().unique().sort()).collect()["name"]
        return Present(row["adapter"], row["cohort"], int(row["rows"]), names.to_list())

    def eval_names(self, selection: Selection = EVERYTHING) -> list[str]:
        frame = self._evals(selection).select(pl.col("name").drop_nulls().unique().sort()).collect()
        return frame["name"].to_list()

    def cells_and_paired(
        self, metrics: Sequence[Metric], *, window: timedelta | None, selection: Selection = EVERYTHING
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Cells in the store's DuckDB (one pass, the same metric SQL), paired cells only when rows can pair."""
        from loratrace.analysis.run import _paired_for_store
        from loratrace.analysis.store_cells import store_cells

        bounds: dict[str, Any] = {"since": selection.since, "until": selection.until, "traffic": selection.traffic}
        cell_frame, counts = store_cells(self.path, metrics=metrics, window=window, **bounds)
        paired = _paired_for_store(self.path, metrics, counts, **bounds)
        return narrow(cell_frame, paired, selection.adapters, selection.cohorts)

    def cells(
        self, metrics: Sequence[Metric], *, window: timedelta | None, selection: Selection = EVERYTHING
    ) -> pl.DataFrame:
        return cells(self.generations(selection), self.evals(selection), metrics=metrics, window=window).collect()

    def paired_cells(self, metrics: Sequence[Metric], *, selection: Selection = EVERYTHING) -> pl.DataFrame:
        return paired_cells(self.generations(selection), self.evals(selection), metrics=metrics).collect()

    def feedback(self) -> pl.DataFrame:
        from loratrace.analysis.feedback import load_feedback

        return load_feedback(self.path)

    def feedback_cells(
        self,
        metrics: Sequence[Metric],
        feedback: pl.DataFrame,
        *,
        window: timedelta | None,
        selection: Selection = EVERYTHING,
    ) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
        """Feedback joins per generation from another view: these cells come from the Polars path, on the same
        SQL definitions (the feedback counts are columns only there)."""
        from loratrace.analysis import feedback as analysis
        from loratrace.analysis.run import DEFAULT_WINDOW

        with_feedback, kinds = analysis.with_feedback(self._generations(selection), feedback)
        frame = cells(with_feedback, metrics=metrics, window=window).collect()
        asked = {m.name for m in metrics}
        completeness = {
            kind: analysis.completeness(with_feedback, feedback, kind=kind, window=window or DEFAULT_WINDOW)
            for kind in kinds
            if analysis.feedback_column(kind) in asked
        }
        return frame, completeness

    def spike_counts(
        self, metric_names: Sequence[str], *, window: timedelta, selection: Selection = EVERYTHING
    ) -> pl.DataFrame:
        from loratrace.analysis.spikes import window_ids

        return window_ids(self.generations(selection), window=window, metrics=metric_names).collect()

    def latest_adapter_id(self, adapter: str) -> str | None:
        from loratrace.analysis.gate import latest_adapter_id

        return latest_adapter_id(self.path, adapter)

    def analysis_query(
        self, sql: str, params: Mapping[str, Any] | None = None, *, kinds: Mapping[str, str] | None = None
    ) -> pl.DataFrame:
        """A DuckDB statement over the store's views, parameters bound (``kinds`` matter to ClickHouse only)."""
        from loratrace.store.readers import rows_to_frame
        from loratrace.store.rows import fetch_rows

        names, rows = fetch_rows(self.path, sql, dict(params or {}))
        return rows_to_frame(names, rows)

    def query(self, name: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        from loratrace.sources.queries import bound_parameters
        from loratrace.store import query

        sql, bound, _ = bound_parameters(name, params or {})
        return query(self.path, sql, bound)
