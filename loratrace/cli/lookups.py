"""Looking things up in the spans: the shipped incident queries (``query``), the adapter inventory
(``adapters``), ``latency`` against the base model, and ``cost``."""

from __future__ import annotations

from typing import Any

import click

from loratrace.cli.options import (
    BadInput,
    choice_option,
    count_option,
    format_option,
    open_source,
    store_option,
    store_or_source_options,
    time_options,
    view_option,
)
from loratrace.cli.render import render_tables
from loratrace.cli.selection import analysis_frame, checked_cells, selected


def _adapter_options(function: Any) -> Any:
    function = click.option("--cohort", default=None, help="Only this cohort.")(function)
    return click.option("--adapter", default=None, help="Only this adapter (and the base model).")(function)


def _echo_tables(tables: dict[str, Any], output_format: str) -> None:
    try:
        click.echo(render_tables(tables, output_format), nl=False)
    except ValueError as exc:  # several tables asked for as CSV
        raise BadInput(str(exc)) from None


@click.command("query")
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
    from loratrace.analysis import queries
    from loratrace.cli.render import render_result
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
    from loratrace.cli.render import render_result
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


@click.command("adapters")
@store_or_source_options
@time_options
@_adapter_options
@view_option(["adapters", "cohorts", "changes"], "One table only (all three by default; csv needs one).")
@format_option
def adapters_command(**options: Any) -> None:
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

    with selected(options, check_order=True) as selection:
        cells = checked_cells(selection, options["adapter"], options["cohort"])
    result = inventory_of_cells(cells.lazy())
    tables = {"adapters": result.adapters, "cohorts": result.cohorts, "changes": result.id_changes}
    view = options["view"]
    _echo_tables({view: tables[view]} if view else tables, options["output_format"])


@click.command("latency")
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
def latency_command(**options: Any) -> None:
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

    view, tables = options["view"], {}
    with selected(options, check_order=True) as selection:
        adapter, cohort = options["adapter"], options["cohort"]
        checked_cells(selection, adapter, cohort)
        narrowing = {"since": selection.since, "until": selection.until, "adapter": adapter, "cohort": cohort}
        try:  # one pass each where the spans are (DuckDB or ClickHouse); Polars and scipy work on the small results
            if view in (None, "percentiles"):
                tables["percentiles"] = latency.store_percentiles(selection.spans, **narrowing)
            if view in (None, "vs-base"):
                counts = latency.store_counts(selection.spans, **narrowing)
                tables["vs-base"] = latency.verdicts(counts, alpha=options["alpha"], min_n=options["min_n"])
        except (StoreError, QueryError) as exc:
            raise BadInput(f"{selection.flag}: {exc}") from None
    _echo_tables(tables, options["output_format"])


@click.command("cost")
@store_option
@click.option("--prices", required=True, type=click.Path(dir_okay=False), help="Prices file (.toml or .json).")
@time_options
@_adapter_options
@choice_option("--by", ["adapter", "trace"], help="One row per adapter, or per trace (most expensive first).")
@count_option("--limit", at_least=1, default=50, help="Rows with --by trace.")
@format_option
def cost_command(**options: Any) -> None:
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

    prices, by, store = options["prices"], options["by"], options["store"]
    adapter, cohort = options["adapter"], options["cohort"]
    try:
        table = cost.load_prices(prices)
    except ConfigurationError as exc:
        raise BadInput(f"--prices: {exc}") from None
    if by == "adapter":  # token sums per adapter and model in one DuckDB pass; cost is linear in them
        with selected(dict(options, source=None), check_order=True) as selection:
            checked_cells(selection, adapter, cohort)
        narrowing = {"since": selection.since, "until": selection.until, "adapter": adapter, "cohort": cohort}
        frame = cost.priced(cost.store_token_cells(store, **narrowing), table)
    else:
        frame = cost.priced(analysis_frame(store, options["since"], options["until"], adapter, cohort), table)
    try:
        cost.require_priced(frame, source=prices)
    except ConfigurationError as exc:
        raise BadInput(f"--prices: {exc}") from None
    result = cost.cost_by_adapter(frame) if by == "adapter" else cost.cost_by_trace(frame, limit=options["limit"])
    _echo_tables({f"cost by {by}": result.collect()}, options["output_format"])


COMMANDS = (query_command, adapters_command, latency_command, cost_command)
