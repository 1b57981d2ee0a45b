"""Span attributes every instrumentor reads the same way: sampling parameters and quantization."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loratrace import semconv

# (the parameter's name in transformers and vLLM alike, span attribute)
SAMPLING_PARAMETERS = (
    ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", semconv.GEN_AI_REQUEST_TOP_P),
    ("top_k", semconv.GEN_AI_REQUEST_TOP_K),
)
# where quantization configs keep their bit width, by library (bitsandbytes and fp8 say it otherwise)
_BITS_KEYS = ("bits", "weight_bits", "nbits", "w_bit")


def quantization_attributes(method: Any, quantization: Mapping[str, Any]) -> dict[str, Any]:
    """``loratrace.model.quantization.method`` / ``.bits`` from a method name (or enum) and a quantization config
    in its dict form (``quantization_config`` of a Hugging Face config)."""
    method = getattr(method, "value", method)  # transformers' QuantizationMethod enum
    name = str(method).lower() if method else ""
    attributes: dict[str, Any] = {}
    if name:
        attributes[semconv.QUANTIZATION_METHOD] = name
    bits = _quantization_bits(name, quantization)
    if bits is not None:
        attributes[semconv.QUANTIZATION_BITS] = bits
    return attributes


def _quantization_bits(method: str, quantization: Mapping[str, Any]) -> int | None:
    if quantization.get("load_in_4bit"):
        return 4
    if quantization.get("load_in_8bit"):
        return 8
    for key in _BITS_KEYS:
        value = quantization.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    if "fp8" in method:
        return 8
    return None
