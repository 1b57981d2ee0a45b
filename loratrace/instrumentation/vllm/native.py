"""Enrich vLLM's own ``llm_request`` span (``--otlp-traces-endpoint``) with the adapter and modern names.

vLLM builds that span in ``OutputProcessor.do_tracing`` from the request state (which holds the
``LoRARequest``) and hands a finished attribute dict to ``instrument_manual``. Two thin patches:
``do_tracing`` publishes the request state it is tracing, and ``instrument_manual`` (as ``output_processor``
imported it) adds loratrace's attributes to that dict. vLLM still creates, exports and owns the span; users
of vLLM's tracing alone get ``loratrace.adapter.*``, ``gen_ai.response.model``, ``gen_ai.usage.input_tokens``
/ ``output_tokens`` and the OpenInference names.
"""

from __future__ import annotations

import contextvars
import logging
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from loratrace import semconv
from loratrace.instrumentation.patching import Binder, has_parameters, log_once
from loratrace.instrumentation.settings import Settings
from loratrace.instrumentation.vllm import _attributes
from loratrace.instrumentation.vllm._adapters import ADAPTERS
from loratrace.instrumentation.vllm._patches import PATCHES
from loratrace.instrumentation.vllm.server import GENERATION_HEADER

logger = logging.getLogger(__name__)

OUTPUT_PROCESSOR_MODULE = "vllm.v1.engine.output_processor"
LLM_ENGINE_MODULE = "vllm.v1.engine.llm_engine"
ASYNC_LLM_MODULE = "vllm.v1.engine.async_llm"
NATIVE_SPAN_NAME = "llm_request"

_tracing: contextvars.ContextVar[tuple[Any, Any, bool] | None] = contextvars.ContextVar(
    "loratrace_vllm_tracing", default=None
)
# OutputProcessor -> base model attributes, filled when an engine (LLMEngine / AsyncLLM) is built.
_engines: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def patchers(settings: Settings) -> dict[str, Callable[[Any], None]]:
    del settings  # vLLM's span goes through vLLM's tracer; loratrace only adds attributes

    def patch_output_processor(module: Any) -> None:
        manual = getattr(module, "instrument_manual", None)
        if manual is None or not has_parameters(manual, ("span_name", "attributes")):
            log_once("native", "loratrace: vLLM's llm_request span is built differently here; not enriched")
            return
        manual_binder = Binder(manual, "instrument_manual")
        do_tracing = _do_tracing_wrapper(Binder.for_method(module.OutputProcessor, "do_tracing"))
        if PATCHES.wrap(module, "OutputProcessor.do_tracing", do_tracing, expected=("req_state",)):
            PATCHES.wrap(module, "instrument_manual", _instrument_manual_wrapper(manual_binder))

    def patch_engine(class_name: str) -> Callable[[Any], None]:
        def patch(module: Any) -> None:
            PATCHES.wrap(module, f"{class_name}.__init__", _engine_init)

        return patch

    return {
        OUTPUT_PROCESSOR_MODULE: patch_output_processor,
        LLM_ENGINE_MODULE: patch_engine("LLMEngine"),
        ASYNC_LLM_MODULE: patch_engine("AsyncLLM"),
    }


def _engine_init(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    result = wrapped(*args, **kwargs)
    try:
        processor = getattr(instance, "output_processor", None)
        if processor is not None:
            _engines[processor] = _attributes.model_attributes(getattr(instance, "model_config", None))
    except Exception:
        logger.debug("loratrace could not read the engine's model config", exc_info=True)
    return result


def _do_tracing_wrapper(binder: Binder) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        arguments = PATCHES.bound(binder, instance, args, kwargs)
        if arguments is None:
            return wrapped(*args, **kwargs)
        headers = getattr(arguments.get("engine_core_output"), "trace_headers", None) or {}
        nested = headers.get(GENERATION_HEADER) == "1"
        token = _tracing.set((instance, arguments["req_state"], nested))
        try:
            return wrapped(*args, **kwargs)
        finally:
            _tracing.reset(token)

    return wrapper


def _instrument_manual_wrapper(binder: Binder) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        tracing = _tracing.get()
        if tracing is None or not PATCHES.enabled:
            return wrapped(*args, **kwargs)
        try:
            arguments = binder.bind_function(args, kwargs)
            if arguments is None or arguments.get("span_name") != NATIVE_SPAN_NAME:
                return wrapped(*args, **kwargs)
            processor, req_state, nested = tracing
            attributes = dict(arguments.get("attributes") or {})
            arguments["attributes"] = enrich(attributes, processor, req_state, nested=nested)
        except Exception:
            logger.debug("loratrace could not enrich vLLM's llm_request span", exc_info=True)
            return wrapped(*args, **kwargs)
        return wrapped(**arguments)

    return wrapper


def enrich(attributes: dict[str, Any], processor: Any, req_state: Any, *, nested: bool = False) -> dict[str, Any]:
    """vLLM's attributes plus the adapter, the response model, the modern token names and OpenInference.

    ``nested``: the span sits under loratrace's server span, which is already the request's generation (with the
    same tokens). It then keeps the adapter fields but does not claim to be a generation: no OpenInference LLM
    kind and no token counts in the names backends add up (Phoenix showed 22 tokens for 11), and
    ``langfuse.observation.type=span`` so Langfuse does not make a second generation of vLLM's own usage keys.
    """
    model = _engines.get(processor, {}) if processor is not None else {}
    base = model.get(semconv.BASE_MODEL_NAME)
    lora = getattr(req_state, "lora_request", None)
    added: dict[str, Any] = {semconv.GEN_AI_PROVIDER_NAME: semconv.PROVIDER_VLLM, **model}
    if nested:
        added[semconv.LANGFUSE_OBSERVATION_TYPE] = semconv.LANGFUSE_OBSERVATION_TYPE_SPAN
    else:
        added[semconv.OPENINFERENCE_SPAN_KIND] = semconv.OPENINFERENCE_SPAN_KIND_LLM
        added[semconv.LLM_PROVIDER] = semconv.PROVIDER_VLLM
        added[semconv.LLM_SYSTEM] = semconv.PROVIDER_VLLM
    if lora is not None:
        identity = ADAPTERS.identity(lora)
        added.update(identity.attributes)
        added[semconv.VARIANT] = semconv.VARIANT_ADAPTER
        served: str | None = identity.name
    else:
        added[semconv.VARIANT] = semconv.VARIANT_BASE
        served = base
    if served:
        added[semconv.GEN_AI_RESPONSE_MODEL] = served
        added[semconv.GEN_AI_REQUEST_MODEL] = served
        if not nested:
            added[semconv.LLM_MODEL_NAME] = served
    if not nested:
        added.update(_modern_tokens(attributes))
    attributes.update(added)
    return attributes


def _modern_tokens(attributes: Mapping[str, Any]) -> dict[str, Any]:
    prompt = attributes.get(semconv.GEN_AI_USAGE_PROMPT_TOKENS_LEGACY)
    completion = attributes.get(semconv.GEN_AI_USAGE_COMPLETION_TOKENS_LEGACY)
    tokens: dict[str, Any] = {}
    if isinstance(prompt, int):
        tokens[semconv.GEN_AI_USAGE_INPUT_TOKENS] = prompt
        tokens[semconv.LLM_TOKEN_COUNT_PROMPT] = prompt
    if isinstance(completion, int):
        tokens[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = completion
        tokens[semconv.LLM_TOKEN_COUNT_COMPLETION] = completion
    if isinstance(prompt, int) and isinstance(completion, int):
        tokens[semconv.LLM_TOKEN_COUNT_TOTAL] = prompt + completion
    return tokens
