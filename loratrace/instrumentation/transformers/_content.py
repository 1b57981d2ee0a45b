"""Prompt and completion text, only when OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT is true.

generate works on token ids, so the text needs a tokenizer: the one a pipeline holds (put in a context
variable by the pipeline wrapper), ``generate(tokenizer=...)``, else the tokenizer saved next to a model
loaded from a local folder (loaded once and cached). Without one, no text is recorded.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import weakref
from typing import Any

from loratrace import semconv

logger = logging.getLogger(__name__)

PIPELINE_TOKENIZER: contextvars.ContextVar[Any] = contextvars.ContextVar("loratrace_pipeline_tokenizer", default=None)
_NO_TOKENIZER = object()
_LOADED: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def tokenizer_for(model: Any, passed: Any | None, pipeline_tokenizer: Any | None = None) -> Any | None:
    """The tokenizer to decode content with: ``generate(tokenizer=...)`` (``passed``), the calling pipeline's
    (read on the caller's thread and passed in), else one saved next to a model loaded from a local folder
    (loaded once)."""
    tokenizer = passed or pipeline_tokenizer
    if tokenizer is not None:
        return tokenizer
    cached = _LOADED.get(model, None)
    if cached is None:
        cached = _load_local_tokenizer(model)
        _LOADED[model] = cached
    return None if cached is _NO_TOKENIZER else cached


def _load_local_tokenizer(model: Any) -> Any:
    # Only a local folder: loading by repo id could reach the network in the middle of a user's call.
    path = getattr(getattr(model, "config", None), "_name_or_path", None)
    if not path or not os.path.isdir(path):
        logger.debug("no tokenizer for %s: prompt and completion text not recorded", type(model).__name__)
        return _NO_TOKENIZER
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)
    except Exception:
        logger.debug("could not load the tokenizer saved in %r; no content recorded", path, exc_info=True)
        return _NO_TOKENIZER


def content_attributes(
    tokenizer: Any, input_ids: Any, generated: list[list[int]], finish_reasons: list[str]
) -> dict[str, Any]:
    """GenAI message JSON and OpenInference values: one message per prompt and per returned sequence.

    A batch of prompts appears as several user messages; a single prompt's ``input.value`` is its text, a
    batch's is a JSON list of texts (the same for outputs).
    """
    prompts = tokenizer.batch_decode(input_ids, skip_special_tokens=True) if input_ids is not None else []
    completions = tokenizer.batch_decode(generated, skip_special_tokens=True)
    input_messages = [{"role": "user", "parts": [{"type": "text", "content": text}]} for text in prompts]
    output_messages = [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": reason}
        for text, reason in zip(completions, finish_reasons, strict=False)
    ]
    return {
        semconv.GEN_AI_INPUT_MESSAGES: json.dumps(input_messages),
        semconv.GEN_AI_OUTPUT_MESSAGES: json.dumps(output_messages),
        semconv.INPUT_VALUE: prompts[0] if len(prompts) == 1 else json.dumps(prompts),
        semconv.OUTPUT_VALUE: completions[0] if len(completions) == 1 else json.dumps(completions),
    }
