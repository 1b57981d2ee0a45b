"""The ``loratrace`` command line: one click group."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from loratrace._version import __version__

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    import polars as pl

F = TypeVar("F", bound=Callable[..., Any])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loratrace")
def cli() -> None:
    """Observe LoRA adapter releases: which adapter served each answer, and how it compares to its base.

    \b
    Examples:
        loratrace demo                                  # the whole path on a local tiny model
        loratrace collect --store ./traces              # OTLP receiver on 127.0.0.1:4318 / :4317
        loratrace sql --store ./traces "SELECT adapter_name, count(*) FROM generations GROUP BY 1"
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
@click.option("--fresh", is_flag=True, help="Remove the store an earlier run left in the workdir first.")
def demo(workdir: str, use_vllm: bool | None, fresh: bool) -> None:
    """Serve a few prompts through a local tiny model and two LoRA adapters, instrumented, and show the spans.

    Builds the tiny Llama and adapters on local disk (no download), so it runs offline. Then adds a day of
    simulated traffic (service loratrace-traffic) with a planted regression and a planted spike, shows drift and
    spikes find them, and writes report.html into the workdir.

    A second run adds to the store the first one left (it says so); --fresh starts over.

    \b
    Example:
        loratrace demo --workdir /tmp/loratrace-demo
        loratrace demo --fresh                          # forget the earlier runs' spans
    """
    from loratrace.demo.walkthrough import run_demo

    run_demo(workdir, use_vllm=use_vllm, fresh=fresh)


def _address(value: str, flag: str) -> tuple[str, int] | None:
    if value.strip().lower() == "off":
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        msg = f"{flag} takes HOST:PORT (e.g. 127.0.0.1:4318) or off, got {value!r}"
        raise click.ClickException(msg)
    return host.strip("[]"), int(port)


@cli.command()
@click.option(
    "--store",
    required=True,
    envvar="LORATRACE_STORE",
    show_envvar=True,
    type=click.Path(file_okay=False),
    help="Folder of the span store.",
)
@click.option(
    "--http", "http_address", default="127.0.0.1:4318", show_default=True, help="OTLP/HTTP HOST:PORT, or off."
)
@click.option(
    "--grpc", "grpc_address", default="127.0.0.1:4317", show_default=True, help="OTLP/gRPC HOST:PORT, or off."
)
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
@click.option(
    "--max-span-attributes",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="Attributes kept per span, event and link; the rest are dropped and counted, as the SDK's limit does.",
)
@click.option(
    "--max-attribute-length",
    type=click.IntRange(min=1),
    default=1 << 20,
    show_default=True,
    help="Characters kept of a string attribute value (bytes of a bytes value); longer ones are cut.",
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
    max_span_attributes: int,
    max_attribute_length: int,
) -> None:
    """Receive OTLP traces and metrics (HTTP and gRPC) into a durable, SQL-queryable store.

    An export is acknowledged once it is fsync'ed to the store's write-ahead log; a store writer process turns
    the log into Parquet segments readable within about a second. SIGTERM drains everything before exiting.

    \b
    Example:
        loratrace collect --store ./traces
        loratrace collect --store ./traces --grpc off     # OTLP/HTTP only (4317 taken by Phoenix or Jaeger)
        loratrace collect --store ./traces --http 0.0.0.0:4318 --auth-token "$TOKEN" --retention-days 30
    """
    from loratrace.collector.limits import AttributeLimits
    from loratrace.collector.service import CollectorSettings, run_collector
    from loratrace.errors import CollectorError

    http, grpc = _address(http_address, "--http"), _address(grpc_address, "--grpc")
    if http is None and grpc is None:
        msg = "--http off and --grpc off leave nothing to receive on; keep at least one"
        raise click.BadParameter(msg, param_hint="--http / --grpc")
    settings = CollectorSettings(
        store=store,
        http=http,
        grpc=grpc,
        auth_token=auth_token or None,
        tls_cert=tls_cert,
        tls_key=tls_key,
        max_request_bytes=max_request_bytes,
        retention_days=retention_days,
        attribute_limits=AttributeLimits(max_attributes=max_span_attributes, max_value_length=max_attribute_length),
    )

    def ready(collector: object) -> None:
        receivers = [
            f"{name} on {address[0]}:{getattr(collector, port)}"
            for name, address, port in (("OTLP/HTTP", http, "http_port"), ("OTLP/gRPC", grpc, "grpc_port"))
            if address is not None
        ]
        click.echo(f"loratrace collector: {', '.join(receivers)}, store {store}", err=True)

    try:
        run_collector(settings, on_ready=ready)
    except CollectorError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command()
@click.option(
    "--store",
    required=True,
    envvar="LORATRACE_STORE",
    show_envvar=True,
    type=click.Path(file_okay=False),
    help="Folder of the span store.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--full-engine",
    is_flag=True,
    default=False,
    help="Run any DuckDB statement, on any file (COPY, ATTACH, read_text ...); by default SQL only reads the store.",
)
@click.argument("statement")
def sql(store: str, output_format: str, full_engine: bool, statement: str) -> None:
    """Run SQL over the store's views: generations, spans, span_events, span_links, evals, metrics.

    Only statements that read (SELECT, EXPLAIN) run, and they reach no file outside the store, unless
    --full-engine.

    \b
    Example:
        loratrace sql --store ./traces "SELECT adapter_name, count(*) AS n FROM generations GROUP BY 1"
        loratrace sql --store ./traces --format json "SELECT * FROM evals LIMIT 5"
    """
    from loratrace.errors import StoreError
    from loratrace.store import query
    from loratrace.store.sql_output import render

    try:
        frame = query(store, statement, full_engine=full_engine)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(render(frame, output_format), nl=False)


# --- analyses ----------------------------------------------------------------------------------------------


class BadInput(click.ClickException):
    """A user error in an analysis command's input: exit code 2, as for a usage error."""

    exit_code = 2


def store_option(function: F) -> F:
    """``--store DIR`` (or ``LORATRACE_STORE``) for the commands that read a store."""
    return click.option(
        "--store",
        required=True,
        envvar="LORATRACE_STORE",
        show_envvar=True,
        type=click.Path(file_okay=False),
        help="Folder of the span store.",
    )(function)


def time_options(function: F) -> F:
    """``--since`` / ``--until``: durations ago (24h, 30m, 7d) or ISO times."""
    function = click.option("--until", default=None, help="End of the window (exclusive): 2h ago, or an ISO time.")(
        function
    )
    return click.option("--since", default=None, help="Start of the window: a duration ago (24h, 7d) or an ISO time.")(
        function
    )


def format_option(function: F) -> F:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["table", "json", "csv"]),
        default="table",
        show_default=True,
        help="A table for people, JSON or CSV for machines.",
    )(function)


def parse_window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    from loratrace.analysis.timespec import parse_time

    try:
        return (
            None if since is None else parse_time(since),
            None if until is None else parse_time(until),
        )
    except ValueError as exc:
        flag = "--since" if since is not None and str(since) in str(exc) else "--until"
        raise BadInput(f"{flag}: {exc}") from exc


def render_rows(frame: pl.DataFrame, output_format: str) -> str:
    """Analysis rows: floats rounded and lists joined for the table; untouched for JSON and CSV."""
    import polars as pl

    from loratrace.store.sql_output import render

    if output_format == "table":
        frame = frame.with_columns(
            [pl.col(c).round_sig_figs(4) for c, t in frame.schema.items() if t == pl.Float64]
            + [pl.col(c).list.join(",") for c, t in frame.schema.items() if isinstance(t, pl.List)]
            # sha256:<12 hex> is unique in practice and keeps the table readable; JSON and CSV keep the whole id
            + [pl.col(c).str.slice(0, 19) for c in frame.columns if c == "adapter_id"]
        )
    return render(frame, output_format)


@cli.command()
@store_option
@time_options
@click.option("--adapter", "adapters", multiple=True, help="Only this adapter name (repeatable).")
@click.option("--cohort", "cohorts", multiple=True, help="Only this cohort (repeatable).")
@click.option("--metric", "metric_names", multiple=True, help="Only this metric (repeatable); default: the rates.")
@click.option(
    "--window",
    default="1h",
    show_default=True,
    help="Width of the time windows in which base and adapter traffic are matched (concurrent design).",
)
@click.option(
    "--baseline",
    type=click.Choice(["concurrent", "before"]),
    default="concurrent",
    show_default=True,
    help="concurrent: the base model in the same windows; before: the traffic before the adapter (confounded).",
)
@click.option(
    "--traffic",
    type=click.Choice(["all", "production", "replay"]),
    default="all",
    show_default=True,
    help="replay: golden-set replay only (generations with an example id); production: the rest.",
)
@click.option("--alpha", type=click.FloatRange(0.0001, 0.5), default=0.05, show_default=True, help="FDR level.")
@click.option("--min-n", type=click.IntRange(min=1), default=30, show_default=True, help="Fewest per arm.")
@click.option(
    "--min-effect", type=click.FloatRange(min=0), default=0.02, show_default=True, help="Smallest rate change."
)
@click.option("--verdict", "verdicts", multiple=True, help="Only rows with this verdict (e.g. regressed).")
@format_option
def drift(
    store: str,
    since: str | None,
    until: str | None,
    adapters: tuple[str, ...],
    cohorts: tuple[str, ...],
    metric_names: tuple[str, ...],
    window: str,
    baseline: str,
    traffic: str,
    alpha: float,
    min_n: int,
    min_effect: float,
    verdicts: tuple[str, ...],
    output_format: str,
) -> None:
    """Each adapter against the base model it replaces, per cohort and metric, with intervals and verdicts.

    Rows name their design (paired replay, concurrent traffic, or before/after), the base and adapter values,
    the difference with its interval, a one-sided p-value for "the adapter is worse", Benjamini-Hochberg
    q-values across the run, and a verdict: regressed, improved, no_change or insufficient_data. The "(all)"
    row of each adapter is standardised to its cohort mix; "simpson" flags an overall gain hiding a regressed
    cohort, "confounded:*" a prompt version, quantization or base model that differs between the arms.

    \b
    Example:
        loratrace drift --store ./traces --since 24h
        loratrace drift --store ./traces --adapter billing --metric eval_pass:json_valid --format json
    """
    from loratrace.analysis.run import EmptySelectionError, drift_for_store
    from loratrace.analysis.timespec import parse_duration
    from loratrace.errors import StoreError

    since_at, until_at = parse_window(since, until)
    try:
        width = parse_duration(window)
    except ValueError as exc:
        raise BadInput(f"--window: {exc}") from exc
    try:
        rows = drift_for_store(
            store,
            since=since_at,
            until=until_at,
            adapters=adapters or None,
            cohorts=cohorts or None,
            metric_names=metric_names or None,
            window=width,
            baseline=baseline,  # type: ignore[arg-type]
            traffic=traffic,  # type: ignore[arg-type]
            alpha=alpha,
            min_n=min_n,
            min_effect=min_effect,
        )
    except EmptySelectionError as exc:
        raise BadInput(str(exc)) from exc
    except StoreError as exc:
        raise BadInput(str(exc)) from exc
    except ValueError as exc:
        raise BadInput(f"--metric: {exc}") from exc
    if verdicts:
        rows = rows.filter(rows["verdict"].is_in(list(verdicts)))
    click.echo(render_rows(rows, output_format), nl=False)


# --- spikes and the report --------------------------------------------------------------------------------


def _window_option(value: str, flag: str = "--window") -> timedelta:
    from loratrace.analysis.timespec import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise BadInput(f"{flag}: {exc}") from exc


@cli.command()
@store_option
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
@click.option(
    "--baseline",
    type=click.Choice(["ewma", "same_hour"]),
    default="ewma",
    show_default=True,
    help="Trailing average of previous windows, or of the same time of day on previous days.",
)
@click.option("--persistence", type=click.IntRange(min=1), default=2, show_default=True, help="Windows in a row.")
@click.option("--min-n", type=click.IntRange(min=1), default=50, show_default=True, help="Volume floor per window.")
@click.option(
    "--z", "z_threshold", type=click.FloatRange(min=0.0), default=3.0, show_default=True, help="One-sided z to reach."
)
@click.option(
    "--min-change",
    type=click.FloatRange(min=0.0),
    default=0.5,
    show_default=True,
    help="Smallest relative rise over the baseline (0.5: +50 %).",
)
@format_option
def spikes(
    store: str,
    since: str | None,
    until: str | None,
    window_text: str,
    adapters: tuple[str, ...],
    metric_names: tuple[str, ...],
    baseline: str,
    persistence: int,
    min_n: int,
    z_threshold: float,
    min_change: float,
    output_format: str,
) -> None:
    """Error, timeout, fallback and schema-retry spikes per adapter against each adapter's own trailing baseline.

    A window is above its baseline when it has --min-n generations, a z-score of at least --z and a rate at least
    --min-change above the baseline; it is flagged after --persistence such windows in a row. The table shows
    the episodes, then the windows above their baseline; JSON holds both (every window), CSV every window.

    \b
    Example:
        loratrace spikes --store ./traces --since 7d --window 1h
        loratrace spikes --store ./traces --adapter billing-v2 --metric fallback_rate --format json
    """
    import json

    import polars as pl

    from loratrace.analysis.spike_run import BASE_LABEL, SpikeInputError, run_spikes
    from loratrace.errors import StoreError

    since_at, until_at = parse_window(since, until)
    try:
        result = run_spikes(
            store,
            since=since_at,
            until=until_at,
            window=_window_option(window_text),
            adapters=adapters,
            metric_names=metric_names,
            baseline=baseline,  # type: ignore[arg-type]
            persistence=persistence,
            min_n=min_n,
            z_threshold=z_threshold,
            min_relative_change=min_change,
        )
    except SpikeInputError as exc:
        raise BadInput(f"{exc.option}: {exc}") from exc
    except StoreError as exc:
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


@cli.command()
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

    window = _window_option(window_text)
    try:
        data = collect_report_data(store, spike_window=window)
        path = write_report(data, html_file, title=title)
    except StoreError as exc:
        raise BadInput(str(exc)) from exc
    click.echo(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


# --- first run and interop (issue 13): status, vllm serve ----------------------------------------------------


@cli.command()
@store_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)
def status(store: str, output_format: str) -> None:
    """Show a store's size, span count and newest span, and the counters of the collector writing it.

    \b
    Example:
        loratrace status --store ./traces
        LORATRACE_STORE=./traces loratrace status --format json
    """
    import json

    from loratrace.errors import StoreError
    from loratrace.store.status import render_status, store_status

    try:
        found = store_status(store)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    if output_format == "json":
        click.echo(json.dumps(found.as_dict(), default=str))
    else:
        click.echo(render_status(found), nl=False)


@cli.group()
def vllm() -> None:
    """vLLM with loratrace on.

    \b
    Example:
        loratrace vllm serve ./base --enable-lora --lora-modules a1=./adapters/a1
    """


@vllm.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("vllm_arguments", nargs=-1, type=click.UNPROCESSED)
def serve(vllm_arguments: tuple[str, ...]) -> None:
    """Run vLLM's OpenAI-compatible server (`vllm serve`) with loratrace on.

    Every argument goes unchanged to `vllm serve` (see `vllm serve --help`). loratrace adds: one SERVER span per
    completion / chat request naming the adapter that served it (name, content-hash id, rank, alpha, target
    modules, base model, variant), token counts, finish reasons and time to first token; spans for adapter
    loads and unloads (the static --lora-modules included); vLLM's own llm_request span (--otlp-traces-endpoint)
    enriched with the adapter; GenAI histograms labelled by adapter. Spans and metrics go over OTLP as the
    OTEL_EXPORTER_OTLP_* / OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER variables say (default
    http://127.0.0.1:4318, where `loratrace collect` listens); the service name is OTEL_SERVICE_NAME or
    vllm-server. On vLLM's CPU build set VLLM_CPU_KVCACHE_SPACE (GiB of KV cache): its default reserves most of
    the machine's memory and fails on a small one.

    \b
    Example:
        VLLM_CPU_KVCACHE_SPACE=1 loratrace vllm serve ./base --enable-lora \\
            --lora-modules a1=./adapters/a1 a2=./adapters/a2
    """
    from loratrace.instrumentation.vllm.serve import main as serve_main

    if vllm_arguments in (("--help",), ("-h",)):
        click.echo(click.get_current_context().get_help())
        click.echo("\nvLLM's own options: `loratrace vllm serve --help=all` (or a group: --help=ModelConfig).")
        return
    serve_main(list(vllm_arguments))


# --- alerts and the release gate (issue 16) ---------------------------------------------------------------


def _alerts_installed() -> None:
    for module in ("yaml", "jsonschema", "scipy"):
        try:
            __import__(module)
        except ImportError:
            msg = f"the alert commands need {module}: pip install 'loratrace[alerts]'"
            raise click.ClickException(msg) from None


@cli.group()
def alert() -> None:
    """Scheduled checks of alert rules over a store: drift (anytime-valid), spikes, SLO burn rates, fallbacks.

    \b
    Example:
        loratrace alert check --store ./traces --rules alerts.yaml
        loratrace alert watch --store ./traces --rules alerts.yaml --every 5m
    """
    _alerts_installed()


def rules_option(function: F) -> F:
    """``--rules FILE`` and ``--state-dir DIR`` for the alert commands."""
    function = click.option(
        "--state-dir",
        default=None,
        type=click.Path(file_okay=False),
        help="Where the alert state lives (default: STORE/state/alerts).",
    )(function)
    return click.option(
        "--rules",
        "rules_path",
        required=True,
        type=click.Path(dir_okay=False),
        help="The rules file (YAML; see docs/alerts.example.yaml).",
    )(function)


def _echo_check(result: Any, error: str | None) -> None:
    if error is not None:
        click.echo(f"alert check failed: {error}", err=True)
        return
    counts = result.summary()
    click.echo(
        f"{counts['checked_at']}: {counts['firing']} firing, {counts['pending']} pending, "
        f"{counts['notifications']} notification(s), {counts['conditions']} condition(s) checked",
        err=True,
    )
    for failure in result.sink_failures:
        click.echo(f"sink failure: {failure}", err=True)


@alert.command("check")
@store_option
@rules_option
@click.option("--now", "now_text", default=None, help="Check as of this ISO time instead of the clock (replays).")
def alert_check(store: str, rules_path: str, state_dir: str | None, now_text: str | None) -> None:
    """Evaluate every rule once, update the alert state in the store, and notify the sinks of changes.

    Exit code 0 when nothing fires, 1 when something fires, 2 for bad rules or a bad store. Notifications go
    out only when an alert opens or resolves; the state (in STORE/state/alerts/) makes repeated checks quiet.

    \b
    Example:
        loratrace alert check --store ./traces --rules alerts.yaml
        */5 * * * * loratrace alert check --store /srv/traces --rules /etc/loratrace/alerts.yaml
    """
    import duckdb
    import polars as pl

    from loratrace.alerts.check import run_alert_check
    from loratrace.errors import ConfigurationError, StoreError

    now = None
    if now_text is not None:
        from datetime import timezone

        from loratrace.analysis.timespec import parse_time

        try:
            now = parse_time(now_text).replace(tzinfo=timezone.utc)
        except ValueError as exc:
            raise BadInput(f"--now: {exc}") from exc
    try:
        result = run_alert_check(store, rules_path, now=now, state_dir=state_dir)
    except (ConfigurationError, StoreError) as exc:
        raise BadInput(str(exc)) from exc
    except (pl.exceptions.PolarsError, duckdb.Error) as exc:
        # exit code 1 means "firing": a store this version cannot read must not look like an alert
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        raise BadInput(f"--store: {store} could not be read ({reason})") from exc
    _echo_check(result, None)
    raise SystemExit(result.exit_code)


@alert.command("watch")
@store_option
@rules_option
@click.option("--every", default="5m", show_default=True, help="Interval between checks (30s, 5m, 1h).")
def alert_watch(store: str, rules_path: str, state_dir: str | None, every: str) -> None:
    """Run the alert check on a schedule until SIGTERM or Ctrl-C (for containers); docs/alerts.md shows cron,
    systemd and Kubernetes alternatives.

    \b
    Example:
        loratrace alert watch --store ./traces --rules alerts.yaml --every 5m
    """
    from loratrace.alerts.watch import watch
    from loratrace.analysis.timespec import parse_duration
    from loratrace.errors import ConfigurationError, StoreError

    try:
        interval = parse_duration(every).total_seconds()
    except ValueError as exc:
        raise BadInput(f"--every: {exc}") from exc
    try:
        _check_store(store)
        code = watch(store, rules_path, every=interval, state_dir=state_dir, report=_echo_check)
    except (ConfigurationError, StoreError) as exc:
        raise BadInput(str(exc)) from exc
    click.echo("alert watch: stopped", err=True)
    raise SystemExit(code)


def _check_store(store: str) -> None:
    from loratrace.store import open_store

    open_store(store).close()


@cli.command()
@store_option
@time_options
@click.option("--adapter", required=True, help="The adapter name to release.")
@click.option("--adapter-id", default=None, help="The adapter id (weights) to judge; default: the latest served.")
@click.option("--cohort", "cohorts", multiple=True, help="Only this cohort (repeatable); default: every cohort.")
@click.option("--metric", "metric_names", multiple=True, help="Only this metric (repeatable); default: the rates.")
@click.option(
    "--traffic",
    type=click.Choice(["all", "production", "replay"]),
    default="all",
    show_default=True,
    help="replay: golden-set replay only (paired design); production: live traffic only.",
)
@click.option("--allow-insufficient", is_flag=True, help="PASS even where there is too little data to tell.")
@click.option("--alpha", type=click.FloatRange(0.0001, 0.5), default=0.05, show_default=True, help="FDR level.")
@click.option("--min-n", type=click.IntRange(min=1), default=30, show_default=True, help="Fewest per arm.")
@click.option(
    "--min-effect", type=click.FloatRange(min=0), default=0.02, show_default=True, help="Smallest rate change."
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for CI.",
)
def gate(
    store: str,
    since: str | None,
    until: str | None,
    adapter: str,
    adapter_id: str | None,
    cohorts: tuple[str, ...],
    metric_names: tuple[str, ...],
    traffic: str,
    allow_insufficient: bool,
    alpha: float,
    min_n: int,
    min_effect: float,
    output_format: str,
) -> None:
    """The release decision for an adapter against its base model: PASS (exit 0) or FAIL (exit 1) with reasons.

    Each reason names a failing cohort and metric with its difference and interval. Insufficient data fails
    unless --allow-insufficient; it judges golden-set replay (paired) and production traffic the same way.

    \b
    Example:
        loratrace gate --store ./traces --adapter billing-v2 --since 24h
        loratrace gate --store ./replay --adapter billing-v2 --traffic replay --format json
    """
    import json

    from loratrace.analysis.gate import gate as decide
    from loratrace.analysis.run import EmptySelectionError
    from loratrace.errors import StoreError

    since_at, until_at = parse_window(since, until)
    try:
        result = decide(
            store,
            adapter=adapter,
            adapter_id=adapter_id,
            cohorts=cohorts or None,
            metric_names=metric_names or None,
            since=since_at,
            until=until_at,
            traffic=traffic,  # type: ignore[arg-type]  # click.Choice guarantees the Literal
            allow_insufficient=allow_insufficient,
            alpha=alpha,
            min_n=min_n,
            min_effect=min_effect,
        )
    except (EmptySelectionError, StoreError) as exc:
        raise BadInput(str(exc)) from exc
    except ValueError as exc:
        raise BadInput(f"--metric: {exc}") from exc
    if output_format == "json":
        click.echo(json.dumps(result.to_dict(), default=str))
    else:
        click.echo(f"{result.decision}: {result.adapter} ({result.adapter_id})")
        for reason in result.reasons:
            click.echo(f"  - {reason}")
    raise SystemExit(result.exit_code)


def main() -> None:
    cli()
