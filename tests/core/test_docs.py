"""Keep the documentation honest: every command has help and a README mention, every name is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from loratrace import semconv
from loratrace.cli import cli

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        full = f"{prefix}{name}"
        found.append((full, command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, f"{full} "))
    return found


@pytest.mark.parametrize(("name", "command"), _commands(cli), ids=lambda value: getattr(value, "name", value))
def test_every_command_has_help_with_an_example_and_a_readme_mention(name, command):
    result = CliRunner().invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert command.help
    assert len(command.help.strip()) > 20
    assert "Example" in command.help, f"`loratrace {name} --help` shows no example"
    assert f"loratrace {name}" in README, f"README does not mention `loratrace {name}`"


def test_version_option():
    from loratrace import __version__

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"loratrace, version {__version__}"


def _loratrace_attribute_names() -> set[str]:
    return {
        value
        for name, value in vars(semconv).items()
        if name.isupper()
        and isinstance(value, str)
        and value.startswith("loratrace.")
        and not name.endswith(("_SPAN", "_PREFIX"))
        and not name.startswith("METRIC_")
    }


def test_every_loratrace_attribute_has_a_row_in_the_attribute_table():
    rows = {name for row in semconv.PUBLIC_ATTRIBUTES for name in row.names}
    missing = _loratrace_attribute_names() - rows
    assert not missing, f"semconv.PUBLIC_ATTRIBUTES (the README's table) lacks {sorted(missing)}"


def test_the_readme_attribute_table_is_the_one_semconv_generates():
    from tools.gen_docs import attribute_table, readme_table

    assert readme_table(README) == attribute_table(), "README.md's attribute table is stale: python tools/gen_docs.py"


def test_the_attribute_table_abbreviates_siblings_only():
    from tools.gen_docs import attribute_table

    table = attribute_table()
    assert "| `loratrace.adapter.rank` / `.alpha` | int / double |" in table
    assert "| `loratrace.fallback` / `.fallback.reason` |" in table
    assert "| `loratrace.prompt.version` / `loratrace.dataset.version` |" in table


def test_semconv_names_are_unique_and_well_formed():
    values = [value for name, value in vars(semconv).items() if name.isupper() and isinstance(value, str)]
    names = [v for v in values if "." in v and " " not in v and not v.endswith(".")]
    for value in names:
        assert re.fullmatch(r"[a-z_][a-z0-9_.]*[a-z0-9_]", value), value
    metric_labels = set(semconv.METRIC_LABELS)
    assert semconv.ADAPTER_ID not in metric_labels  # ids and hashes never label metrics
    assert semconv.ADAPTER_SOURCE not in metric_labels
