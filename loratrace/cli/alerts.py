"""``loratrace alert check|watch``: the alert rules evaluated once, or on a schedule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from loratrace.cli.options import BadInput, open_source, store_or_source_options
from loratrace.cli.selection import duration

F = TypeVar("F", bound=Callable[..., Any])


def _alerts_installed() -> None:
    for module in ("yaml", "jsonschema", "scipy"):
        try:
            __import__(module)
        except ImportError:
            msg = f"the alert commands need {module}: pip install 'loratrace[alerts]'"
            raise click.ClickException(msg) from None


@click.group()
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


def _check_time(now_text: str | None) -> Any:
    """``--now``: the clock (None), or an ISO time to check as of."""
    if now_text is None:
        return None
    from datetime import timezone

    from loratrace.analysis.timespec import parse_time

    try:
        return parse_time(now_text).replace(tzinfo=timezone.utc)
    except ValueError as exc:
        raise BadInput(f"--now: {exc}") from exc


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

    now = _check_time(now_text)
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
    from loratrace.store import open_store

    interval = duration(every, "--every").total_seconds()
    try:
        target, spans, state_dir = _alert_target(store, source, load_rules(rules_path), state_dir)
        try:
            if store is not None:  # a folder that is no store fails now, not at the first scheduled check
                open_store(store).close()
            code = watch(target, rules_path, every=interval, state_dir=state_dir, report=_echo_check)
        finally:
            spans.close()
    except (ConfigurationError, StoreError) as exc:
        raise BadInput(str(exc)) from exc
    click.echo("alert watch: stopped", err=True)
    raise SystemExit(code)


COMMANDS = (alert,)
