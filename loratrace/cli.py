"""The ``loratrace`` command line: one click group."""

from __future__ import annotations

import datetime

import click

from loratrace._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loratrace")
def cli() -> None:
    """Observe LoRA adapter releases: which adapter served each answer, and how it compares to its base.

    \b
    Examples:
        loratrace demo                                  # the whole path on a local tiny model
        loratrace collect --store ./traces              # OTLP receiver on 127.0.0.1:4318 / :4317
        loratrace sql --store ./traces "SELECT adapter_name, count(*) FROM spans GROUP BY 1"
    """


@cli.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    default="loratrace-demo",
    show_default=True,
    help="Folder for the tiny model, its adapters and the span store.",
)
@click.option(
    "--vllm/--no-vllm",
    "use_vllm",
    default=None,
    help="Also serve through vLLM's offline engine (default: when vLLM is installed).",
)
def demo(workdir: str, use_vllm: bool | None) -> None:
    """Serve a few prompts through a local tiny model and two LoRA adapters, instrumented, and show the spans.

    Builds the tiny Llama and adapters on local disk (no download), so it runs offline.

    \b
    Example:
        loratrace demo --workdir /tmp/loratrace-demo
    """
    from loratrace.demo.walkthrough import run_demo

    run_demo(workdir, use_vllm=use_vllm)


def _address(value: str, flag: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        msg = f"{flag} takes HOST:PORT (e.g. 127.0.0.1:4318), got {value!r}"
        raise click.ClickException(msg)
    return host.strip("[]"), int(port)


@cli.command()
@click.option("--store", required=True, type=click.Path(file_okay=False), help="Folder of the span store.")
@click.option("--http", "http_address", default="127.0.0.1:4318", show_default=True, help="OTLP/HTTP HOST:PORT.")
@click.option("--grpc", "grpc_address", default="127.0.0.1:4317", show_default=True, help="OTLP/gRPC HOST:PORT.")
@click.option("--retention-days", type=click.IntRange(min=1), default=None, help="Delete days older than this.")
@click.option(
    "--auth-token",
    envvar="LORATRACE_AUTH_TOKEN",
    default=None,
    help="Bearer token exporters must send; required to bind a non-loopback address.",
    show_envvar=True,
)
@click.option("--tls-cert", type=click.Path(dir_okay=False), default=None, help="TLS certificate (PEM).")
@click.option("--tls-key", type=click.Path(dir_okay=False), default=None, help="TLS private key (PEM).")
@click.option(
    "--max-request-bytes",
    type=click.IntRange(min=1024),
    default=32 << 20,
    show_default=True,
    help="Largest export request accepted (after gzip decompression).",
)
def collect(
    store: str,
    http_address: str,
    grpc_address: str,
    retention_days: int | None,
    auth_token: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    max_request_bytes: int,
) -> None:
    """Receive OTLP traces and metrics (HTTP and gRPC) into a durable, SQL-queryable store.

    An export is acknowledged once it is fsync'ed to the store's write-ahead log; a store writer process turns
    the log into Parquet segments readable within about a second. SIGTERM drains everything before exiting.

    \b
    Example:
        loratrace collect --store ./traces
        loratrace collect --store ./traces --http 0.0.0.0:4318 --auth-token "$TOKEN" --retention-days 30
    """
    from loratrace.collector.service import CollectorSettings, run_collector
    from loratrace.errors import CollectorError

    settings = CollectorSettings(
        store=store,
        http=_address(http_address, "--http"),
        grpc=_address(grpc_address, "--grpc"),
        auth_token=auth_token or None,
        tls_cert=tls_cert,
        tls_key=tls_key,
        max_request_bytes=max_request_bytes,
        retention_days=retention_days,
    )

    def ready(collector: object) -> None:
        http_port = getattr(collector, "http_port", None)
        grpc_port = getattr(collector, "grpc_port", None)
        click.echo(
            f"loratrace collector: OTLP/HTTP on {settings.http[0]}:{http_port}, OTLP/gRPC on "  # type: ignore[index]
            f"{settings.grpc[0]}:{grpc_port}, store {store}",  # type: ignore[index]
            err=True,
        )

    try:
        run_collector(settings, on_ready=ready)
    except CollectorError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command()
@click.option("--store", required=True, type=click.Path(file_okay=False), help="Folder of the span store.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.argument("statement")
def sql(store: str, output_format: str, statement: str) -> None:
    """Run SQL over the store's views: spans, span_events, span_links, evals, metrics.

    \b
    Example:
        loratrace sql --store ./traces "SELECT adapter_name, count(*) AS n FROM spans GROUP BY 1"
        loratrace sql --store ./traces --format json "SELECT * FROM evals LIMIT 5"
    """
    from loratrace.errors import StoreError
    from loratrace.store import query
    from loratrace.store.sql_output import render

    try:
        frame = query(store, statement)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(render(frame, output_format), nl=False)


# --- spikes and the report (issue 15, part B) ---------------------------------------------------------------------

_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _duration(value: str, flag: str) -> datetime.timedelta:
    number, unit = value[:-1], value[-1:].lower()
    if unit not in _DURATION_UNITS or not number.isdigit() or int(number) == 0:
        msg = f"takes a positive duration like 15m, 1h, 7d (units s, m, h, d, w), got {value!r}"
        raise click.BadParameter(msg, param_hint=flag)
    return datetime.timedelta(**{_DURATION_UNITS[unit]: int(number)})


def _instant(value: str | None, flag: str) -> datetime.datetime | None:
    """``24h`` (that long before now) or an ISO time (UTC unless it names an offset)."""
    if value is None:
        return None
    if value[-1:].lower() in _DURATION_UNITS and value[:-1].isdigit():
        return datetime.datetime.now(datetime.timezone.utc) - _duration(value, flag)
    try:
        at = datetime.datetime.fromisoformat(value)
    except ValueError:
        msg = f"takes a duration before now (24h, 7d) or an ISO time (2026-03-01T12:00), got {value!r}"
        raise click.BadParameter(msg, param_hint=flag) from None
    return at if at.tzinfo else at.replace(tzinfo=datetime.timezone.utc)


@cli.command()
@click.option("--store", required=True, type=click.Path(file_okay=False), help="Folder of the span store.")
@click.option("--since", default=None, help="Start: a duration before now (24h, 7d) or an ISO time.")
@click.option("--until", default=None, help="End (excluded): a duration before now or an ISO time.")
@click.option("--window", "window_text", default="1h", show_default=True, help="Width of a window (15m, 1h, 1d).")
@click.option("--adapter", "adapters", multiple=True, help="Only this adapter ('(base)' for the base); repeatable.")
@click.option("--metric", "metrics", multiple=True, help="error_rate, timeout_rate, fallback_rate, schema_retry_rate.")
@click.option(
    "--baseline",
    type=click.Choice(["ewma", "same_hour"]),
    default="ewma",
    show_default=True,
    help="Trailing average of previous windows, or of the same time of day on previous days.",
)
@click.option("--persistence", type=click.IntRange(min=1), default=2, show_default=True, help="Windows in a row.")
@click.option("--min-n", type=click.IntRange(min=1), default=50, show_default=True, help="Volume floor per window.")
@click.option("--z", "z_threshold", type=float, default=3.0, show_default=True, help="One-sided z-score to reach.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="table: episodes, then the windows above baseline; json: both, every window; csv: every window.",
)
def spikes(
    store: str,
    since: str | None,
    until: str | None,
    window_text: str,
    adapters: tuple[str, ...],
    metrics: tuple[str, ...],
    baseline: str,
    persistence: int,
    min_n: int,
    z_threshold: float,
    output_format: str,
) -> None:
    """Error, timeout, fallback and schema-retry spikes per adapter against each adapter's own trailing baseline.

    A window is above its baseline when it has --min-n generations, a z-score of at least --z and 1.5x the
    baseline rate; it is flagged after --persistence such windows in a row.

    \b
    Example:
        loratrace spikes --store ./traces --since 7d --window 1h
        loratrace spikes --store ./traces --adapter billing-v2 --metric fallback_rate --format json
    """
    import json

    import polars as pl

    from loratrace.analysis.spike_run import BASE_LABEL, SpikeInputError, run_spikes
    from loratrace.errors import StoreError
    from loratrace.store.sql_output import render

    try:
        result = run_spikes(
            store,
            since=_instant(since, "--since"),
            until=_instant(until, "--until"),
            window=_duration(window_text, "--window"),
            adapters=adapters,
            metrics=metrics,
            baseline=baseline,  # type: ignore[arg-type]
            persistence=persistence,
            min_n=min_n,
            z_threshold=z_threshold,
        )
    except SpikeInputError as exc:
        raise click.BadParameter(str(exc), param_hint=exc.option) from None
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    if output_format == "json":
        document = {
            "episodes": json.loads(render(result.episodes, "json")),
            "windows": json.loads(render(result.windows, "json")),
        }
        click.echo(json.dumps(document))
    elif output_format == "csv":
        click.echo(render(result.windows, "csv"), nl=False)
    else:
        # for people: the base arm named, ids shortened to what tells them apart, figures to 4 digits
        readable = (
            pl.col("adapter").fill_null(BASE_LABEL),
            pl.col("adapter_id").str.slice(0, 19),
            pl.col(pl.Float64).round(4),
        )
        click.echo(f"Spike episodes ({len(result.episodes)}):")
        click.echo(render(result.episodes.with_columns(readable), "table"))
        click.echo("Windows above their baseline:")
        click.echo(render(result.windows.filter("above").with_columns(readable), "table"), nl=False)


@cli.command()
@click.option("--store", required=True, type=click.Path(file_okay=False), help="Folder of the span store.")
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
    from loratrace.report import collect_report_data, write_report

    if importlib.util.find_spec("matplotlib") is None:
        msg = "loratrace report draws its plots with matplotlib: pip install 'loratrace[report]'"
        raise click.ClickException(msg)
    window = _duration(window_text, "--window")
    try:
        data = collect_report_data(store, spike_window=window)
        path = write_report(data, html_file, title=title)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


def main() -> None:
    cli()
