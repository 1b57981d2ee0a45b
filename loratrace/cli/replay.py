"""``loratrace replay``: a golden set through the base model and each adapter, every answer evaluated."""

from __future__ import annotations

from typing import Any

import click

from loratrace.cli.options import choice_option, count_option


@click.command()
@click.option("--dataset", required=True, type=click.Path(dir_okay=False), help="JSONL golden set (docs/replay.md).")
@click.option("--base", required=True, help="Folder of the base model.")
@click.option("--adapter", "adapters", multiple=True, metavar="NAME=PATH", help="An adapter to compare; repeatable.")
@choice_option("--engine", ["transformers", "vllm"], help="Engine.")
@click.option("--store", type=click.Path(file_okay=False), default=None, help="Write spans into this store folder.")
@click.option("--endpoint", default=None, help="Or send spans over OTLP/HTTP to a collector (http://HOST:PORT).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Replay only the first N valid examples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed (with --temperature > 0).")
@count_option("--max-new-tokens", at_least=1, default=64, help="Tokens per answer.")
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.0, show_default=True, help="0 is greedy.")
@count_option("--max-model-len", at_least=8, default=256, help="Prompt + answer.")
@count_option("--schema-attempts", at_least=1, default=2, help="Attempts per schema example.")
@click.option("--fallback-to-base", is_flag=True, help="After the last failed schema attempt, answer with the base.")
@click.option("--evaluator", "evaluators", multiple=True, metavar="MODULE:ATTR", help="An external evaluator.")
@click.option("--evaluator-timeout", type=click.FloatRange(min=0.001), default=30.0, show_default=True, help="Seconds.")
@click.option("--dataset-version", default=None, help="Version to record (default: a hash of the file).")
@count_option("--chunk-size", at_least=1, default=64, help="Examples per chunk.")
@count_option(
    "--batch-size",
    at_least=1,
    default=8,
    help="Prompts per padded generate (transformers engine; vLLM batches a whole chunk).",
)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch threads (transformers engine).")
@click.option("--journal", type=click.Path(dir_okay=False), default=None, help="Resume journal file.")
@click.option("--run-id", default=None, help="Name of this run (default: a hash of its configuration).")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: when stderr is a terminal).")
def replay(**options: Any) -> None:
    """Replay a golden set through the base model and each adapter, evaluate every answer, record paired spans.

    Run the same command again to resume an interrupted replay: finished examples are not repeated.

    \b
    Example:
        loratrace replay --dataset docs/examples/golden.jsonl --base ./tiny-llama \\
            --adapter a1=./adapters/a1 --adapter a2=./adapters/a2 --engine vllm --store ./traces
    """
    from loratrace.errors import ConfigurationError, LoratraceError
    from loratrace.evaluators.protocol import load_evaluator

    try:
        from loratrace.replay import run_replay
        from loratrace.replay.report import format_summary, parse_adapters
    except ImportError as exc:  # the replay extra is not installed
        msg = f"loratrace replay needs the replay extra ({exc.name} is missing): pip install 'loratrace[replay]'"
        raise click.ClickException(msg) from exc

    if (options["store"] is None) == (options["endpoint"] is None):
        raise click.UsageError("give --store DIR or --endpoint URL (exactly one): where the replay's spans go")
    try:
        adapters = parse_adapters(options.pop("adapters"))
        evaluators = [load_evaluator(reference) for reference in options.pop("evaluators")]
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from exc
    dataset = options.pop("dataset")
    try:
        summary = run_replay(
            dataset,
            adapters=adapters,
            evaluators=evaluators,
            evaluator_timeout_s=options.pop("evaluator_timeout"),
            on_problem=lambda problem: click.echo(f"{dataset}:{problem.line}: skipped: {problem.message}", err=True),
            **options,
        )
    except OSError as exc:
        raise click.BadParameter(f"cannot read {dataset!r} ({exc.strerror or exc})", param_hint="--dataset") from exc
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from exc
    except LoratraceError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_summary(summary), nl=False)


COMMANDS = (replay,)
