"""``loratrace doctor``: the release-hygiene checks over the traces."""

from __future__ import annotations

from typing import Any

import click

from loratrace.cli.options import BadInput, format_choice, store_or_source_options, time_options
from loratrace.cli.selection import duration, selected


@click.command()
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
def doctor(**options: Any) -> None:
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

    output_format = options.pop("output_format")
    width = duration(options.pop("window"))
    with selected(options) as selection:
        try:
            findings = hygiene_findings(
                selection.spans,
                since=selection.since,
                until=selection.until,
                checks=options["checks"] or None,
                window=width,
            )
        except (ConfigurationError, StoreError, QueryError) as exc:
            raise BadInput(str(exc)) from exc
    click.echo(render(findings, output_format), nl=False)
    if any(finding.severity == "error" for finding in findings):
        raise SystemExit(1)


COMMANDS = (doctor,)
