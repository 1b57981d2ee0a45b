"""The ``loratrace`` command line: one click group."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from loratrace._cli_options import (
    BadInput,
    auth_token_option,
    choice_option,
    count_option,
    decision_options,
    format_choice,
    format_option,
    metric_option,
    open_source,
    store_option,
    store_or_source_options,
    time_options,
    traffic_option,
    view_option,
)
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
@store_option
@click.option(
    "--http", "http_address", default="127.0.0.1:4318", show_default=True, help="OTLP/HTTP HOST:PORT, or off."
)
@click.option(
    "--grpc", "grpc_address", default="127.0.0.1:4317", show_default=True, help="OTLP/gRPC HOST:PORT, or off."
)
@click.option("--retention-days", type=click.IntRange(min=1), default=None, help="Delete days older than this.")
@auth_token_option("Bearer token exporters must send; required to bind a non-loopback address.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), default=None, help="TLS certificate (PEM).")
@click.option("--tls-key", type=click.Path(dir_okay=False), default=None, help="TLS private key (PEM).")
@count_option(
    "--max-request-bytes",
    at_least=1024,
    default=32 << 20,
    help="Largest export request accepted (after gzip decompression).",
)
@count_option(
    "--max-span-attributes",
    at_least=1,
    default=1024,
    help="Attributes kept per span, event and link; the rest are dropped and counted, as the SDK's limit does.",
)
@count_option(
    "--max-attribute-length",
    at_least=1,
    default=1 << 20,
    help="Characters kept of a string attribute value (bytes of a bytes value); longer ones are cut.",
)
@click.option(
    "--writer-id",
    default="0",
    show_default=True,
    help="This collector's id among several writing one store (shared folder): 1-16 lower-case letters/digits.",
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
    writer_id: str,
) -> None:
    """Receive OTLP traces and metrics (HTTP and gRPC) into a durable, SQL-queryable store.

    An export is acknowledged once it is fsync'ed to the store's write-ahead log; a store writer process turns
    the log into Parquet segments readable within about a second. SIGTERM drains everything before exiting;
    SIGUSR1 prints the stack of every thread to stderr (where a collector that does not stop is stuck).

    \b
    Example:
        loratrace collect --store ./traces
        loratrace collect --store ./traces --grpc off     # OTLP/HTTP only (4317 taken by Phoenix or Jaeger)
        loratrace collect --store ./traces --http 0.0.0.0:4318 --auth-token "$TOKEN" --retention-days 30
        loratrace collect --store /mnt/shared/traces --writer-id 2 --http 127.0.0.1:4320 --grpc 127.0.0.1:4319
    """
    from loratrace.collector.limits import AttributeLimits
    from loratrace.collector.service import CollectorSettings, run_collector
    from loratrace.errors import CollectorError
    from loratrace.store.layout import check_writer_id

    try:
        check_writer_id(writer_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--writer-id") from exc
    http, grpc = _address(http_address, "--http"), _address(grpc_address, "--grpc")
    if http is None and grpc is None:
        msg = "--http off and --grpc off leave nothing to receive on; keep at least one"
        raise click.BadParameter(msg, param_hint="--http / --grpc")
    settings = CollectorSettings(
        writer_id=writer_id,
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
@store_option
@format_option
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
    from loratrace._cli_render import render
    from loratrace.errors import StoreError
    from loratrace.store import query

    try:
        frame = query(store, statement, full_engine=full_engine)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(render(frame, output_format), nl=False)


# --- analyses ----------------------------------------------------------------------------------------------


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

    from loratrace._cli_render import render

    if output_format == "table":
        frame = frame.with_columns(
            [pl.col(c).round_sig_figs(4) for c, t in frame.schema.items() if t == pl.Float64]
            + [pl.col(c).list.join(",") for c, t in frame.schema.items() if isinstance(t, pl.List)]
            # sha256:<12 hex> is unique in practice and keeps the table readable; JSON and CSV keep the whole id
            + [pl.col(c).str.slice(0, 19) for c in frame.columns if c == "adapter_id"]
        )
    return render(frame, output_format)


@cli.command()
@store_or_source_options
@time_options
@click.option("--adapter", "adapters", multiple=True, help="Only this adapter name (repeatable).")
@click.option("--cohort", "cohorts", multiple=True, help="Only this cohort (repeatable).")
@metric_option
@click.option(
    "--window",
    default="1h",
    show_default=True,
    help="Width of the time windows in which base and adapter traffic are matched (concurrent design).",
)
@choice_option(
    "--baseline",
    ["concurrent", "before"],
    help="concurrent: the base model in the same windows; before: the traffic before the adapter (confounded).",
)
@traffic_option("replay: golden-set replay only (generations with an example id); production: the rest.")
@decision_options
@click.option("--verdict", "verdicts", multiple=True, help="Only rows with this verdict (e.g. regressed).")
@format_option
def drift(
    store: str | None,
    source: str | None,
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
        loratrace drift --source "clickhouse://reader@ch.internal:8123/otel?table=otel_traces" --since 24h
    """
    from loratrace.analysis.run import DriftSettings, EmptySelectionError, drift_for_source
    from loratrace.errors import QueryError, StoreError

    since_at, until_at = parse_window(since, until)
    width = _window_option(window)
    settings = DriftSettings(
        since=since_at,
        until=until_at,
        adapters=adapters or None,
        cohorts=cohorts or None,
        metric_names=metric_names or None,
        window=width,
        baseline=baseline,  # type: ignore[arg-type]  # click.Choice admits only the Literal's values
        traffic=traffic,  # type: ignore[arg-type]  # click.Choice admits only the Literal's values
        alpha=alpha,
        min_n=min_n,
        min_effect=min_effect,
    )
    spans = open_source(store, source)
    try:
        rows = drift_for_source(spans, settings)
    except EmptySelectionError as exc:
        raise BadInput(str(exc)) from exc
    except (StoreError, QueryError) as exc:
        raise BadInput(str(exc)) from exc
    except ValueError as exc:
        raise BadInput(f"--metric: {exc}") from exc
    finally:
        spans.close()
    if verdicts:
        rows = rows.filter(rows["verdict"].is_in(list(verdicts)))
    click.echo(render_rows(rows, output_format), nl=False)


# --- incident queries, inventory, latency, cost ----------------------------------------------------------------
# Their imports stay inside the commands: `loratrace query` must not load Polars or the OpenTelemetry SDK to answer
# one lookup.


def _window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """``parse_window`` plus the order check: an empty window is refused before any scan."""
    start, end = parse_window(since, until)
    if start is not None and end is not None and start >= end:
        msg = f"--since/--until: the window is empty (since {start.isoformat()} is not before until {end.isoformat()})"
        raise BadInput(msg)
    return start, end


@cli.command("query")
@click.argument("name", required=False)
@store_or_source_options
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A query parameter; repeat for more.")
@click.option("--list", "list_queries", is_flag=True, help="List the incident queries and their parameters.")
@format_option
def query_command(
    name: str | None,
    store: str | None,
    source: str | None,
    params: tuple[str, ...],
    list_queries: bool,
    output_format: str,
) -> None:
    """Run one of the shipped incident queries (loratrace/queries/*.sql) with bound parameters.

    Timestamp parameters take a duration before now (30m, 24h, 7d) or an ISO time.

    \b
    Example:
        loratrace query --list
        loratrace query adapter_for_trace --store ./traces --param trace_id=4bf92f3577b34da6a3ce929d0e0e4736
        loratrace query failing_traces --store ./traces --param adapter=billing-v7 --param since=2h
        loratrace query failing_traces --source "clickhouse://reader@ch.internal:8123/otel" --param since=2h
    """
    from loratrace._cli_render import render_result
    from loratrace.analysis import queries
    from loratrace.errors import ConfigurationError, QueryError, StoreError

    if list_queries:
        if name is not None:
            msg = f"--list takes no query name (got {name!r}); run `loratrace query {name} --store DIR` instead"
            raise BadInput(msg)
        try:
            listed = [(q.name, q.signature(), q.answers) for q in queries.available_queries().values()]
        except ConfigurationError as exc:  # a shipped file with a bad header: loratrace's fault, not the input's
            raise click.ClickException(str(exc)) from exc
        click.echo(render_result(["name", "params", "answers"], listed, output_format), nl=False)
        return
    if name is None:
        msg = "name a query (see `loratrace query --list`), e.g. loratrace query adapter_for_trace --store DIR"
        raise BadInput(msg)
    if store is None and source is None:
        msg = "Missing option '--store' (or set LORATRACE_STORE): the folder of the span store (or --source URL)"
        raise BadInput(msg)
    values: dict[str, str] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            msg = f"--param takes KEY=VALUE (e.g. --param trace_id=4bf9...), got {item!r}"
            raise BadInput(msg)
        values[key.strip()] = value
    if source is not None:
        _echo_source_query(open_source(store, source), name, values, output_format)
        return
    assert store is not None  # one of the two, checked above
    try:
        names, rows = queries.fetch(store, name, values)
        if not rows:
            queries.check_known_values(store, name, values)
    except ConfigurationError as exc:
        raise BadInput(str(exc)) from None
    except QueryError as exc:
        raise click.ClickException(str(exc)) from exc
    except StoreError as exc:
        raise BadInput(f"--store: {exc}") from None
    click.echo(render_result(names, rows, output_format), nl=False)


def _echo_source_query(spans: Any, name: str, values: dict[str, str], output_format: str) -> None:
    """``loratrace query NAME --source``: the same file translated and run where the spans are."""
    from loratrace._cli_render import render_result
    from loratrace.errors import ConfigurationError, QueryError, StoreError

    try:
        frame = spans.query(name, values)
    except ConfigurationError as exc:
        raise BadInput(str(exc)) from None
    except (QueryError, StoreError) as exc:
        raise BadInput(f"--source: {exc}") from None
    finally:
        spans.close()
    click.echo(render_result(frame.columns, frame.rows(), output_format), nl=False)


def _analysis_frame(store: str, since: str | None, until: str | None, adapter: str | None, cohort: str | None) -> Any:
    """The window's generations as a LazyFrame, after the checks every analysis command makes (exit code 2)."""
    import polars as pl

    from loratrace.analysis import window
    from loratrace.errors import ConfigurationError, StoreError

    start, end = _window(since, until)
    try:
        frame = window.generations(store, since=start, until=end)
        seen = frame.select("adapter_name", "cohort").unique().collect()
    except StoreError as exc:
        raise BadInput(f"--store: {exc}") from None
    if seen.height == 0:
        raise BadInput(window.empty_window_message(store, start, end))
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


def _echo_tables(tables: dict[str, Any], output_format: str) -> None:
    import json

    from loratrace._cli_render import plain

    if output_format == "json":
        payload = {
            name: [{k: plain(v) for k, v in row.items()} for row in t.iter_rows(named=True)]
            for name, t in tables.items()
        }
        click.echo(json.dumps(payload, default=str))
        return
    if output_format == "csv" and len(tables) > 1:
        msg = f"csv holds one table: pass --view with one of {', '.join(tables)}"
        raise BadInput(msg)
    for index, (name, table) in enumerate(tables.items()):
        if output_format == "table" and len(tables) > 1:
            click.echo(f"{'' if index == 0 else chr(10)}{name}")
        click.echo(render_rows(table, output_format), nl=False)


def _adapter_options(function: F) -> F:
    function = click.option("--cohort", default=None, help="Only this cohort.")(function)
    return click.option("--adapter", default=None, help="Only this adapter (and the base model).")(function)


def _flag(spans: Any) -> str:
    """The flag that named a source, for messages."""
    return "--store" if getattr(spans, "kind", "local") == "local" else "--source"


def _checked_cells(
    spans: Any, since: str | None, until: str | None, adapter: str | None, cohort: str | None, *, keep: bool = False
) -> Any:
    """The window's inventory cells after the checks the store commands make (exit code 2): a source, a window
    with generations, a known adapter and cohort. Returns the filtered cells with ``keep``, else the window."""
    import polars as pl

    from loratrace.analysis import window
    from loratrace.analysis.inventory import store_cells
    from loratrace.errors import ConfigurationError, QueryError, StoreError

    start, end = _window(since, until)
    try:  # the one pass over the spans runs where they are; the checks use its small frame of cells
        cells = store_cells(spans, since=start, until=end).collect()
    except (StoreError, QueryError) as exc:
        raise BadInput(f"{_flag(spans)}: {exc}") from None
    if cells.height == 0:
        path = getattr(spans, "path", None)
        if path is not None:
            raise BadInput(window.empty_window_message(path, start, end))
        raise BadInput(f"no generations from {start or 'the start'} until {end or 'now'} in {spans!r}")
    try:
        window.check_known("adapter", adapter, cells["adapter_name"].to_list(), flag="--adapter")
        window.check_known("cohort", cohort, cells["cohort"].to_list(), flag="--cohort")
    except ConfigurationError as exc:
        raise BadInput(str(exc)) from None
    if not keep:
        return start, end
    if adapter is not None:
        cells = cells.filter(pl.col("adapter_name").is_null() | (pl.col("adapter_name") == adapter))
    if cohort is not None:
        cells = cells.filter(pl.col("cohort") == cohort)
    return cells


@cli.command("adapters")
@store_or_source_options
@time_options
@_adapter_options
@view_option(["adapters", "cohorts", "changes"], "One table only (all three by default; csv needs one).")
@format_option
def adapters_command(
    store: str | None,
    source: str | None,
    since: str | None,
    until: str | None,
    adapter: str | None,
    cohort: str | None,
    view: str | None,
    output_format: str,
) -> None:
    """Inventory: which adapters served traffic, first and last seen, volume per cohort, and id changes.

    An id change under one adapter name is a weight swap (announced or silent); its row gives the window in
    which it happened: the old id's last span and the new id's first.

    \b
    Example:
        loratrace adapters --store ./traces --since 7d
        loratrace adapters --store ./traces --view changes --format json
        loratrace adapters --source "clickhouse://reader@ch.internal:8123/otel" --since 7d
    """
    from loratrace.analysis.inventory import inventory_of_cells

    spans = open_source(store, source)
    try:
        cells = _checked_cells(spans, since, until, adapter, cohort, keep=True)
    finally:
        spans.close()
    result = inventory_of_cells(cells.lazy())
    tables = {"adapters": result.adapters, "cohorts": result.cohorts, "changes": result.id_changes}
    _echo_tables({view: tables[view]} if view else tables, output_format)


@cli.command("latency")
@store_or_source_options
@time_options
@_adapter_options
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="False discovery rate for the slower-than-base verdicts (Benjamini-Hochberg).",
)
@count_option("--min-n", at_least=1, default=30, help="Fewest requests per arm for a verdict.")
@view_option(["percentiles", "vs-base"], "One table only (both by default; csv needs one).")
@format_option
def latency_command(
    store: str | None,
    source: str | None,
    since: str | None,
    until: str | None,
    adapter: str | None,
    cohort: str | None,
    alpha: float,
    min_n: int,
    view: str | None,
    output_format: str,
) -> None:
    """Latency per adapter x rank x merge state x quantization, and the share slower than the base model's p95.

    The share of an adapter's requests above the base model's p95 (same route and cohort) is 5 % when the
    adapter is as fast; each row tests it one-sided against 5 % (exact binomial), corrected across rows.

    \b
    Example:
        loratrace latency --store ./traces --since 24h
        loratrace latency --store ./traces --view vs-base --format csv
        loratrace latency --source "chdb:///var/lib/loratrace-ch?table=otel_traces" --since 24h
    """
    from loratrace.analysis import latency
    from loratrace.errors import QueryError, StoreError

    spans = open_source(store, source)
    tables: dict[str, Any] = {}
    try:
        start, end = _checked_cells(spans, since, until, adapter, cohort)
        selection = {"since": start, "until": end, "adapter": adapter, "cohort": cohort}
        # one pass each where the spans are (DuckDB or ClickHouse); Polars and scipy work on the small results
        if view in (None, "percentiles"):
            tables["percentiles"] = latency.store_percentiles(spans, **selection)
        if view in (None, "vs-base"):
            counts = latency.store_counts(spans, **selection)
            tables["vs-base"] = latency.verdicts(counts, alpha=alpha, min_n=min_n)
    except (StoreError, QueryError) as exc:
        raise BadInput(f"{_flag(spans)}: {exc}") from None
    finally:
        spans.close()
    _echo_tables(tables, output_format)


@cli.command("cost")
@store_option
@click.option("--prices", required=True, type=click.Path(dir_okay=False), help="Prices file (.toml or .json).")
@time_options
@_adapter_options
@choice_option("--by", ["adapter", "trace"], help="One row per adapter, or per trace (most expensive first).")
@count_option("--limit", at_least=1, default=50, help="Rows with --by trace.")
@format_option
def cost_command(
    store: str,
    prices: str,
    since: str | None,
    until: str | None,
    adapter: str | None,
    cohort: str | None,
    by: str,
    limit: int,
    output_format: str,
) -> None:
    """Tokens and cost per adapter or per trace, priced from a TOML or JSON prices file.

    The file gives input and output prices per 1k or 1M tokens ("unit"), per adapter, per base model, and a
    default; see the cost section of the README for its format.

    \b
    Example:
        loratrace cost --store ./traces --prices prices.toml --since 24h
        loratrace cost --store ./traces --prices prices.json --by trace --limit 20 --format json
    """
    from loratrace.analysis import cost
    from loratrace.errors import ConfigurationError

    try:
        table = cost.load_prices(prices)
    except ConfigurationError as exc:
        raise BadInput(f"--prices: {exc}") from None
    if by == "adapter":  # token sums per adapter and model in one DuckDB pass; cost is linear in them
        start, end = _checked_cells(open_source(store, None), since, until, adapter, cohort)
        cells = cost.store_token_cells(store, since=start, until=end, adapter=adapter, cohort=cohort)
        frame = cost.priced(cells, table)
    else:
        frame = cost.priced(_analysis_frame(store, since, until, adapter, cohort), table)
    try:
        cost.require_priced(frame, source=prices)
    except ConfigurationError as exc:
        raise BadInput(f"--prices: {exc}") from None
    result = cost.cost_by_adapter(frame) if by == "adapter" else cost.cost_by_trace(frame, limit=limit)
    _echo_tables({f"cost by {by}": result.collect()}, output_format)


# --- spikes and the report --------------------------------------------------------------------------------


def _window_option(value: str, flag: str = "--window") -> timedelta:
    """A duration flag (``--window``, ``--every``), or exit 2 naming the flag."""
    from loratrace.analysis.timespec import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise BadInput(f"{flag}: {exc}") from exc


@cli.command()
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
    type=click.FloatRange(min=0.0),
    default=0.5,
    show_default=True,
    help="Smallest relative rise over the baseline (0.5: +50 %).",
)
@format_option
def spikes(
    store: str | None,
    source: str | None,
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
        loratrace spikes --source "clickhouse://reader@ch.internal:8123/otel" --since 7d
    """
    import json

    import polars as pl

    from loratrace.analysis.spike_run import BASE_LABEL, SpikeInputError, run_spikes
    from loratrace.errors import QueryError, StoreError

    since_at, until_at = parse_window(since, until)
    spans = open_source(store, source)
    try:
        result = run_spikes(
            spans,
            since=since_at,
            until=until_at,
            window=_window_option(window_text),
            adapters=adapters,
            metric_names=metric_names,
            baseline=baseline,  # type: ignore[arg-type]  # click.Choice admits only the Literal's values
            persistence=persistence,
            min_n=min_n,
            z_threshold=z_threshold,
            min_relative_change=min_change,
        )
    except SpikeInputError as exc:
        raise BadInput(f"{exc.option}: {exc}") from exc
    except (StoreError, QueryError) as exc:
        raise BadInput(str(exc)) from exc
    finally:
        spans.close()
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


# --- status, vllm serve --------------------------------------------------------------------------------------


@cli.command()
@store_option
@format_choice(("text", "json"), help="Output format.")
def status(store: str, output_format: str) -> None:
    """Show a store's size, span count and newest span, and the counters of the collector writing it.

    \b
    Example:
        loratrace status --store ./traces
        LORATRACE_STORE=./traces loratrace status --format json
    """
    import json

    from loratrace._cli_render import render_status
    from loratrace.errors import StoreError
    from loratrace.store.status import store_status

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


# --- alerts and the release gate --------------------------------------------------------------------------


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
@store_or_source_options
@rules_option
@click.option("--now", "now_text", default=None, help="Check as of this ISO time instead of the clock (replays).")
def alert_check(
    store: str | None, source: str | None, rules_path: str, state_dir: str | None, now_text: str | None
) -> None:
    """Evaluate every rule once, update the alert state in the store, and notify the sinks of changes.

    Exit code 0 when nothing fires, 1 when something fires, 2 for bad rules or a bad store. Notifications go
    out only when an alert opens or resolves; the state (in STORE/state/alerts/) makes repeated checks quiet.

    \b
    Example:
        loratrace alert check --store ./traces --rules alerts.yaml
        */5 * * * * loratrace alert check --store /srv/traces --rules /etc/loratrace/alerts.yaml
        loratrace alert check --rules alerts.yaml     # the rules' source: section names ClickHouse
    """
    import duckdb
    import polars as pl

    from loratrace.alerts.check import run_alert_check
    from loratrace.alerts.rules import load_rules
    from loratrace.errors import ConfigurationError, QueryError, StoreError

    now = None
    if now_text is not None:
        from datetime import timezone

        from loratrace.analysis.timespec import parse_time

        try:
            now = parse_time(now_text).replace(tzinfo=timezone.utc)
        except ValueError as exc:
            raise BadInput(f"--now: {exc}") from exc
    try:
        rules = load_rules(rules_path)
        target, spans, state_dir = _alert_target(store, source, rules, state_dir)
        try:
            result = run_alert_check(target, rules, now=now, state_dir=state_dir)
        finally:
            spans.close()
    except (ConfigurationError, StoreError) as exc:
        raise BadInput(str(exc)) from exc
    except QueryError as exc:  # a source that fails is no alert either (exit code 1 means firing)
        raise BadInput(f"--source: {exc}") from exc
    except (pl.exceptions.PolarsError, duckdb.Error) as exc:
        # exit code 1 means "firing": a store this version cannot read must not look like an alert
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        raise BadInput(f"--store: {store} could not be read ({reason})") from exc
    _echo_check(result, None)
    raise SystemExit(result.exit_code)


def _alert_target(store: str | None, source: str | None, rules: Any, state_dir: str | None) -> tuple[Any, Any, Any]:
    """What an alert command reads (``--store``, ``--source``, or the rules' ``source:`` section), the source to
    close afterwards, and the state folder."""
    spec = rules.spans_source
    if store is None and source is None:
        if spec is None:
            raise BadInput("pass --store DIR or --source URL, or name the source in the rules file (source:)")
        source, state_dir = spec.resolve(), state_dir or spec.state_dir
    spans = open_source(store, source)
    return (store if store is not None else spans), spans, state_dir


@alert.command("watch")
@store_or_source_options
@rules_option
@click.option("--every", default="5m", show_default=True, help="Interval between checks (30s, 5m, 1h).")
def alert_watch(store: str | None, source: str | None, rules_path: str, state_dir: str | None, every: str) -> None:
    """Run the alert check on a schedule until SIGTERM or Ctrl-C (for containers); docs/alerts.md shows cron,
    systemd and Kubernetes alternatives.

    \b
    Example:
        loratrace alert watch --store ./traces --rules alerts.yaml --every 5m
        loratrace alert watch --rules alerts.yaml --every 5m     # the rules' source: section names ClickHouse
    """
    from loratrace.alerts.rules import load_rules
    from loratrace.alerts.watch import watch
    from loratrace.errors import ConfigurationError, StoreError

    interval = _window_option(every, "--every").total_seconds()
    try:
        target, spans, state_dir = _alert_target(store, source, load_rules(rules_path), state_dir)
        if store is not None:
            _check_store(store)
        try:
            code = watch(target, rules_path, every=interval, state_dir=state_dir, report=_echo_check)
        finally:
            spans.close()
    except (ConfigurationError, StoreError) as exc:
        raise BadInput(str(exc)) from exc
    click.echo("alert watch: stopped", err=True)
    raise SystemExit(code)


def _check_store(store: str) -> None:
    from loratrace.store import open_store

    open_store(store).close()


@cli.command()
@store_or_source_options
@time_options
@click.option("--adapter", required=True, help="The adapter name to release.")
@click.option("--adapter-id", default=None, help="The adapter id (weights) to judge; default: the latest served.")
@click.option("--cohort", "cohorts", multiple=True, help="Only this cohort (repeatable); default: every cohort.")
@metric_option
@traffic_option("replay: golden-set replay only (paired design); production: live traffic only.")
@click.option("--allow-insufficient", is_flag=True, help="PASS even where there is too little data to tell.")
@decision_options
@click.option(
    "--min-feedback-completeness",
    type=click.FloatRange(0.0, 1.0),
    default=0.9,
    show_default=True,
    help="A feedback:<kind> criterion passes only once this share of its late feedback is likely in.",
)
@format_choice(("text", "json"), help="text for people, json for CI.")
def gate(
    store: str | None,
    source: str | None,
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
    min_feedback_completeness: float,
    output_format: str,
) -> None:
    """The release decision for an adapter against its base model: PASS (exit 0) or FAIL (exit 1) with reasons.

    Each reason names a failing cohort and metric with its difference and interval. Insufficient data fails
    unless --allow-insufficient; it judges golden-set replay (paired) and production traffic the same way. A
    feedback:<kind> criterion whose late feedback is still mostly to come counts as insufficient data.

    \b
    Example:
        loratrace gate --store ./traces --adapter billing-v2 --since 24h
        loratrace gate --store ./traces --adapter billing-v2 --since 7d --until 2d --metric feedback:escalation
        loratrace gate --store ./replay --adapter billing-v2 --traffic replay --format json
        loratrace gate --source "chdb:///var/lib/loratrace-ch?table=otel_traces" --adapter billing-v2 --since 24h
    """
    import json

    from loratrace.analysis.gate import gate as decide
    from loratrace.analysis.run import EmptySelectionError
    from loratrace.errors import StoreError

    since_at, until_at = parse_window(since, until)
    spans = open_source(store, source)
    try:
        result = decide(
            store if store is not None else spans,
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
            min_feedback_completeness=min_feedback_completeness,
        )
    except (EmptySelectionError, StoreError) as exc:
        raise BadInput(str(exc)) from exc
    except ValueError as exc:
        raise BadInput(f"--metric: {exc}") from exc
    finally:
        spans.close()
    if output_format == "json":
        click.echo(json.dumps(result.to_dict(), default=str))
    else:
        click.echo(f"{result.decision}: {result.adapter} ({result.adapter_id})")
        for reason in result.reasons:
            click.echo(f"  - {reason}")
        for metric, share in result.feedback_completeness.items():
            shown = "n/a" if share is None else f"{100 * share:.0f} %"
            click.echo(f"  {metric}: about {shown} of the analysed answers' feedback is likely in")
    raise SystemExit(result.exit_code)


# --- release hygiene, user-outcome feedback, task completion ------------------------------------------------


@cli.group()
def feedback() -> None:
    """User outcomes (thumbs-down, escalation, manual review, reopened tickets) joined to the answers they are about.

    \b
    Example:
        loratrace feedback import tickets.csv --endpoint http://127.0.0.1:4318
    """


@feedback.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--endpoint",
    default="http://127.0.0.1:4318",
    show_default=True,
    help="OTLP/HTTP base URL of the loratrace collector that writes the store.",
)
@click.option(
    "--format", "file_format", type=click.Choice(["csv", "jsonl"]), default=None, help="Default: from the suffix."
)
@click.option(
    "--column",
    "columns",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="Read FIELD (trace_id, span_id, request_id, kind, time, value, id) from the file's COLUMN.",
)
@click.option("--kind", "default_kind", default=None, help="Kind for rows without one (e.g. thumbs_down).")
@click.option("--store", type=click.Path(file_okay=False), default=None, help="Store that maps request ids to traces.")
@click.option(
    "--request-id-attribute",
    default="gen_ai.request.id",
    show_default=True,
    help="Span attribute holding the request id that the file's request_id column names.",
)
@click.option(
    "--request-map",
    type=click.Path(dir_okay=False),
    default=None,
    help="CSV of request_id,trace_id[,span_id] mapping the file's request ids to traces.",
)
@click.option("--skip-unmatched", is_flag=True, help="Skip rows whose request id is in no span (default: refuse).")
@auth_token_option("Bearer token the collector requires (never printed).")
def feedback_import(
    file: str,
    endpoint: str,
    file_format: str | None,
    columns: tuple[str, ...],
    default_kind: str | None,
    store: str | None,
    request_id_attribute: str,
    request_map: str | None,
    skip_unmatched: bool,
    auth_token: str | None,
) -> None:
    """Import feedback exported by another system (CSV or JSON lines); importing the same rows again adds nothing.

    Every row is checked first (a bad row sends nothing; exit code 2), then all are sent to the collector as
    loratrace.feedback spans. Times are ISO 8601 (UTC when no offset is given) or epoch seconds.

    \b
    Example:
        loratrace feedback import tickets.csv --column trace_id=otel_trace_id --column time=created_at
        loratrace feedback import reviews.jsonl --kind manual_review --store ./traces --column request_id=req
    """
    from loratrace.errors import ConfigurationError, StoreError
    from loratrace.feedback.importer import import_feedback, parse_columns
    from loratrace.runtime.span_sender import SendError

    try:
        result = import_feedback(
            file,
            endpoint=endpoint,
            fmt=file_format,  # type: ignore[arg-type]  # click.Choice admits only the Literal's values
            columns=parse_columns(columns),
            default_kind=default_kind,
            store=store,
            request_id_attribute=request_id_attribute,
            skip_unmatched=skip_unmatched,
            auth_token=auth_token,
            request_map=request_map,
        )
    except (ConfigurationError, StoreError) as exc:
        raise BadInput(str(exc)) from exc
    except SendError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"sent {result.sent} feedback row(s) from {file} to {endpoint}")


@feedback.command("completeness")
@store_option
@time_options
@click.option("--kind", required=True, help="The feedback kind, e.g. thumbs_down.")
@click.option("--window", default="1d", show_default=True, help="Width of the windows (1h, 1d, 1w).")
@format_option
def feedback_completeness(
    store: str, since: str | None, until: str | None, kind: str, window: str, output_format: str
) -> None:
    """How complete each window's feedback is likely to be, from the delays seen so far (late feedback changes
    past windows): the rate so far, the estimated share already in, and the rate projected from it.

    \b
    Example:
        loratrace feedback completeness --store ./traces --kind escalation --since 14d --window 1d
    """
    from loratrace.analysis import feedback as analysis
    from loratrace.analysis.load import load_generations
    from loratrace.errors import StoreError

    since_at, until_at = parse_window(since, until)
    width = _window_option(window)
    try:
        generations = load_generations(store, since=since_at, until=until_at)
        rows = analysis.completeness(generations, analysis.load_feedback(store), kind=kind, window=width)
    except StoreError as exc:
        raise BadInput(str(exc)) from exc
    except ValueError as exc:
        raise BadInput(f"--kind: {exc}") from exc
    click.echo(render_rows(rows, output_format), nl=False)


@feedback.command("before-after")
@store_option
@time_options
@click.option("--kind", required=True, help="The feedback kind, e.g. thumbs_down.")
@click.option("--adapter", required=True, help="The adapter whose first traffic on the route is the interruption.")
@click.option("--route", required=True, help="The route.")
@click.option("--window", default="1h", show_default=True, help="Width of the time series' windows.")
@click.option("--alpha", type=click.FloatRange(0.0001, 0.5), default=0.05, show_default=True, help="Test level.")
@format_option
def feedback_before_after(
    store: str,
    since: str | None,
    until: str | None,
    kind: str,
    adapter: str,
    route: str,
    window: str,
    alpha: float,
    output_format: str,
) -> None:
    """A route's feedback rate before and after an adapter's first traffic on it (interrupted time series,
    segmented regression); always flagged confounded:time, and feedback_incomplete while windows are still filling.

    \b
    Example:
        loratrace feedback before-after --store ./traces --kind escalation --adapter billing-v2 --route billing
    """
    from loratrace.analysis import feedback as analysis
    from loratrace.analysis.load import load_generations
    from loratrace.errors import StoreError

    since_at, until_at = parse_window(since, until)
    width = _window_option(window)
    try:
        generations = load_generations(store, since=since_at, until=until_at)
        rows = analysis.before_after(
            generations,
            analysis.load_feedback(store),
            kind=kind,
            adapter=adapter,
            route=route,
            window=width,
            alpha=alpha,
        )
    except StoreError as exc:
        raise BadInput(str(exc)) from exc
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    click.echo(render_rows(rows, output_format), nl=False)


@cli.command()
@store_or_source_options
@time_options
@click.option(
    "--check",
    "checks",
    multiple=True,
    type=click.Choice(
        ["metadata_completeness", "confounded_changes", "unevaluated_exposure", "no_release_evidence", "silent_swaps"]
    ),
    help="Run only this check (repeatable); all by default.",
)
@click.option(
    "--window",
    default="1h",
    show_default=True,
    help="Confounded changes: changes on a route this close together count as one (30m, 1h, 1d).",
)
@format_choice(("table", "json"), help="Output format.")
def doctor(
    store: str | None,
    source: str | None,
    since: str | None,
    until: str | None,
    checks: tuple[str, ...],
    window: str,
    output_format: str,
) -> None:
    """Find common release mistakes from the traces: missing metadata, confounded changes, unevaluated exposure,
    adapters without release evidence, silent swaps. Each finding names its evidence query and how to fix it.

    Exit code 0 when no finding is at error severity, 1 when one is, 2 for bad input.

    \b
    Example:
        loratrace doctor --store ./traces
        loratrace doctor --store ./traces --since 7d --check silent_swaps --format json
        loratrace doctor --source "clickhouse://reader@ch.internal:8123/otel" --since 7d
    """
    from loratrace.doctor import hygiene_findings
    from loratrace.doctor.report import render
    from loratrace.errors import ConfigurationError, QueryError, StoreError

    since_at, until_at = parse_window(since, until)
    width = _window_option(window)
    spans = open_source(store, source)
    try:
        findings = hygiene_findings(
            spans,
            since=since_at,
            until=until_at,
            checks=checks or None,  # type: ignore[arg-type]  # click.Choice admits only the Literal's values
            window=width,
        )
    except (ConfigurationError, StoreError, QueryError) as exc:
        raise BadInput(str(exc)) from exc
    finally:
        spans.close()
    click.echo(render(findings, output_format), nl=False)  # type: ignore[arg-type]  # click.Choice admits only the Literal's values
    if any(finding.severity == "error" for finding in findings):
        raise SystemExit(1)


@cli.group()
def evaluate() -> None:
    """Evaluators run over the traces already in a store; results go back through the collector as evaluations.

    \b
    Example:
        loratrace evaluate tasks --store ./traces --workflows workflows.toml
    """


@evaluate.command("tasks")
@store_option
@click.option(
    "--workflows",
    "workflows_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="TOML (or .json) file declaring one workflow per route.",
)
@click.option(
    "--endpoint",
    default="http://127.0.0.1:4318",
    show_default=True,
    help="OTLP/HTTP base URL of the collector writing the store (the results are sent there).",
)
@time_options
@click.option("--again", is_flag=True, help="Also judge traces that already have a task_completion result.")
@click.option("--dry-run", is_flag=True, help="Print the verdicts and send nothing.")
@auth_token_option("Bearer token the collector requires (never printed).")
def evaluate_tasks_command(
    store: str,
    workflows_file: str,
    endpoint: str,
    since: str | None,
    until: str | None,
    again: bool,
    dry_run: bool,
    auth_token: str | None,
) -> None:
    """Judge each agent trace on a workflow's route (required steps, their order, forbidden shortcuts, the final
    answer) and write a task_completion evaluation for it, so drift, report, alerts and gate use it. Prints every
    trace that failed, then a summary.

    \b
    Example:
        loratrace evaluate tasks --store ./traces --workflows workflows.toml --since 24h
        loratrace query task_failed_spans_ok --store ./traces    # every span succeeded, the task did not
    """
    from loratrace.errors import ConfigurationError, StoreError
    from loratrace.runtime.span_sender import SendError, traces_url
    from loratrace.tasks import iter_task_results, load_workflows
    from loratrace.tasks.emit import send_results

    since_at, until_at = parse_window(since, until)
    try:
        traces_url(endpoint)
        batches = iter_task_results(
            store,
            load_workflows(workflows_file),
            since=since_at,
            until=until_at,
            skip_evaluated=not again,
        )
        judged = failed = sent = 0
        # batch by batch: a large store is judged and sent in bounded memory, and what was sent stays judged
        for results in batches:
            for result in results:
                if not result.passed:
                    click.echo(f"{result.trace_id}  {result.workflow}  FAILED  {result.label}: {result.explanation}")
            judged += len(results)
            failed += sum(not result.passed for result in results)
            if not dry_run:
                sent += send_results(results, endpoint=endpoint, auth_token=auth_token)
    except (ConfigurationError, StoreError) as exc:
        raise BadInput(str(exc)) from exc
    except SendError as exc:
        raise click.ClickException(str(exc)) from exc
    if dry_run:
        click.echo(f"{judged} trace(s) judged, {failed} failed; nothing sent (--dry-run)")
        return
    click.echo(f"{judged} trace(s) judged, {failed} failed; {sent} result(s) sent to {endpoint}")


# --- replay ---------------------------------------------------------------------------------------------------
@cli.command()
@click.option("--dataset", required=True, type=click.Path(dir_okay=False), help="JSONL golden set (docs/replay.md).")
@click.option("--base", required=True, help="Folder of the base model.")
@click.option("--adapter", "adapters", multiple=True, metavar="NAME=PATH", help="An adapter to compare; repeatable.")
@choice_option("--engine", ["transformers", "vllm"], help="Engine.")
@click.option("--store", type=click.Path(file_okay=False), default=None, help="Write spans into this store folder.")
@click.option("--endpoint", default=None, help="Or send spans over OTLP/HTTP to a collector (http://HOST:PORT).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Replay only the first N valid examples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed (with --temperature > 0).")
@count_option("--max-new-tokens", at_least=1, default=64, help="Tokens per answer.")
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.0, show_default=True, help="0 is greedy.")
@count_option("--max-model-len", at_least=8, default=256, help="Prompt + answer.")
@count_option("--schema-attempts", at_least=1, default=2, help="Attempts per schema example.")
@click.option("--fallback-to-base", is_flag=True, help="After the last failed schema attempt, answer with the base.")
@click.option("--evaluator", "evaluators", multiple=True, metavar="MODULE:ATTR", help="An external evaluator.")
@click.option("--evaluator-timeout", type=click.FloatRange(min=0.001), default=30.0, show_default=True, help="Seconds.")
@click.option("--dataset-version", default=None, help="Version to record (default: a hash of the file).")
@count_option("--chunk-size", at_least=1, default=64, help="Examples per chunk.")
@count_option(
    "--batch-size",
    at_least=1,
    default=8,
    help="Prompts per padded generate (transformers engine; vLLM batches a whole chunk).",
)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch threads (transformers engine).")
@click.option("--journal", type=click.Path(dir_okay=False), default=None, help="Resume journal file.")
@click.option("--run-id", default=None, help="Name of this run (default: a hash of its configuration).")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: when stderr is a terminal).")
def replay(**options: Any) -> None:
    """Replay a golden set through the base model and each adapter, evaluate every answer, record paired spans.

    Run the same command again to resume an interrupted replay: finished examples are not repeated.

    \b
    Example:
        loratrace replay --dataset docs/examples/golden.jsonl --base ./tiny-llama \\
            --adapter a1=./adapters/a1 --adapter a2=./adapters/a2 --engine vllm --store ./traces
    """
    from loratrace.errors import ConfigurationError, LoratraceError
    from loratrace.evaluators.protocol import load_evaluator

    try:
        from loratrace.replay import run_replay
        from loratrace.replay.report import format_summary, parse_adapters
    except ImportError as exc:  # the replay extra is not installed
        msg = f"loratrace replay needs the replay extra ({exc.name} is missing): pip install 'loratrace[replay]'"
        raise click.ClickException(msg) from exc

    if (options["store"] is None) == (options["endpoint"] is None):
        raise click.UsageError("give --store DIR or --endpoint URL (exactly one): where the replay's spans go")
    try:
        adapters = parse_adapters(options.pop("adapters"))
        evaluators = [load_evaluator(reference) for reference in options.pop("evaluators")]
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from exc
    dataset = options.pop("dataset")
    try:
        summary = run_replay(
            dataset,
            adapters=adapters,
            evaluators=evaluators,
            evaluator_timeout_s=options.pop("evaluator_timeout"),
            on_problem=lambda problem: click.echo(f"{dataset}:{problem.line}: skipped: {problem.message}", err=True),
            **options,
        )
    except OSError as exc:
        raise click.BadParameter(f"cannot read {dataset!r} ({exc.strerror or exc})", param_hint="--dataset") from exc
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from exc
    except LoratraceError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_summary(summary), nl=False)


def main() -> None:
    cli()
