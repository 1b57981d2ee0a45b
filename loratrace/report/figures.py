"""The report's plots, drawn with matplotlib and returned as inline SVG text (no files, no network, no JS).

matplotlib's object API (``Figure``) rather than ``pyplot``: no global figure state, no GUI backend, safe to
call from a server thread. Text stays text in the SVG (``svg.fonttype = "none"``) so the page is small and
searchable.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

import polars as pl

if TYPE_CHECKING:
    from matplotlib.figure import Figure

VERDICT_COLOURS: Final = {
    "regressed": "#c0392b",
    "improved": "#1e8449",
    "no_change": "#5d6d7e",
    "insufficient_data": "#b3b6b7",
}
_BASE_LABEL: Final = "(base)"


@contextmanager
def _svg_style() -> Iterator[None]:
    import matplotlib as mpl

    with mpl.rc_context({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "svg.hashsalt": "lt"}):
        yield


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE: the SVG sits inside HTML


def _label(adapter: str | None) -> str:
    return adapter if adapter is not None else _BASE_LABEL


def forest_plot(drift: pl.DataFrame) -> str:
    """One panel per metric: each adapter × cohort's delta (adapter minus base) with its interval.

    A row's flags (``simpson``, ``confounded:...``) follow its label, so a delta with no clean owner says so.

    Rows without an interval (``insufficient_data``) are drawn as a grey point at their delta when they have one.
    """
    from matplotlib.figure import Figure

    metrics = sorted(drift["metric"].unique().to_list())
    rows_per_panel = [drift.filter(pl.col("metric") == m).height for m in metrics]
    height = sum(0.28 * max(rows, 1) + 0.9 for rows in rows_per_panel)
    with _svg_style():
        figure = Figure(figsize=(7.5, max(height, 1.5)), layout="constrained")
        axes = figure.subplots(len(metrics), 1, squeeze=False, height_ratios=[max(r, 1) + 2 for r in rows_per_panel])
        for ax, metric in zip(axes[:, 0], metrics, strict=True):
            panel = drift.filter(pl.col("metric") == metric).sort("adapter", "cohort", descending=True)
            flags = panel["flags"].to_list() if "flags" in panel.columns else [None] * panel.height
            labels = [
                f"{_label(a)}{_id_suffix(drift, a, i)} · {c}{_flag_suffix(f)}"
                for a, i, c, f in zip(panel["adapter"], panel["adapter_id"], panel["cohort"], flags, strict=True)
            ]
            y = list(range(panel.height))
            for index, row in enumerate(panel.iter_rows(named=True)):
                colour = VERDICT_COLOURS.get(row["verdict"], "#5d6d7e")
                if row["ci_low"] is not None and row["ci_high"] is not None:
                    ax.plot([row["ci_low"], row["ci_high"]], [index, index], color=colour, linewidth=2)
                if row["delta"] is not None:
                    ax.plot([row["delta"]], [index], marker="o", color=colour, markersize=5)
            ax.axvline(0.0, color="#222", linewidth=0.8)
            ax.set_yticks(y, labels)
            ax.set_ylim(-0.7, max(panel.height, 1) - 0.3)
            ax.set_title(f"{metric}: adapter − base", loc="left", fontsize=10)
            ax.grid(axis="x", color="#ddd", linewidth=0.5)
        handles = [
            axes[0, 0].plot([], [], marker="o", color=c, linestyle="-", label=v.replace("_", " "))[0]
            for v, c in VERDICT_COLOURS.items()
            if v in set(drift["verdict"].to_list()) | {"regressed", "improved", "no_change"}
        ]
        figure.legend(handles=handles, loc="outside lower center", ncols=4, frameon=False, fontsize=8)
        return _svg(figure)


def _flag_suffix(flags: list[str] | None) -> str:
    return f" [{', '.join(flags)}]" if flags else ""


def _id_suffix(drift: pl.DataFrame, adapter: str | None, adapter_id: str | None) -> str:
    """`` (068c0b91)`` when the adapter name served several ids in these rows (a weight swap), else nothing."""
    ids = drift.filter(pl.col("adapter") == adapter)["adapter_id"].unique()
    if adapter is None or adapter_id is None or ids.len() < 2:
        return ""
    return f" ({adapter_id.removeprefix('sha256:')[:8]})"


def latency_plot(latency: pl.DataFrame, *, columns: Sequence[str] = ("p50_ms", "p95_ms", "p99_ms")) -> str:
    """Grouped horizontal bars: each serving arm's duration percentiles."""
    from matplotlib.figure import Figure

    arms = latency.sort("adapter", nulls_last=False)
    labels = [_label(a) for a in arms["adapter"]]
    height = 0.8 / len(columns)
    with _svg_style():
        figure = Figure(figsize=(7.5, 0.5 * len(labels) + 1.2), layout="constrained")
        ax = figure.subplots()
        for offset, (column, colour) in enumerate(zip(columns, ("#85c1e9", "#2e86c1", "#1b4f72"), strict=False)):
            positions = [index + (offset - (len(columns) - 1) / 2) * height for index in range(len(labels))]
            ax.barh(positions, arms[column].fill_null(0.0).to_list(), height=height, color=colour, label=column)
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
        ax.set_xlabel("generation duration (ms)")
        figure.legend(frameon=False, fontsize=8, loc="outside right upper")
        ax.grid(axis="x", color="#ddd", linewidth=0.5)
        return _svg(figure)


def spike_timeline(windows: pl.DataFrame, *, adapter: str | None, metric: str) -> str:
    """One adapter × metric over time: its rate per window, the trailing baseline and the flagged windows."""
    from matplotlib.figure import Figure

    series = windows.filter(
        (pl.col("adapter").is_null() if adapter is None else pl.col("adapter") == adapter)
        & (pl.col("metric") == metric)
    ).sort("window_start")
    times = series["window_start"].to_list()
    with _svg_style():
        figure = Figure(figsize=(7.5, 1.9), layout="constrained")
        ax = figure.subplots()
        ax.plot(times, series["rate"].to_list(), color="#2e86c1", linewidth=1.2, label="rate")
        ax.plot(times, series["baseline"].to_list(), color="#7f8c8d", linewidth=1, linestyle="--", label="baseline")
        flagged = series.filter(pl.col("flagged"))
        ax.scatter(flagged["window_start"].to_list(), flagged["rate"].to_list(), color="#c0392b", s=14, zorder=3)
        for start, stop in _episode_spans(series):
            ax.axvspan(start, stop, color="#f5b7b1", alpha=0.5, linewidth=0)
        ax.set_title(f"{_label(adapter)} · {metric}", loc="left", fontsize=10)
        ax.set_ylim(bottom=0)
        figure.legend(frameon=False, fontsize=8, loc="outside right upper")
        ax.grid(axis="y", color="#ddd", linewidth=0.5)
        ax.tick_params(axis="x", labelrotation=20)
        return _svg(figure)


def inventory_plot(inventory: pl.DataFrame) -> str:
    """Each adapter name's ids over time, first to last seen: a second bar on one row is a weight swap."""
    from matplotlib import dates
    from matplotlib.figure import Figure

    names = sorted(inventory["adapter"].unique().to_list())
    palette = ("#2e86c1", "#e67e22", "#8e44ad", "#16a085", "#c0392b")
    with _svg_style():
        figure = Figure(figsize=(7.5, 0.45 * len(names) + 1.1), layout="constrained")
        ax = figure.subplots()
        for row, name in enumerate(names):
            ids = inventory.filter(pl.col("adapter") == name).sort("first_seen")
            for index, served in enumerate(ids.iter_rows(named=True)):
                start, stop = dates.date2num(served["first_seen"]), dates.date2num(served["last_seen"])
                ax.barh(row, max(stop - start, 1e-3), left=start, height=0.55, color=palette[index % len(palette)])
                label = served["adapter_id"].removeprefix("sha256:")[:8]
                ax.text(start, row, f" {label}", fontsize=7, color="white", va="center")
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.xaxis_date()
        ax.tick_params(axis="x", labelrotation=20)
        ax.set_title("adapter ids serving traffic (first to last seen)", loc="left", fontsize=10)
        ax.grid(axis="x", color="#ddd", linewidth=0.5)
        return _svg(figure)


def _episode_spans(series: pl.DataFrame) -> list[tuple[Any, Any]]:
    episodes = (
        series.filter(pl.col("episode").is_not_null())
        .group_by("episode")
        .agg(pl.col("window_start").min().alias("start"), pl.col("window_start").max().alias("stop"))
    )
    return list(episodes.select("start", "stop").iter_rows())
