"""docs/vllm.md's server command runs as written on this CPU machine (it failed: vLLM's CPU build reserved most
of the memory without ``VLLM_CPU_KVCACHE_SPACE``), through ``loratrace vllm serve``, and its spans arrive."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from loratrace import semconv
from loratrace.demo.tiny_model import TinyModels
from tests.support.ports import free_port

pytestmark = pytest.mark.vllm

DOCS = Path(__file__).resolve().parents[2] / "docs" / "vllm.md"
STARTUP_DEADLINE_S = 240.0


def documented_command() -> str:
    """The ``loratrace vllm serve`` command of docs/vllm.md's first code block, continuation lines joined."""
    block = DOCS.read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    start = block.index("VLLM_CPU_KVCACHE_SPACE=")
    return block[start:].replace("\\\n", " ").strip()


def test_the_documented_server_command_serves_and_traces(
    tmp_path: Path, tiny_models: TinyModels, otlp_receiver: Any
) -> None:
    command = documented_command()
    assert "loratrace vllm serve" in command
    # the folder the command names is where `loratrace demo` builds the model: here, the test's built copy
    (tmp_path / "loratrace-demo").mkdir()
    (tmp_path / "loratrace-demo" / "models").symlink_to(tiny_models.base.parent)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("VLLM_", "OTEL_"))}
    venv_bin = str(Path(sys.executable).parent)
    env.update(PATH=f"{venv_bin}:{env.get('PATH', '')}", HF_HUB_OFFLINE="1", VLLM_NO_USAGE_STATS="1")
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="100")
    port = free_port()  # the only change: a free port instead of vLLM's 8000, which another test may hold
    shell = f"{command} --host 127.0.0.1 --port {port}"
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["bash", "-c", shell], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while True:
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=2) as response:
                    models = json.loads(response.read())
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the documented command did not serve; log tail:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.25)
        assert {model["id"] for model in models["data"]} == {"tiny-llama", "a1", "a2"}
        request = urllib.request.Request(
            url + "/v1/completions",
            data=json.dumps({"model": "a2", "prompt": "Invoices are due", "max_tokens": 4}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            completion = json.loads(response.read())
        (span,) = otlp_receiver.wait_for_spans(
            lambda s: str(s.attributes.get(semconv.GEN_AI_RESPONSE_ID, "")).startswith(completion["id"]), timeout=60
        )
        assert span.name == "text_completion a2"
        assert span.attributes[semconv.ADAPTER_NAME] == "a2"
        assert span.resource["service.name"] == "vllm-server"
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the command's process group (bash, the server and vLLM's engine process), then SIGKILL."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sent)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=60)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait(timeout=60)


def test_vllm_serve_help_says_what_loratrace_adds() -> None:
    loratrace = Path(sys.executable).with_name("loratrace")
    result = subprocess.run([str(loratrace), "vllm", "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "vllm serve" in result.stdout
    assert "loratrace adds" in result.stdout
    assert "VLLM_CPU_KVCACHE_SPACE" in result.stdout
    assert shlex.split(documented_command())[1:4] == ["loratrace", "vllm", "serve"]
