"""The flag bundles the ``loratrace`` commands share, as decorator factories (sqlite-utils' habit): one definition
of ``--store``, ``--source``, ``--format``, the window and the test knobs, whichever command carries them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from loratrace.sources.base import Source

F = TypeVar("F", bound=Callable[..., Any])


class BadInput(click.ClickException):
    """A user error in an analysis command's input: exit code 2, as for a usage error."""

    exit_code = 2


def _store(*, required: bool, help: str = "Folder of the span store.") -> Callable[[F], F]:
    # no ``default`` at all when required: Click 8.3+ takes an explicit ``default=None`` as a value given, and
    # would then call the command without a store instead of reporting the missing option
    optional: dict[str, object] = {} if required else {"default": None}
    return click.option(
        "--store",
        required=required,
        envvar="LORATRACE_STORE",
        show_envvar=True,
        type=click.Path(file_okay=False),
        help=help,
        **optional,  # type: ignore[arg-type]  # click.option's keywords are typed per name; this one is ``default``
    )


def store_option(function: F) -> F:
    """``--store DIR`` (or ``LORATRACE_STORE``) for the commands that read a store."""
    return _store(required=True)(function)


def source_option(function: F) -> F:
    """``--source URL`` (or ``LORATRACE_SOURCE``): ClickHouse's ``otel_traces`` instead of a store folder."""
    return click.option(
        "--source",
        default=None,
        envvar="LORATRACE_SOURCE",
        show_envvar=True,
        help="Instead of --store: ClickHouse's otel_traces, clickhouse://user:pw@host:8123/db?table=otel_traces "
        "(password never printed), or chdb://PATH for the embedded engine.",
    )(function)


def store_or_source_options(function: F) -> F:
    """``--store DIR`` or ``--source URL`` (ClickHouse), for the analyses that run on either."""
    return _store(required=False)(source_option(function))


def open_source(store: str | None, source: str | None) -> Source:
    """The source that ``--store`` / ``--source`` name: exactly one of them (exit 2 otherwise)."""
    from loratrace.errors import StoreError
    from loratrace.sources import open_source as open_any

    if store is not None and source is not None:
        store, source = _flag_over_environment(store, source)
    if store is not None and source is not None:
        raise BadInput("pass either --store DIR or --source URL, not both")
    location = store if source is None else source
    if location is None:
        raise BadInput("pass --store DIR (a loratrace store) or --source URL (clickhouse://… or chdb://PATH)")
    try:
        return open_any(location, local=source is None)
    except StoreError as exc:
        flag = "--store" if source is None else "--source"
        raise BadInput(f"{flag}: {exc}") from exc


def _flag_over_environment(store: str, source: str) -> tuple[str | None, str | None]:
    """A flag given on the command line wins over the other one's environment variable."""
    context = click.get_current_context(silent=True)
    if context is None:
        return store, source
    from click.core import ParameterSource

    from_env = {name: context.get_parameter_source(name) == ParameterSource.ENVIRONMENT for name in ("store", "source")}
    if from_env["store"] and not from_env["source"]:
        return None, source
    if from_env["source"] and not from_env["store"]:
        return store, None
    return store, source


def time_options(function: F) -> F:
    """``--since`` / ``--until``: durations ago (24h, 30m, 7d) or ISO times."""
    function = click.option("--until", default=None, help="End of the window (exclusive): 2h ago, or an ISO time.")(
        function
    )
    return click.option("--since", default=None, help="Start of the window: a duration ago (24h, 7d) or an ISO time.")(
        function
    )


def format_choice(
    choices: Sequence[str] = ("table", "json", "csv"), *, help: str = "A table for people, JSON or CSV for machines."
) -> Callable[[F], F]:
    """``--format`` among ``choices`` (the first is the default)."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(list(choices)),
        default=choices[0],
        show_default=True,
        help=help,
    )


format_option = format_choice()
"""``--format table|json|csv``."""


def auth_token_option(help: str) -> Callable[[F], F]:
    """``--auth-token`` (or ``LORATRACE_AUTH_TOKEN``): a collector's bearer token, never printed."""
    return click.option("--auth-token", envvar="LORATRACE_AUTH_TOKEN", show_envvar=True, default=None, help=help)


def choice_option(flag: str, choices: Sequence[str], *, help: str) -> Callable[[F], F]:
    """A flag taking one of ``choices``, the first the default (shown in ``--help``)."""
    return click.option(flag, type=click.Choice(list(choices)), default=choices[0], show_default=True, help=help)


def count_option(flag: str, *, at_least: int, default: int, help: str) -> Callable[[F], F]:
    """A whole-number flag with a floor (exit 2 below it) and its default shown in ``--help``."""
    return click.option(flag, type=click.IntRange(min=at_least), default=default, show_default=True, help=help)


def traffic_option(help: str) -> Callable[[F], F]:
    """``--traffic all|production|replay``."""
    return choice_option("--traffic", ["all", "production", "replay"], help=help)


def metric_option(function: F) -> F:
    """``--metric NAME`` (repeatable) into ``metric_names``."""
    return click.option(
        "--metric", "metric_names", multiple=True, help="Only this metric (repeatable); default: the rates."
    )(function)


def decision_options(function: F) -> F:
    """``--alpha`` / ``--min-n`` / ``--min-effect``: the knobs of a drift verdict."""
    function = click.option(
        "--min-effect", type=click.FloatRange(min=0), default=0.02, show_default=True, help="Smallest rate change."
    )(function)
    function = click.option(
        "--min-n", type=click.IntRange(min=1), default=30, show_default=True, help="Fewest per arm."
    )(function)
    return click.option(
        "--alpha", type=click.FloatRange(0.0001, 0.5), default=0.05, show_default=True, help="FDR level."
    )(function)


def view_option(choices: Sequence[str], help: str) -> Callable[[F], F]:
    """``--view``: one of a command's tables only."""
    return click.option("--view", type=click.Choice(list(choices)), default=None, help=help)
