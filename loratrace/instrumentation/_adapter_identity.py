"""Who an adapter is: its config fields and a content hash that survives renames and processes.

The id is ``sha256:<hex>`` over a canonical subset of the adapter config and every weight tensor (name, dtype,
shape, raw little-endian bytes), in name order. The same bytes give the same id whether they are read from an
``adapter_model.safetensors`` file (vLLM) or from a PeftModel in memory (transformers), so one adapter is one id
across serving stacks, and the same name with new weights is a new id. Hashing reads every weight once, so callers
cache the result per adapter; nothing here runs per generation call.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from loratrace import semconv
from loratrace._values import number_or_none

_HASH_PREFIX = b"loratrace-adapter-v1\x00"
# The config fields that change what the adapter computes. Bookkeeping fields (inference_mode, peft_version,
# base_model_name_or_path, revision, task_type) are left out so a reload or a re-save keeps the id.
_IDENTITY_CONFIG_KEYS = (
    "peft_type",
    "r",
    "lora_alpha",
    "target_modules",
    "use_dora",
    "use_rslora",
    "bias",
    "fan_in_fan_out",
    "modules_to_save",
    "layers_to_transform",
    "layers_pattern",
    "rank_pattern",
    "alpha_pattern",
)

TORCH_TO_SAFETENSORS_DTYPE = {
    "torch.float64": "F64",
    "torch.float32": "F32",
    "torch.float16": "F16",
    "torch.bfloat16": "BF16",
    "torch.int64": "I64",
    "torch.int32": "I32",
    "torch.int16": "I16",
    "torch.int8": "I8",
    "torch.uint8": "U8",
    "torch.bool": "BOOL",
    "torch.float8_e4m3fn": "F8_E4M3",
    "torch.float8_e5m2": "F8_E5M2",
}


@dataclass(frozen=True)
class AdapterIdentity:
    """Everything loratrace reports about one adapter; built once per adapter and cached by the caller."""

    name: str
    id: str | None = None
    type: str | None = None
    rank: int | None = None
    alpha: float | None = None
    target_modules: tuple[str, ...] = ()
    source: str | None = None
    base_model: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def attributes(self) -> dict[str, Any]:
        """Span attributes under the ``loratrace.adapter.*`` names (the merge state is per call, not here)."""
        attributes: dict[str, Any] = {semconv.ADAPTER_NAME: self.name}
        if self.id is not None:
            attributes[semconv.ADAPTER_ID] = self.id
        if self.type is not None:
            attributes[semconv.ADAPTER_TYPE] = self.type
        if self.rank is not None:
            attributes[semconv.ADAPTER_RANK] = self.rank
        if self.alpha is not None:
            attributes[semconv.ADAPTER_ALPHA] = float(self.alpha)
        if self.target_modules:
            attributes[semconv.ADAPTER_TARGET_MODULES] = list(self.target_modules)
        if self.source is not None:
            attributes[semconv.ADAPTER_SOURCE] = self.source
        attributes.update(self.extra)
        return attributes


def adapter_type(config: Mapping[str, Any]) -> str:
    """``dora`` / ``rslora`` for LoRA variants, else PEFT's type in lower case (``lora``, ``loha``, ...)."""
    peft_type = str(config.get("peft_type") or "lora")
    peft_type = peft_type.rsplit(".", 1)[-1].lower()  # "PeftType.LORA" when read from an enum's str()
    if peft_type == "lora":
        if config.get("use_dora"):
            return "dora"
        if config.get("use_rslora"):
            return "rslora"
    return peft_type


def target_modules(config: Mapping[str, Any]) -> tuple[str, ...]:
    targets = config.get("target_modules")
    if targets is None:
        return ()
    if isinstance(targets, str):  # a regular expression in PEFT
        return (targets,)
    return tuple(sorted(str(t) for t in targets))


def _canonical(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple | list):
        items = [_canonical(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if hasattr(value, "value") and not isinstance(value, str | int | float | bool):  # enums
        return _canonical(value.value)
    return value


def identity_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical config subset the id covers (defaults filled so absent and default hash the same)."""
    subset = {key: _canonical(config.get(key)) for key in _IDENTITY_CONFIG_KEYS}
    subset["peft_type"] = adapter_type({"peft_type": config.get("peft_type")})
    subset["target_modules"] = list(target_modules(config))
    subset["use_dora"] = bool(subset["use_dora"])
    subset["use_rslora"] = bool(subset["use_rslora"])
    subset["fan_in_fan_out"] = bool(subset["fan_in_fan_out"])
    for key in ("rank_pattern", "alpha_pattern"):
        subset[key] = subset[key] or {}
    return subset


def content_id(config: Mapping[str, Any], tensors: Iterable[tuple[str, str, list[int], bytes | memoryview]]) -> str:
    """Hash the identity config and ``(name, dtype, shape, raw bytes)`` tensors, which must come in name order."""
    digest = hashlib.sha256(_HASH_PREFIX)
    digest.update(json.dumps(identity_config(config), sort_keys=True, separators=(",", ":")).encode())
    for name, dtype, shape, data in tensors:
        digest.update(b"\x00" + name.encode() + b"\x00" + dtype.encode() + b"\x00")
        digest.update(json.dumps(list(shape)).encode())
        digest.update(struct.pack("<Q", len(data)))
        digest.update(data)
    return f"sha256:{digest.hexdigest()}"


def iter_safetensors(path: Path) -> Iterator[tuple[str, str, list[int], bytes]]:
    """Tensors of a ``.safetensors`` file in name order, as raw bytes, without loading a framework."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size < 8:
            msg = f"{path} is not a safetensors file: {size} bytes"
            raise ValueError(msg)
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            (header_length,) = struct.unpack("<Q", mapped[:8])
            header = json.loads(bytes(mapped[8 : 8 + header_length]))
            base = 8 + header_length
            for name in sorted(k for k in header if k != "__metadata__"):
                entry = header[name]
                start, end = entry["data_offsets"]
                yield name, entry["dtype"], list(entry["shape"]), mapped[base + start : base + end]


def iter_torch_state_dict(state_dict: Mapping[str, Any]) -> Iterator[tuple[str, str, list[int], bytes]]:
    """Tensors of a torch state dict in name order, as the bytes safetensors would store."""
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        dtype = TORCH_TO_SAFETENSORS_DTYPE.get(str(tensor.dtype), str(tensor.dtype))
        raw = tensor.reshape(-1).view(_torch_uint8()).numpy().tobytes()
        yield name, dtype, list(tensor.shape), raw


def _torch_uint8() -> Any:
    import torch

    return torch.uint8


def read_adapter_config(directory: Path) -> dict[str, Any]:
    config_path = directory / "adapter_config.json"
    with open(config_path, encoding="utf-8") as handle:
        return json.load(handle)


def identity_from_directory(directory: str | os.PathLike[str], name: str) -> AdapterIdentity:
    """Read a saved PEFT adapter folder (``adapter_config.json`` + weights) into an :class:`AdapterIdentity`.

    Raises ``FileNotFoundError`` / ``ValueError`` for a folder that holds no adapter; callers fail open.
    """
    path = Path(directory)
    config = read_adapter_config(path)
    weights = path / "adapter_model.safetensors"
    if weights.exists():
        adapter_id = content_id(config, iter_safetensors(weights))
    else:
        legacy = path / "adapter_model.bin"
        if not legacy.exists():
            msg = f"no adapter_model.safetensors or adapter_model.bin in {path}"
            raise FileNotFoundError(msg)
        import torch

        state_dict = torch.load(legacy, map_location="cpu", weights_only=True)
        adapter_id = content_id(config, iter_torch_state_dict(state_dict))
    return AdapterIdentity(
        name=name,
        id=adapter_id,
        type=adapter_type(config),
        rank=number_or_none(config.get("r"), int),
        alpha=number_or_none(config.get("lora_alpha"), float),
        target_modules=target_modules(config),
        source=str(directory),
        base_model=config.get("base_model_name_or_path"),
    )
