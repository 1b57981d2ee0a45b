"""Span attributes read from vLLM objects: sampling parameters, model config, request outputs.

Shared by the offline and the server wrappers so both describe a request the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from loratrace import semconv
from loratrace._values import is_number
from loratrace.instrumentation._common_attributes import SAMPLING_PARAMETERS, quantization_attributes

_SAMPLING_FIELDS = (
    ("max_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS),
    *SAMPLING_PARAMETERS,
    ("seed", semconv.GEN_AI_REQUEST_SEED),
    ("frequency_penalty", semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", semconv.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("n", semconv.GEN_AI_REQUEST_CHOICE_COUNT),
)

_NEUTRAL = {"top_p": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0}


def sampling_attributes(params: Any) -> dict[str, Any]:
    """``gen_ai.request.*`` and ``llm.invocation_parameters`` from a ``SamplingParams`` (None gives {})."""
    if params is None:
        return {}
    attributes: dict[str, Any] = {}
    invocation: dict[str, Any] = {}
    for field, name in _SAMPLING_FIELDS:
        value = getattr(params, field, None)
        if not is_number(value):
            continue
        # vLLM's "not asked for" values (top_k <= 0 is "disabled"): fewer attributes on every request span.
        if value == _NEUTRAL.get(field) or (field == "top_k" and value <= 0):
            continue
        attributes[name] = value
        invocation[field] = value
    stop = getattr(params, "stop", None)
    if stop:
        stops = [stop] if isinstance(stop, str) else [str(s) for s in stop]
        attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = stops
        invocation["stop"] = stops
    attributes[semconv.LLM_INVOCATION_PARAMETERS] = json.dumps(invocation, sort_keys=True)
    return attributes


def base_model_name(model_config: Any) -> str | None:
    """The name vLLM serves the base model under (``served_model_name``, else the model argument)."""
    if model_config is None:
        return None
    served = getattr(model_config, "served_model_name", None)
    if isinstance(served, list | tuple):
        served = served[0] if served else None
    return str(served or getattr(model_config, "model", "") or "") or None


def model_attributes(model_config: Any) -> dict[str, Any]:
    """Base model name and quantization, read once per engine."""
    attributes: dict[str, Any] = {}
    base = base_model_name(model_config)
    if base:
        attributes[semconv.BASE_MODEL_NAME] = base
    method = getattr(model_config, "quantization", None)
    if method:
        quantization = getattr(getattr(model_config, "hf_config", None), "quantization_config", None)
        attributes.update(quantization_attributes(method, quantization if isinstance(quantization, Mapping) else {}))
    return attributes


def finish_reasons(completions: Iterable[Any]) -> list[str]:
    return [str(c.finish_reason) for c in completions if getattr(c, "finish_reason", None)]


def output_token_count(completions: Iterable[Any]) -> int:
    """Generated tokens summed over the ``n`` completions of one request."""
    return sum(len(getattr(c, "token_ids", ()) or ()) for c in completions)
