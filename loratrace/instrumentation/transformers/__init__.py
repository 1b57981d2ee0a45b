"""Hugging Face transformers + PEFT instrumentation: one span per generate call, naming the adapter.

\b
    from loratrace.instrumentation.transformers import TransformersInstrumentor
    TransformersInstrumentor().instrument(tracer_provider=provider, meter_provider=meter_provider)

``loratrace.instrument()`` does this for you. Patching waits until transformers / PEFT are imported; PEFT is
optional (plain models and pipelines are traced without it).

What a span reports, and the choices behind it:

* ``gen_ai.request.model`` and ``loratrace.base_model.name``: the base model as a user names it, a hub repo id as
  is, a model loaded from a local folder by the folder's name (transformers stores the full path).
* The adapter (every ``loratrace.adapter.*`` field) is read from the PeftModel at call time: ``set_adapter``,
  ``disable_adapter()`` / ``disable_adapter_layers()`` (then variant ``base`` and no adapter fields), merged layers
  (``merge_adapter()``) and models made by ``merge_and_unload()`` (``merged=true``) are reported as they are.
  Several active adapters are one combined adapter named ``a1+a2`` (sorted), with ``loratrace.adapter.names``.
* Input tokens exclude padding (the attention mask); with ``num_return_sequences`` the prompts count once and
  every returned sequence's tokens count. Output tokens run to the first end-of-sequence token, included. A finish
  reason per returned sequence: ``stop`` (end-of-sequence, stop string) or ``length``.
* Time to first token needs a ``streamer=``. Prompt and completion text need
  ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` when instrumenting (read once, not per call) and a
  tokenizer: a pipeline's, ``generate(tokenizer=...)``'s, or the one saved in the model's local folder.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

# instrumentor.py opens with a file-wide `# type: ignore`, so mypy sees none of its names
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from loratrace import semconv
from loratrace.instrumentation.settings import Settings, build_settings, stop_instrumenting
from loratrace.instrumentation.transformers import _patching
from loratrace.instrumentation.transformers._wrappers import PATCHES
from loratrace.instrumentation.transformers.package import _instruments

__all__ = ["TransformersInstrumentor"]


class TransformersInstrumentor(BaseInstrumentor):
    """Traces ``generate`` on transformers models and PeftModels, with the active adapter's identity."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        settings = build_settings(
            __name__, semconv.PROVIDER_HUGGINGFACE, kwargs.get("tracer_provider"), kwargs.get("meter_provider")
        )
        self._settings: Settings | None = settings
        PATCHES.enable(_patching.patchers(settings))

    def _uninstrument(self, **kwargs: Any) -> None:
        settings, self._settings = getattr(self, "_settings", None), None
        stop_instrumenting(PATCHES, settings)
