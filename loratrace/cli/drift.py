"""Adapters against their base model: ``drift`` (every adapter × cohort × metric) and ``gate`` (the release
decision for one adapter)."""

from __future__ import annotations

from typing import Any

import click

from loratrace.cli.options import (
    BadInput,
    choice_option,
    decision_options,
    format_choice,
    format_option,
    metric_option,
    store_or_source_options,
    time_options,
    traffic_option,
)
from loratrace.cli.render import render_rows
from loratrace.cli.selection import duration, none_when_empty, selected


@click.command()
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
def drift(**options: Any) -> None:
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

    output_format, verdicts = options.pop("output_format"), options.pop("verdicts")
    width = duration(options.pop("window"))
    none_when_empty(options, "adapters", "cohorts", "metric_names")
    with selected(options) as selection:
        settings = DriftSettings(since=selection.since, until=selection.until, window=width, **options)
        try:
            rows = drift_for_source(selection.spans, settings)
        except (EmptySelectionError, StoreError, QueryError) as exc:
            raise BadInput(str(exc)) from exc
        except ValueError as exc:
            raise BadInput(f"--metric: {exc}") from exc
    if verdicts:
        rows = rows.filter(rows["verdict"].is_in(list(verdicts)))
    click.echo(render_rows(rows, output_format), nl=False)


@click.command()
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
def gate(**options: Any) -> None:
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

    output_format = options.pop("output_format")
    none_when_empty(options, "cohorts", "metric_names")
    with selected(options) as selection:
        try:
            result = decide(selection.target, since=selection.since, until=selection.until, **options)
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
        for metric, share in result.feedback_completeness.items():
            shown = "n/a" if share is None else f"{100 * share:.0f} %"
            click.echo(f"  {metric}: about {shown} of the analysed answers' feedback is likely in")
    raise SystemExit(result.exit_code)


COMMANDS = (drift, gate)
