"""Rates against each adapter's own past: ``spikes``; and the page of every analysis: ``report``."""

from __future__ import annotations

from typing import Any

import click

from loratrace.cli.options import (
    BadInput,
    choice_option,
    count_option,
    format_option,
    store_option,
    store_or_source_options,
    time_options,
)
from loratrace.cli.render import render_rows
from loratrace.cli.selection import duration, selected


@click.command()
@store_or_source_options
@time_options
@click.option("--window", "window_text", default="1h", show_default=True, help="Width of a window (15m, 1h, 1d).")
@click.option("--adapter", "adapters", multiple=True, help="Only this adapter ('(base)' for the base); repeatable.")
@click.option(
    "--metric",
    "metric_names",
    multiple=True,
    help="Only this rate metric; default: "
    + ", ".join(("error_rate", "timeout_rate", "fallback_rate", "schema_retry_rate")),
)
@choice_option(
    "--baseline",
    ["ewma", "same_hour"],
    help="Trailing average of previous windows, or of the same time of day on previous days.",
)
@count_option("--persistence", at_least=1, default=2, help="Windows in a row.")
@count_option("--min-n", at_least=1, default=50, help="Volume floor per window.")
@click.option(
    "--z", "z_threshold", type=click.FloatRange(min=0.0), default=3.0, show_default=True, help="One-sided z to reach."
)
@click.option(
    "--min-change",
    "min_relative_change",
    type=click.FloatRange(min=0.0),
    default=0.5,
    show_default=True,
    help="Smallest relative rise over the baseline (0.5: +50 %).",
)
@format_option
def spikes(**options: Any) -> None:
    """Error, timeout, fallback and schema-retry spikes per adapter against each adapter's own trailing baseline.

    A window is above its baseline when it has --min-n generations, a z-score of at least --z and a rate at least
    --min-change above the baseline; it is flagged after --persistence such windows in a row. The table shows
    the episodes, then the windows above their baseline; JSON holds both (every window), CSV every window.

    \b
    Example:
        loratrace spikes --store ./traces --since 7d --window 1h
        loratrace spikes --store ./traces --adapter billing-v2 --metric fallback_rate --format json
        loratrace spikes --source "clickhouse://reader@ch.internal:8123/otel" --since 7d
    """
    import json

    import polars as pl

    from loratrace.analysis.spike_run import BASE_LABEL, SpikeInputError, run_spikes
    from loratrace.errors import QueryError, StoreError

    output_format = options.pop("output_format")
    with selected(options) as selection:
        window = duration(options.pop("window_text"))
        try:
            result = run_spikes(selection.spans, since=selection.since, until=selection.until, window=window, **options)
        except SpikeInputError as exc:
            raise BadInput(f"{exc.option}: {exc}") from exc
        except (StoreError, QueryError) as exc:
            raise BadInput(str(exc)) from exc
    if output_format == "json":
        document = {
            "episodes": json.loads(render_rows(result.episodes, "json")),
            "windows": json.loads(render_rows(result.windows, "json")),
        }
        click.echo(json.dumps(document))
    elif output_format == "csv":
        click.echo(render_rows(result.windows, "csv"), nl=False)
    else:
        base = pl.col("adapter").fill_null(BASE_LABEL)
        click.echo(f"Spike episodes ({len(result.episodes)}):")
        click.echo(render_rows(result.episodes.with_columns(base), "table"))
        click.echo("Windows above their baseline:")
        click.echo(render_rows(result.windows.filter("above").with_columns(base), "table"), nl=False)


@click.command()
@store_option
@click.option(
    "--html", "html_file", required=True, type=click.Path(dir_okay=False, writable=True), help="Page to write."
)
@click.option("--window", "window_text", default="1h", show_default=True, help="Window of the spike timelines.")
@click.option("--title", default="loratrace report", show_default=True, help="Title of the page.")
def report(store: str, html_file: str, window_text: str, title: str) -> None:
    """Write one self-contained HTML page: drift forest plot, latency, spike timelines, inventory, their tables.

    The page opens offline (inline SVG and CSS, no script, nothing fetched); under each table is the command
    that reproduces it. Needs the report extra: pip install 'loratrace[report]'.

    \b
    Example:
        loratrace report --store ./traces --html report.html
    """
    import importlib.util

    from loratrace.errors import StoreError

    missing = [name for name in ("matplotlib", "scipy", "statsmodels") if importlib.util.find_spec(name) is None]
    if missing:
        msg = f"loratrace report needs {', '.join(missing)}: pip install 'loratrace[report]'"
        raise click.ClickException(msg)
    from loratrace.report import collect_report_data, write_report

    window = duration(window_text)
    try:
        data = collect_report_data(store, spike_window=window)
        path = write_report(data, html_file, title=title)
    except StoreError as exc:
        raise BadInput(str(exc)) from exc
    click.echo(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


COMMANDS = (spikes, report)
