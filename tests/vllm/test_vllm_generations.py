"""What counts as a generation in the store: vLLM's batch parent and adapter loads (a failed one included) are
not generations; a call that fails on a missing adapter path names the adapter. A real vLLM engine in its own
process writing a real store (after a failed request the in-process engine hangs on its next call, so it gets a
process of its own)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loratrace.demo.tiny_model import TinyModels
from loratrace.store import query

pytestmark = pytest.mark.vllm

APP = """
import os, sys
if __name__ == "__main__":
    import loratrace
    store, base, a1 = sys.argv[1:4]
    loratrace.instrument(store=store, libraries=["vllm"], service_name="generations-test")
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    llm = LLM(model=base, served_model_name="tiny-llama", dtype="float32", enforce_eager=True, enable_lora=True,
              max_lora_rank=8, max_loras=2, max_model_len=256)
    greedy = SamplingParams(max_tokens=4, temperature=0.0)
    llm.generate(["Hello there", "Invoices are due"], greedy, lora_request=[None, LoRARequest("a1", 1, a1)],
                 use_tqdm=False)
    try:
        llm.llm_engine.add_lora(LoRARequest("never-loaded", 5, "/nonexistent/load"))
    except Exception as exc:
        print("load failed:", type(exc).__name__, flush=True)
    try:
        llm.generate(["Hello"], greedy, lora_request=LoRARequest("typo", 7, "/nonexistent/adapter"), use_tqdm=False)
    except Exception as exc:
        print("generate failed:", type(exc).__name__, flush=True)
    print("flushed:", loratrace.force_flush(timeout_millis=60_000), flush=True)
    os._exit(0)  # the engine hangs in its shutdown after the failed request
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, tiny_models: TinyModels, vllm_env: dict[str, str]) -> Path:
    folder = tmp_path_factory.mktemp("generations")
    app = folder / "app.py"
    app.write_text(APP)
    env = {**os.environ, **vllm_env, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    result = subprocess.run(
        [sys.executable, str(app), str(folder / "store"), str(tiny_models.base), str(tiny_models.adapters["a1"])],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "generate failed: LoRAAdapterNotFoundError" in result.stdout, result.stdout
    assert "flushed: True" in result.stdout, result.stdout
    return folder / "store"


def test_the_batch_parent_and_adapter_loads_are_not_generations(store: Path) -> None:
    spans = query(store, "SELECT name FROM spans ORDER BY name")["name"].to_list()
    assert "vllm.LLM.generate" in spans  # the batch parents exist ...
    assert any(name.startswith("loratrace.adapter.load") for name in spans)
    generations = query(
        store, "SELECT name, coalesce(adapter_name, '(base)') AS adapter FROM generations ORDER BY adapter"
    ).rows()
    assert generations == [("text_completion tiny-llama", "(base)"), ("text_completion a1", "a1")]  # ... are not


def test_the_readme_headline_query_lists_only_adapters_that_served(store: Path) -> None:
    """The README's query over ``spans`` listed the failed load ``never-loaded`` and the failed call's ``typo``."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    headline = (
        "SELECT adapter_name, adapter_id, cohort, count(*) AS generations FROM generations GROUP BY ALL ORDER BY ALL"
    )
    assert headline in readme
    served = sorted(str(row[0]) for row in query(store, headline).rows())
    assert served == ["None", "a1"]


def test_a_call_failing_on_a_missing_adapter_path_names_the_adapter(store: Path) -> None:
    rows = query(
        store,
        "SELECT adapter_name, adapter_source, error_type, status_code FROM spans "
        "WHERE name = 'vllm.LLM.generate' AND status_code = 'ERROR'",
    ).rows()
    assert rows == [("typo", "/nonexistent/adapter", "LoRAAdapterNotFoundError", "ERROR")]
