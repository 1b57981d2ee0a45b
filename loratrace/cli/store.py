"""The store's own commands: ``collect`` (the OTLP receiver that writes it), ``sql`` and ``status``."""

from __future__ import annotations

from typing import Any

import click

from loratrace.cli.options import auth_token_option, count_option, format_choice, format_option, store_option


def _address(value: str, flag: str) -> tuple[str, int] | None:
    if value.strip().lower() == "off":
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        msg = f"{flag} takes HOST:PORT (e.g. 127.0.0.1:4318) or off, got {value!r}"
        raise click.ClickException(msg)
    return host.strip("[]"), int(port)


@click.command()
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
def collect(**options: Any) -> None:
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
        check_writer_id(options["writer_id"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--writer-id") from exc
    http = _address(options.pop("http_address"), "--http")
    grpc = _address(options.pop("grpc_address"), "--grpc")
    if http is None and grpc is None:
        msg = "--http off and --grpc off leave nothing to receive on; keep at least one"
        raise click.BadParameter(msg, param_hint="--http / --grpc")
    limits = AttributeLimits(
        max_attributes=options.pop("max_span_attributes"), max_value_length=options.pop("max_attribute_length")
    )
    options["auth_token"] = options["auth_token"] or None  # an empty LORATRACE_AUTH_TOKEN asks for no token
    settings = CollectorSettings(http=http, grpc=grpc, attribute_limits=limits, **options)

    def ready(collector: object) -> None:
        receivers = [
            f"{name} on {address[0]}:{getattr(collector, port)}"
            for name, address, port in (("OTLP/HTTP", http, "http_port"), ("OTLP/gRPC", grpc, "grpc_port"))
            if address is not None
        ]
        click.echo(f"loratrace collector: {', '.join(receivers)}, store {settings.store}", err=True)

    try:
        run_collector(settings, on_ready=ready)
    except CollectorError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
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
    from loratrace.cli.render import render
    from loratrace.errors import StoreError
    from loratrace.store import query

    try:
        frame = query(store, statement, full_engine=full_engine)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(render(frame, output_format), nl=False)


@click.command()
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

    from loratrace.cli.render import render_status
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


COMMANDS = (collect, sql, status)
