"""The ``loratrace`` command line: one click group, its commands one module per job.

- ``options``: the flag bundles the commands share (``--store``, ``--source``, ``--format``, the window, the knobs)
- ``selection``: what an analysis command reads (spans and window), checked before any statistics
- ``render``: what the commands print (tables, JSON, CSV; a store's status)
- ``store``: ``collect``, ``sql``, ``status``; ``demo``: ``demo``; ``vllm``: ``vllm serve``
- ``drift``: ``drift`` and ``gate``; ``lookups``: ``query``, ``adapters``, ``latency``, ``cost``
- ``spikes``: ``spikes`` and ``report``; ``alerts``: ``alert check|watch``; ``doctor``: ``doctor``
- ``feedback``: ``feedback import|completeness|before-after``; ``evaluate``: ``evaluate tasks``; ``replay``: ``replay``

Each command takes its flags as ``**options`` and hands on, under the same names, the ones the library function
it calls takes: a flag is declared once, in its decorator. Imports of the heavy parts stay inside the commands:
``loratrace query`` must not load Polars or the OpenTelemetry SDK to answer one lookup.
"""

from __future__ import annotations

import click

from loratrace._version import __version__
from loratrace.cli import alerts, demo, doctor, drift, evaluate, feedback, lookups, replay, spikes, store, vllm
from loratrace.cli.render import render_rows

__all__ = ["cli", "main", "render_rows"]


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


for _module in (demo, store, drift, lookups, spikes, vllm, alerts, feedback, doctor, evaluate, replay):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli()
