"""The engines a replay runs on: Hugging Face transformers + PEFT, and vLLM's offline ``LLM``.

Both are driven the same way: :meth:`Engine.generate` answers a list of (model, prompt) requests, request ``k``
served in scope ``indices[k]`` of a :class:`loratrace.RequestScopes`, so loratrace's own instrumentation of the
engine makes each request's generation span, in that request's release context.

- vLLM: one ``LLM.generate`` call for the whole list, one ``LoRARequest`` per row (``None`` for the base model).
- transformers: requests grouped per model (the base, each adapter), in padded batches of ``batch_size`` prompts of
  similar length (left padding, the attention mask, the end-of-sequence token as pad token when the tokenizer has
  none), one ``generate`` per batch on a ``PeftModel`` holding every adapter (``set_adapter`` /
  ``disable_adapter()`` for the base). The instrumentation makes one generation span per row of a batch, served in
  the row's request scope (``RequestScopes.serving``), so every example still has its own span per model. Greedy
  answers do not depend on the batch size; sampled ones (``temperature`` > 0) draw from one generator per batch,
  seeded with its first request's seed, so they do.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypedDict

from loratrace.errors import ConfigurationError
from loratrace.runtime.request_scopes import RequestScopes

EngineName = Literal["transformers", "vllm"]
DEFAULT_BATCH_SIZE = 8
"""Prompts per padded ``generate`` of the transformers engine."""
ENGINES: tuple[EngineName, ...] = ("transformers", "vllm")
_VLLM_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts
_VLLM_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # the engine in this process: ~3 s to start instead of ~18 s
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "HF_HUB_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
}


@dataclass(frozen=True, kw_only=True)  # by name only: three of its four fields are ints a position would swap
class GenerationSettings:
    """The same for every model of a replay, so base and adapter answers are comparable.

    ``seed`` seeds each example's sampling (with ``temperature`` > 0; 0 is greedy); ``max_model_len`` bounds a
    prompt and its answer together. Raises ``ConfigurationError`` for a value no engine can run with.
    """

    max_new_tokens: int = 64
    temperature: float = 0.0
    seed: int = 0
    max_model_len: int = 256

    def __post_init__(self) -> None:
        for name, count in (("max_new_tokens", self.max_new_tokens), ("max_model_len", self.max_model_len)):
            if count < 1:
                msg = f"{name} (--{name.replace('_', '-')}) must be at least 1, got {count!r}"
                raise ConfigurationError(msg)
        if self.temperature < 0:
            msg = f"temperature (--temperature) must be 0 or more, got {self.temperature!r}"
            raise ConfigurationError(msg)


class GenerationChanges(TypedDict, total=False):
    """:class:`GenerationSettings` fields given by name to a function that applies them
    (``run_replay(max_new_tokens=8)``); the same names and types (a test keeps them in step)."""

    max_new_tokens: int
    temperature: float
    seed: int
    max_model_len: int


@dataclass(frozen=True)
class Request:
    adapter: str | None
    """The adapter's name, None for the base model."""
    prompt: str
    seed: int


class Engine(Protocol):
    library: EngineName
    """The library loratrace instruments for this engine."""
    tokenizer: Any

    def generate(
        self, requests: Sequence[Request], scopes: RequestScopes, indices: Sequence[int], settings: GenerationSettings
    ) -> list[str]: ...

    def prompt_tokens(self, prompt: str) -> int: ...

    def close(self) -> None: ...


def adapter_rank(path: str | os.PathLike[str]) -> int:
    config = Path(path) / "adapter_config.json"
    try:
        with open(config, encoding="utf-8") as handle:
            return int(json.load(handle).get("r", 8))
    except (OSError, ValueError) as exc:
        msg = f"--adapter path {os.fspath(path)!r} has no readable adapter_config.json ({exc})"
        raise ConfigurationError(msg) from exc


def base_model_name(base: str | os.PathLike[str]) -> str:
    """The name the base model is known by: its config's ``_name_or_path`` when that is a name, else the folder's."""
    try:
        with open(Path(base) / "config.json", encoding="utf-8") as handle:
            name = json.load(handle).get("_name_or_path")
    except (OSError, ValueError):
        name = None
    if isinstance(name, str) and name and not os.path.isabs(name):
        return name
    return Path(base).name or os.fspath(base)


def vllm_engine_arguments(base: str, adapters: Mapping[str, str], *, max_model_len: int) -> dict[str, Any]:
    """The ``LLM(...)`` arguments a replay uses (also what ``bench/bench_replay_vllm.py`` gives the bare engine)."""
    rank = max((adapter_rank(path) for path in adapters.values()), default=8)
    return {
        "model": base,
        "served_model_name": base_model_name(base),
        "dtype": "float32",
        "enforce_eager": True,
        "enable_lora": bool(adapters),
        "max_lora_rank": next((r for r in _VLLM_RANKS if r >= rank), rank),
        # one spare slot: with max_loras equal to the adapter count, vLLM's CPU build gives a base-model request
        # batched with adapter requests the last adapter's output
        "max_loras": len(adapters) + 1,
        "max_model_len": max_model_len,
        "disable_log_stats": False,  # per-request queue time and time to first token on the spans
    }


class VLLMEngine:
    library: EngineName = "vllm"

    def __init__(self, base: str, adapters: Mapping[str, str], *, max_model_len: int = 256) -> None:
        for key, value in _VLLM_ENV.items():
            os.environ.setdefault(key, value)
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest

        self._sampling = SamplingParams
        self.llm = LLM(**vllm_engine_arguments(base, adapters, max_model_len=max_model_len))
        self.tokenizer = self.llm.get_tokenizer()
        self._loras = {
            name: LoRARequest(name, index + 1, str(path)) for index, (name, path) in enumerate(sorted(adapters.items()))
        }
        self._greedy: dict[int, Any] = {}

    def sampling_params(self, settings: GenerationSettings, seed: int) -> Any:
        """The request's ``SamplingParams``; greedy ones are one object per length, shared by a whole batch (the
        instrumentation then reads their attributes once)."""
        if settings.temperature == 0:
            params = self._greedy.get(settings.max_new_tokens)
            if params is None:
                params = self._greedy[settings.max_new_tokens] = self._sampling(
                    max_tokens=settings.max_new_tokens, temperature=0.0
                )
            return params
        return self._sampling(max_tokens=settings.max_new_tokens, temperature=settings.temperature, seed=seed)

    def lora(self, adapter: str | None) -> Any:
        return self._loras[adapter] if adapter else None

    def prompt_tokens(self, prompt: str) -> int:
        return len(self.tokenizer(prompt)["input_ids"])

    def generate(
        self, requests: Sequence[Request], scopes: RequestScopes, indices: Sequence[int], settings: GenerationSettings
    ) -> list[str]:
        if not requests:
            return []
        if settings.temperature == 0:
            params: Any = self.sampling_params(settings, 0)
        else:
            params = [self.sampling_params(settings, request.seed) for request in requests]
        with scopes.serving(indices):
            outputs = self.llm.generate(
                [request.prompt for request in requests],
                params,
                lora_request=[self.lora(request.adapter) for request in requests],
                use_tqdm=False,
            )
        return [output.outputs[0].text if output.outputs else "" for output in outputs]

    def close(self) -> None:
        self.llm = None  # type: ignore[assignment]  # frees the engine's memory; a closed engine is not called again


class TransformersEngine:
    library: EngineName = "transformers"

    def __init__(
        self,
        base: str,
        adapters: Mapping[str, str],
        *,
        threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads is not None:
            # torch's intra-op threads for this process. A small model on a busy machine runs far faster on one:
            # the tiny demo model took 2.2 s per 6-token generate with 2 threads under load, 0.04 s with 1.
            torch.set_num_threads(threads)
        self._torch = torch
        self.batch_size = batch_size
        # left padding: a decoder-only model continues each row right after its own prompt
        self.tokenizer = AutoTokenizer.from_pretrained(base, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)  # or the PeftModel over it
        self._names = sorted(adapters)
        if adapters:
            from peft import PeftModel

            first, *rest = self._names
            model = PeftModel.from_pretrained(model, adapters[first], adapter_name=first)
            for name in rest:
                model.load_adapter(adapters[name], adapter_name=name)
        self.model = model.eval()

    def prompt_tokens(self, prompt: str) -> int:
        return len(self.tokenizer(prompt)["input_ids"])

    def _batch(self, requests: Sequence[Request], settings: GenerationSettings) -> list[str]:
        """One padded ``generate`` over requests for the same model."""
        torch = self._torch
        inputs = self.tokenizer([request.prompt for request in requests], return_tensors="pt", padding=True)
        sampling: dict[str, Any] = {"do_sample": False}
        if settings.temperature > 0:
            torch.manual_seed(requests[0].seed)
            sampling = {"do_sample": True, "temperature": settings.temperature}
        with torch.no_grad():
            output = self.model.generate(
                **inputs,
                max_new_tokens=settings.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                **sampling,
            )
        prompt_width = inputs["input_ids"].shape[1]
        return [str(text) for text in self.tokenizer.batch_decode(output[:, prompt_width:], skip_special_tokens=True)]

    def _served_by(self, adapter: str | None) -> contextlib.AbstractContextManager[Any]:
        """The model state that serves ``adapter`` (None: the base model) for the calls inside."""
        if adapter is None:
            return self.model.disable_adapter() if self._names else contextlib.nullcontext()
        self.model.set_adapter(adapter)
        return contextlib.nullcontext()

    def generate(
        self, requests: Sequence[Request], scopes: RequestScopes, indices: Sequence[int], settings: GenerationSettings
    ) -> list[str]:
        texts = [""] * len(requests)
        for adapter, positions in batches_per_model(requests, self.batch_size):
            with self._served_by(adapter), scopes.serving([indices[position] for position in positions]):
                answers = self._batch([requests[position] for position in positions], settings)
            for position, text in zip(positions, answers, strict=True):
                texts[position] = text
        return texts

    def close(self) -> None:
        self.model = None


def batches_per_model(requests: Sequence[Request], batch_size: int) -> list[tuple[str | None, list[int]]]:
    """(adapter, positions in ``requests``) per batch: one model per batch, the models in first-seen order, each
    model's prompts by length (less padding), ``batch_size`` at most per batch."""
    per_model: dict[str | None, list[int]] = {}
    for position, request in enumerate(requests):
        per_model.setdefault(request.adapter, []).append(position)
    batches = []
    for adapter, positions in per_model.items():
        positions.sort(key=lambda position: len(requests[position].prompt))
        batches += [(adapter, positions[start : start + batch_size]) for start in range(0, len(positions), batch_size)]
    return batches


def open_engine(
    name: EngineName,
    base: str,
    adapters: Mapping[str, str],
    *,
    max_model_len: int = 256,
    threads: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> TransformersEngine | VLLMEngine:
    if name == "vllm":
        return VLLMEngine(base, adapters, max_model_len=max_model_len)
    if name == "transformers":
        return TransformersEngine(base, adapters, threads=threads, batch_size=batch_size)
    msg = f"--engine must be one of {', '.join(ENGINES)}, got {name!r}"
    raise ConfigurationError(msg)
