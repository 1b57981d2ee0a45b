"""The ``loratrace`` command line: one click group."""

from __future__ import annotations

import click

from loratrace._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loratrace")
def cli() -> None:
    """Observe LoRA adapter releases: which adapter served each answer, and how it compares to its base.

    \b
    Examples:
        loratrace demo                                  # the whole path on a local tiny model
        loratrace collect --store ./traces              # OTLP receiver on 127.0.0.1:4318 / :4317
        loratrace sql --store ./traces "SELECT adapter_name, count(*) FROM spans GROUP BY 1"
    """


@cli.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    default="loratrace-demo",
    show_default=True,
    help="Folder for the tiny model, its adapters and the span store.",
)
def demo(workdir: str) -> None:
    """Serve a few prompts through a local tiny model and two LoRA adapters, instrumented, and show the spans.

    Builds the tiny Llama and adapters on local disk (no download), so it runs offline.

    \b
    Example:
        loratrace demo --workdir /tmp/loratrace-demo
    """
    from loratrace.demo.walkthrough import run_demo

    run_demo(workdir)


def main() -> None:
    cli()
