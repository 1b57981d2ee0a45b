"""What a model is, read once per model object: names, quantization, special tokens.

Nothing here changes between generate calls of one model, so it is computed at the first call and kept in a
``WeakKeyDictionary`` (the model stays collectable). Reading a config field per call would be cheap too, but
the local-path check behind the display name is a file-system call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loratrace import semconv
from loratrace.instrumentation._common_attributes import quantization_attributes as common_quantization_attributes
from loratrace.instrumentation._identity_cache import IdentityCache

_INFO: IdentityCache[ModelInfo] = IdentityCache()
_INFO_BY_ID = _INFO.by_id
_DEFAULT_MAX_NEW_TOKENS = 20  # transformers generates 20 new tokens when no length is configured


@dataclass(frozen=True, eq=False)  # hashed by identity: part of the span-attribute cache key
class ModelInfo:
    """Static facts about one transformers model (the model under a PeftModel for PEFT)."""

    name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    is_encoder_decoder: bool = False
    max_position_embeddings: int | None = None


def display_name(name_or_path: str | None, fallback: str) -> str:
    """The name a user recognises: a hub repo id as is, a local folder by its own name.

    transformers stores the path a model was loaded from in ``config._name_or_path`` (it replaces the value
    saved in ``config.json``); a full path is neither what users call the model nor a low-cardinality metric
    label.
    """
    if not name_or_path:
        return fallback
    text = str(name_or_path).rstrip("/\\")
    if os.path.isabs(text) or text.startswith(".") or os.path.isdir(text):
        return Path(text).name or fallback
    return text


def quantization_attributes(config: Any) -> dict[str, Any]:
    """``loratrace.model.quantization.*`` from ``config.quantization_config`` (a dict or a config object)."""
    quantization = getattr(config, "quantization_config", None)
    if quantization is None:
        return {}
    if not isinstance(quantization, dict):
        to_dict = getattr(quantization, "to_dict", None)
        quantization = to_dict() if to_dict is not None else vars(quantization)
    return common_quantization_attributes(quantization.get("quant_method"), quantization)


def model_info(model: Any) -> ModelInfo:
    """The cached :class:`ModelInfo` of a transformers model."""
    info = _INFO_BY_ID.get(id(model))
    if info is None:
        info = _read(model)
        _INFO[model] = info
    return info


def _read(model: Any) -> ModelInfo:
    config = getattr(model, "config", None)
    fallback = getattr(config, "model_type", None) or type(model).__name__
    name_or_path = getattr(config, "_name_or_path", None) or getattr(model, "name_or_path", None)
    name = display_name(name_or_path, fallback)
    attributes: dict[str, Any] = {semconv.BASE_MODEL_NAME: name}
    attributes.update(quantization_attributes(config))
    max_positions = getattr(config, "max_position_embeddings", None)
    return ModelInfo(
        name=name,
        attributes=attributes,
        is_encoder_decoder=bool(getattr(config, "is_encoder_decoder", False)),
        max_position_embeddings=max_positions if isinstance(max_positions, int) else None,
    )


def default_max_new_tokens() -> int:
    return _DEFAULT_MAX_NEW_TOKENS
