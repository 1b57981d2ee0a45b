"""Run vLLM's OpenAI-compatible server with loratrace on: ``loratrace vllm serve MODEL [vLLM's arguments]``.

\b
    VLLM_CPU_KVCACHE_SPACE=1 loratrace vllm serve ./base --enable-lora \\
        --lora-modules a1=./adapters/a1 a2=./adapters/a2

The arguments are those of ``vllm serve`` (vLLM's own entry point; ``python -m
vllm.entrypoints.openai.api_server`` is deprecated), passed unchanged to its ``serve`` subcommand. This module
runs that subcommand itself because the ``vllm`` console script fails under the ``vllm-cpu`` distribution (it
asks for the version of a distribution named ``vllm``). loratrace is enabled first (exporter from the standard
``OTEL_EXPORTER_OTLP_*`` variables, service name from ``OTEL_SERVICE_NAME`` or ``vllm-server``), so the static
``--lora-modules`` loads at start-up are recorded too; on exit the remaining spans are flushed.
``python -m loratrace.instrumentation.vllm.serve`` does the same.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

DEFAULT_SERVICE_NAME = "vllm-server"


def run_vllm_serve(arguments: Sequence[str]) -> None:
    """``vllm serve *arguments`` in this process, as vLLM's CLI runs it (its parser, validation and logging)."""
    from vllm.entrypoints.cli import serve as serve_cli
    from vllm.entrypoints.serve.utils.api_utils import cli_env_setup
    from vllm.logger import configure_logging_from_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    cli_env_setup()
    parser = FlexibleArgumentParser(prog="loratrace vllm", description="vLLM's serve command, with loratrace on")
    subparsers = parser.add_subparsers(required=True, dest="subparser")
    (command,) = serve_cli.cmd_init()
    command.subparser_init(subparsers).set_defaults(dispatch_function=command.cmd)
    args = parser.parse_args(["serve", *arguments])
    configure_logging_from_args(args)
    command.validate(args)
    args.dispatch_function(args)


def main(argv: Sequence[str] | None = None) -> None:
    import loratrace

    arguments = list(sys.argv[1:] if argv is None else argv)
    service_name = None if os.environ.get("OTEL_SERVICE_NAME") else DEFAULT_SERVICE_NAME
    loratrace.instrument(service_name=service_name, libraries=["vllm"])
    try:
        run_vllm_serve(arguments)
    finally:
        loratrace.uninstrument()


if __name__ == "__main__":
    main()
