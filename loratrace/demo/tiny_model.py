"""Build a tiny Llama, its tokenizer and LoRA adapters on local disk, with no download.

Both transformers + PEFT and vLLM's CPU build load what this writes (hidden size 128 with 4 heads gives head
size 32, the smallest vLLM's CPU attention supports). Fixed seeds make every build byte-identical, so adapter
ids are stable across runs. Building base + two adapters takes a few seconds; :func:`ensure_tiny_models` skips the
work when a complete build is already in the folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

BASE_MODEL_NAME = "tiny-llama"
_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Invoices are due within thirty days of the billing date.",
    "Please reset my password and confirm my account email.",
    "Translate the following sentence into French: good morning.",
    "Return a JSON object with the fields name, plan and seats.",
    "Our enterprise customers need a refund policy summary.",
    "What is the capital of France? Paris is the capital.",
    "0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz",
]
_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|> {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
_COMPLETE_MARKER = ".loratrace-complete"


@dataclass(frozen=True)
class AdapterSpec:
    name: str
    rank: int
    alpha: float
    target_modules: tuple[str, ...]
    seed: int


DEFAULT_ADAPTERS = (
    AdapterSpec("a1", rank=4, alpha=8.0, target_modules=("q_proj", "v_proj"), seed=1),
    AdapterSpec("a2", rank=8, alpha=16.0, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"), seed=2),
)


@dataclass(frozen=True)
class TinyModels:
    """Where the base model and each adapter were written."""

    base: Path
    adapters: dict[str, Path]


def build_tokenizer(directory: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    alphabet = [chr(c) for c in range(32, 127)]
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        padding_side="left",
    )
    fast.chat_template = _CHAT_TEMPLATE
    fast.save_pretrained(directory)


def build_base_model(directory: Path, *, seed: int = 0) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    build_tokenizer(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(directory, safe_serialization=True)
    with open(directory / "config.json", encoding="utf-8") as handle:
        saved = json.load(handle)
    saved["_name_or_path"] = BASE_MODEL_NAME
    with open(directory / "config.json", "w", encoding="utf-8") as handle:
        json.dump(saved, handle, indent=2)


def build_adapter(base: Path, directory: Path, spec: AdapterSpec) -> None:
    """Write a LoRA adapter whose B matrices are random (PEFT starts them at zero, a no-op adapter)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,  # type: ignore[arg-type]  # PEFT annotates int; it only divides by r, so a float works
        target_modules=list(spec.target_modules),
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(spec.seed)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name or "lora_A" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    peft_model.save_pretrained(str(directory))
    config_path = directory / "adapter_config.json"
    with open(config_path, encoding="utf-8") as handle:
        saved = json.load(handle)
    saved["base_model_name_or_path"] = BASE_MODEL_NAME
    saved["target_modules"] = sorted(saved["target_modules"])  # PEFT writes a set's order, which varies by run
    with open(config_path, "w", encoding="utf-8") as handle:
        json.dump(saved, handle, indent=2, sort_keys=True)


def ensure_tiny_models(
    root: str | os.PathLike[str], adapters: tuple[AdapterSpec, ...] = DEFAULT_ADAPTERS
) -> TinyModels:
    """Build (once) the tiny base model and ``adapters`` under ``root``; return their paths."""
    root = Path(root)
    base = root / BASE_MODEL_NAME
    adapter_dirs = {spec.name: root / "adapters" / spec.name for spec in adapters}
    marker = root / _COMPLETE_MARKER
    wanted = json.dumps([spec.__dict__ for spec in adapters], default=list, sort_keys=True)
    if marker.exists() and marker.read_text(encoding="utf-8") == wanted:
        return TinyModels(base=base, adapters=adapter_dirs)
    base.mkdir(parents=True, exist_ok=True)
    build_base_model(base)
    for spec in adapters:
        adapter_dirs[spec.name].mkdir(parents=True, exist_ok=True)
        build_adapter(base, adapter_dirs[spec.name], spec)
    marker.write_text(wanted, encoding="utf-8")
    return TinyModels(base=base, adapters=adapter_dirs)
