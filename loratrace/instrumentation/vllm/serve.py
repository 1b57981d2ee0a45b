"""Run vLLM's OpenAI-compatible server with loratrace on: ``python -m loratrace.instrumentation.vllm.serve``.

\b
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \\
    python -m loratrace.instrumentation.vllm.serve --model ./base --enable-lora \\
        --lora-modules a1=./adapters/a1 a2=./adapters/a2

Every argument goes to ``python -m vllm.entrypoints.openai.api_server`` unchanged. loratrace is enabled first
(exporter from the standard ``OTEL_EXPORTER_OTLP_*`` variables, service name from ``OTEL_SERVICE_NAME`` or
``vllm-server``), so the static ``--lora-modules`` loads at start-up are recorded too; on exit the remaining
spans are flushed.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Sequence

SERVER_MODULE = "vllm.entrypoints.openai.api_server"
DEFAULT_SERVICE_NAME = "vllm-server"


def main(argv: Sequence[str] | None = None) -> None:
    import loratrace

    arguments = list(sys.argv[1:] if argv is None else argv)
    service_name = None if os.environ.get("OTEL_SERVICE_NAME") else DEFAULT_SERVICE_NAME
    loratrace.instrument(service_name=service_name, libraries=["vllm"])
    sys.argv = [SERVER_MODULE, *arguments]
    try:
        runpy.run_module(SERVER_MODULE, run_name="__main__", alter_sys=True)
    finally:
        loratrace.uninstrument()


if __name__ == "__main__":
    main()
