"""``loratrace feedback``: user outcomes imported from other systems, how complete they are, and a route's rate
before and after an adapter."""

from __future__ import annotations

from typing import Any

import click

from loratrace.cli.options import BadInput, auth_token_option, format_option, store_option, time_options
from loratrace.cli.render import render_rows
from loratrace.cli.selection import duration, parse_window


@click.group()
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
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default=None, help="Default: from the suffix.")
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
def feedback_import(file: str, **options: Any) -> None:
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
        options["columns"] = parse_columns(options["columns"])
        result = import_feedback(file, **options)
    except (ConfigurationError, StoreError) as exc:
        raise BadInput(str(exc)) from exc
    except SendError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"sent {result.sent} feedback row(s) from {file} to {options['endpoint']}")


def _feedback_rows(options: dict[str, Any], analyse: Any, *, bad_value: str = "") -> None:
    """Runs ``analyse(generations, feedback, window=…, **rest)`` over the window's generations and the store's
    feedback, and prints its rows; ``options`` are a feedback command's, ``bad_value`` prefixes the message of
    a value ``analyse`` refuses."""
    from loratrace.analysis import feedback as analysis
    from loratrace.analysis.load import load_generations
    from loratrace.errors import StoreError

    store, output_format = options.pop("store"), options.pop("output_format")
    since, until = parse_window(options.pop("since"), options.pop("until"))
    width = duration(options.pop("window"))
    try:
        generations = load_generations(store, since=since, until=until)
        rows = analyse(generations, analysis.load_feedback(store), window=width, **options)
    except StoreError as exc:
        raise BadInput(str(exc)) from exc
    except ValueError as exc:
        raise BadInput(f"{bad_value}{exc}") from exc
    click.echo(render_rows(rows, output_format), nl=False)


@feedback.command("completeness")
@store_option
@time_options
@click.option("--kind", required=True, help="The feedback kind, e.g. thumbs_down.")
@click.option("--window", default="1d", show_default=True, help="Width of the windows (1h, 1d, 1w).")
@format_option
def feedback_completeness(**options: Any) -> None:
    """How complete each window's feedback is likely to be, from the delays seen so far (late feedback changes
    past windows): the rate so far, the estimated share already in, and the rate projected from it.

    \b
    Example:
        loratrace feedback completeness --store ./traces --kind escalation --since 14d --window 1d
    """
    from loratrace.analysis.feedback import completeness

    _feedback_rows(options, completeness, bad_value="--kind: ")


@feedback.command("before-after")
@store_option
@time_options
@click.option("--kind", required=True, help="The feedback kind, e.g. thumbs_down.")
@click.option("--adapter", required=True, help="The adapter whose first traffic on the route is the interruption.")
@click.option("--route", required=True, help="The route.")
@click.option("--window", default="1h", show_default=True, help="Width of the time series' windows.")
@click.option("--alpha", type=click.FloatRange(0.0001, 0.5), default=0.05, show_default=True, help="Test level.")
@format_option
def feedback_before_after(**options: Any) -> None:
    """A route's feedback rate before and after an adapter's first traffic on it (interrupted time series,
    segmented regression); always flagged confounded:time, and feedback_incomplete while windows are still filling.

    \b
    Example:
        loratrace feedback before-after --store ./traces --kind escalation --adapter billing-v2 --route billing
    """
    from loratrace.analysis.feedback import before_after

    _feedback_rows(options, before_after)


COMMANDS = (feedback,)
