"""Shared pieces of the vLLM tests: the engine environment (the OTLP receiver fixture is in tests/conftest.py)."""

from __future__ import annotations

import pytest

# What the notes found to work on these CPU machines (docs: ../shared/notes/real-models-on-cpu.md).
VLLM_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "HF_HUB_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


@pytest.fixture(scope="session")
def vllm_env() -> dict[str, str]:
    return dict(VLLM_ENV)
