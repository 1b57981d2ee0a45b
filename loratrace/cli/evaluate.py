"""``loratrace evaluate``: evaluators run over the traces already in a store."""

from __future__ import annotations

import click

from loratrace.cli.options import BadInput, auth_token_option, store_option, time_options
from loratrace.cli.selection import parse_window


@click.group()
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
        workflows = load_workflows(workflows_file)
        batches = iter_task_results(store, workflows, since=since_at, until=until_at, skip_evaluated=not again)
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


COMMANDS = (evaluate,)
