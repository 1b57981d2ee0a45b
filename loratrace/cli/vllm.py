"""``loratrace vllm serve``: vLLM's OpenAI-compatible server with loratrace on."""

from __future__ import annotations

import click


@click.group()
def vllm() -> None:
    """vLLM with loratrace on.

    \b
    Example:
        loratrace vllm serve ./base --enable-lora --lora-modules a1=./adapters/a1
    """


@vllm.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("vllm_arguments", nargs=-1, type=click.UNPROCESSED)
def serve(vllm_arguments: tuple[str, ...]) -> None:
    """Run vLLM's OpenAI-compatible server (`vllm serve`) with loratrace on.

    Every argument goes unchanged to `vllm serve` (see `vllm serve --help`). loratrace adds: one SERVER span per
    completion / chat request naming the adapter that served it (name, content-hash id, rank, alpha, target
    modules, base model, variant), token counts, finish reasons and time to first token; spans for adapter
    loads and unloads (the static --lora-modules included); vLLM's own llm_request span (--otlp-traces-endpoint)
    enriched with the adapter; GenAI histograms labelled by adapter. Spans and metrics go over OTLP as the
    OTEL_EXPORTER_OTLP_* / OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER variables say (default
    http://127.0.0.1:4318, where `loratrace collect` listens); the service name is OTEL_SERVICE_NAME or
    vllm-server. On vLLM's CPU build set VLLM_CPU_KVCACHE_SPACE (GiB of KV cache): its default reserves most of
    the machine's memory and fails on a small one.

    \b
    Example:
        VLLM_CPU_KVCACHE_SPACE=1 loratrace vllm serve ./base --enable-lora \\
            --lora-modules a1=./adapters/a1 a2=./adapters/a2
    """
    from loratrace.instrumentation.vllm.serve import main as serve_main

    if vllm_arguments in (("--help",), ("-h",)):
        click.echo(click.get_current_context().get_help())
        click.echo("\nvLLM's own options: `loratrace vllm serve --help=all` (or a group: --help=ModelConfig).")
        return
    serve_main(list(vllm_arguments))


COMMANDS = (vllm,)
