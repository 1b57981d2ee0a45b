"""``loratrace demo``: the whole path on a local tiny model, offline."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    default="loratrace-demo",
    show_default=True,
    help="Folder for the tiny model, its adapters and the span store.",
)
@click.option(
    "--vllm/--no-vllm",
    "use_vllm",
    default=None,
    help="Also serve through vLLM's offline engine (default: when vLLM is installed).",
)
@click.option("--fresh", is_flag=True, help="Remove the store an earlier run left in the workdir first.")
def demo(workdir: str, use_vllm: bool | None, fresh: bool) -> None:
    """Serve a few prompts through a local tiny model and two LoRA adapters, instrumented, and show the spans.

    Builds the tiny Llama and adapters on local disk (no download), so it runs offline. Then adds a day of
    simulated traffic (service loratrace-traffic) with a planted regression and a planted spike, shows drift and
    spikes find them, and writes report.html into the workdir.

    A second run adds to the store the first one left (it says so); --fresh starts over.

    \b
    Example:
        loratrace demo --workdir /tmp/loratrace-demo
        loratrace demo --fresh                          # forget the earlier runs' spans
    """
    from loratrace.demo.walkthrough import run_demo

    run_demo(workdir, use_vllm=use_vllm, fresh=fresh)


COMMANDS = (demo,)
