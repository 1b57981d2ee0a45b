"""The report page: one self-contained HTML file (inline CSS and SVG; no script, no font, no network).

Plots first, the tables behind them below, each table with the command that reproduces it.
"""

from __future__ import annotations

import datetime as dt
import html
import importlib.resources
import math
from dataclasses import dataclass
from string import Template
from typing import Any, Final

import polars as pl

from loratrace._version import __version__
from loratrace.report import figures
from loratrace.report.data import ReportData, Table

MAX_TABLE_ROWS: Final = 500
"""Rows shown per table; the command under it gives the rest."""
MAX_TIMELINES: Final = 12
"""Spike timelines drawn (the episodes' arms × metrics, newest first); the table lists every episode."""
MAX_FOREST_ROWS: Final = 60
"""Points on the forest plot: the decided rows first, then the largest deltas; the table has every row."""
_BASE_LABEL: Final = "(base)"


@dataclass(frozen=True)
class _Section:
    anchor: str
    title: str
    body: str


def _cell(value: Any) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, float):
        text = "" if math.isnan(value) else f"{value:.4g}"
        return f'<td class="num">{text}</td>'
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    if isinstance(value, dt.datetime):
        return f"<td>{value:%Y-%m-%d %H:%M}</td>"
    if isinstance(value, list):
        return f"<td>{html.escape(', '.join(map(str, value)))}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def table_html(table: Table, *, caption: str, open_: bool = False) -> str:
    """``table`` as an HTML table (the first ``MAX_TABLE_ROWS`` rows) and the command that reproduces it."""
    frame = table.frame
    shown = frame.head(MAX_TABLE_ROWS)
    if "adapter" in shown.columns:
        shown = shown.with_columns(pl.col("adapter").fill_null(_BASE_LABEL))
    head = "".join(f"<th>{html.escape(name)}</th>" for name in shown.columns)
    verdicts = shown["verdict"].to_list() if "verdict" in shown.columns else [None] * shown.height
    rows = "".join(
        f'<tr class="{html.escape(verdict or "")}">{"".join(_cell(v) for v in row)}</tr>'
        for row, verdict in zip(shown.iter_rows(), verdicts, strict=True)
    )
    more = f" (first {MAX_TABLE_ROWS} of {frame.height} rows)" if frame.height > MAX_TABLE_ROWS else ""
    return (
        f"<details{' open' if open_ else ''}><summary>{html.escape(caption)}: {_plural(frame.height, 'row')}{more}"
        "</summary>"
        f'<p class="note">Reproduce with:</p><code class="command">{html.escape(table.command)}</code>'
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'
        "</details>"
    )


def _plot(svg: str, label: str) -> str:
    return f'<figure class="plot" data-plot="{html.escape(label)}">{svg}</figure>'


def _forest_rows(drift: pl.DataFrame) -> pl.DataFrame:
    """The rows worth a point on the forest plot: metrics that moved, largest effects first, at most a page.

    Rows with too little data stay in the table only: their intervals span most of the scale and would flatten
    every interval that has something to say.
    """
    measured = drift.filter((pl.col("verdict") != "insufficient_data") & pl.col("delta").is_not_null())
    decided = measured.filter(pl.col("verdict").is_in(["regressed", "improved"]))
    metrics = decided["metric"].unique().to_list() or measured["metric"].unique().sort().head(3).to_list()
    rows = measured.filter(pl.col("metric").is_in(metrics))
    rank = pl.col("verdict").is_in(["regressed", "improved"]).cast(pl.Int8)
    return rows.sort(rank, pl.col("delta").abs(), descending=True).head(MAX_FOREST_ROWS)


def _forest(rows: pl.DataFrame) -> str:
    if rows.height == 0:
        return '<p class="empty">Every row has too little data for an interval worth plotting (see the table).</p>'
    return _plot(figures.forest_plot(rows), "forest")


def _drift_section(drift: Table | None) -> _Section:
    title = "Adapter vs base, per cohort"
    if drift is None or drift.frame.height == 0:
        body = '<p class="empty">No drift rows: the store has no adapter and base traffic to compare yet.</p>'
        return _Section("drift", title, body)
    frame = drift.frame
    counts = frame["verdict"].value_counts().sort("verdict")
    tally = ", ".join(f"{count} {verdict.replace('_', ' ')}" for verdict, count in counts.iter_rows())
    flagged = frame.filter(pl.col("flags").list.len() > 0) if "flags" in frame.columns else frame.head(0)
    flag_note = f" {flagged.height} rows carry flags (confounded, simpson, ...)." if flagged.height else ""
    body = (
        f"<p class=\"note\">Each point is the adapter's value minus the base model's on the same cohort, with its "
        f"interval; red regressed, green improved (after Benjamini–Hochberg); rows with insufficient data are in the "
        f"table only. {tally}.{flag_note}</p>" + _forest(_forest_rows(frame)) + table_html(drift, caption="Drift rows")
    )
    return _Section("drift", title, body)


def _latency_section(latency: Table) -> _Section:
    title = "Latency per adapter"
    if latency.frame.height == 0:
        return _Section("latency", title, '<p class="empty">No generations in the store.</p>')
    per_arm = latency.frame.group_by("adapter").agg(
        # an arm served at several ranks / quantizations shows its slowest configuration
        pl.col("p50_ms", "p95_ms", "p99_ms").max()
    )
    body = (
        '<p class="note">Generation duration percentiles per serving arm (the table splits them by rank, merge '
        "state and quantization).</p>"
        + _plot(figures.latency_plot(per_arm), "latency")
        + table_html(latency, caption="Latency percentiles")
    )
    return _Section("latency", title, body)


def _spike_section(windows: Table, episodes: Table) -> _Section:
    title = "Spikes"
    if windows.frame.height == 0:
        return _Section("spikes", title, '<p class="empty">No generations in the store.</p>')
    series = episodes.frame.select("adapter", "metric").unique(maintain_order=True).head(MAX_TIMELINES)
    if series.height:
        note = (
            f"{_plural(episodes.frame.height, 'spike episode')}: windows whose rate stayed above the adapter's "
            "own trailing baseline (shaded; red points are flagged windows)."
        )
    else:
        note = "No spikes: no adapter's error, timeout, fallback or schema-retry rate rose above its own baseline."
        busiest = windows.frame.group_by("adapter", "metric").agg(pl.col("events").sum()).sort("events")
        series = busiest.tail(2).select("adapter", "metric")
    plots = "".join(
        _plot(figures.spike_timeline(windows.frame, adapter=a, metric=m), f"spikes:{a or _BASE_LABEL}:{m}")
        for a, m in series.iter_rows()
    )
    body = (
        f'<p class="note">{html.escape(note)}</p>'
        + plots
        + table_html(episodes, caption="Spike episodes")
        # the windows above their baseline first, so that the rows shown are the ones worth reading
        + table_html(
            Table(windows.frame.sort("above", "z", descending=True, nulls_last=True), windows.command),
            caption="Every window scored",
        )
    )
    return _Section("spikes", title, body)


def _inventory_section(inventory: Table) -> _Section:
    title = "Adapter inventory"
    swapped = inventory.frame.filter(pl.col("id_changed"))["adapter"].unique().sort().to_list()
    note = (
        f"Adapters whose weights changed under the same name: {', '.join(swapped)}."
        if swapped
        else "No adapter name served more than one id."
    )
    if inventory.frame.height == 0:
        return _Section("inventory", title, '<p class="empty">No adapter served traffic.</p>')
    body = (
        f'<p class="note">{html.escape(note)}</p>'
        + _plot(figures.inventory_plot(inventory.frame), "inventory")
        + table_html(inventory, caption="Adapter ids that served traffic", open_=True)
    )
    return _Section("inventory", title, body)


def render_page(data: ReportData, *, title: str = "loratrace report") -> str:
    """The report for ``data`` as one HTML document."""
    sections = [
        _drift_section(data.drift),
        _latency_section(data.latency),
        _spike_section(data.spike_windows, data.spike_episodes),
        _inventory_section(data.inventory),
    ]
    span = (
        f"{data.first_seen:%Y-%m-%d %H:%M} to {data.last_seen:%Y-%m-%d %H:%M} UTC"
        if data.first_seen is not None and data.last_seen is not None
        else "no generations"
    )
    summary = (
        f"Store {html.escape(str(data.store))} · {data.generations:,} generations · {span} · generated "
        f"{data.generated_at:%Y-%m-%d %H:%M} UTC"
    )
    template = Template(importlib.resources.files("loratrace.report").joinpath("template.html").read_text("utf-8"))
    return template.substitute(
        version=html.escape(__version__),
        title=html.escape(title),
        summary=summary,
        nav="".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections),
        sections="\n".join(
            f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>{s.body}</section>' for s in sections
        ),
    )
