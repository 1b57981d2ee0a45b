"""Shared fixtures: the tiny Llama and its LoRA adapters, built locally once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from loratrace.demo.tiny_model import TinyModels, ensure_tiny_models
from tests.support.otlp_receiver import OtlpReceiver, serve_otlp_receiver

# Nothing may be downloaded at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_models() -> TinyModels:
    """Base ``tiny-llama`` and adapters ``a1`` (r=4, alpha=8, q/v) and ``a2`` (r=8, alpha=16, q/k/v/o).

    Built under ``.fixtures/`` in the repository (ignored by git) and reused while their specification is unchanged;
    set ``LORATRACE_FIXTURES`` to build elsewhere.
    """
    root = Path(os.environ.get("LORATRACE_FIXTURES", REPO_ROOT / ".fixtures"))
    return ensure_tiny_models(root)


@pytest.fixture(scope="module")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """A real OTLP/HTTP receiver on a free loopback port (``.endpoint``), decoding what exporters send."""
    yield from serve_otlp_receiver()
