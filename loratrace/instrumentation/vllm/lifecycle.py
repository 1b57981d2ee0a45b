"""Adapter lifecycle: ``loratrace.adapter.load`` / ``loratrace.adapter.unload`` spans and the load histogram.

Server: ``OpenAIServingModels.load_lora_adapter`` is what both the static ``--lora-modules`` (at start-up) and
the run-time ``/v1/load_lora_adapter`` endpoint go through, and it waits for the engine to load the weights,
so its duration is the load time. Offline: ``LLMEngine.add_lora`` (``llm.llm_engine.add_lora(...)``);
adapters that ``LLM.generate`` loads implicitly on first use are loaded inside the engine core and not seen
here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from loratrace import semconv
from loratrace.instrumentation.patching import Binder
from loratrace.instrumentation.settings import Settings
from loratrace.instrumentation.vllm._adapters import ADAPTERS
from loratrace.instrumentation.vllm._patches import PATCHES

logger = logging.getLogger(__name__)

MODELS_MODULE = "vllm.entrypoints.openai.models.serving"
LLM_ENGINE_MODULE = "vllm.v1.engine.llm_engine"


def patchers(settings: Settings) -> dict[str, Callable[[Any], None]]:
    def patch_models(module: Any) -> None:
        models = module.OpenAIServingModels
        PATCHES.wrap(
            module,
            "OpenAIServingModels.load_lora_adapter",
            _server_load(settings, Binder.for_method(models, "load_lora_adapter")),
            expected=("request",),
        )
        PATCHES.wrap(
            module,
            "OpenAIServingModels.unload_lora_adapter",
            _server_unload(settings, Binder.for_method(models, "unload_lora_adapter")),
            expected=("request",),
        )

    def patch_engine(module: Any) -> None:
        PATCHES.wrap(
            module,
            "LLMEngine.add_lora",
            _offline_load(settings, Binder.for_method(module.LLMEngine, "add_lora")),
            expected=("lora_request",),
        )

    return {MODELS_MODULE: patch_models, LLM_ENGINE_MODULE: patch_engine}


def _start(settings: Settings, span_name: str, name: str, path: str | None, base: str | None) -> Span:
    attributes: dict[str, Any] = {semconv.ADAPTER_NAME: name}
    if path:
        attributes[semconv.ADAPTER_SOURCE] = path
    if base:
        attributes[semconv.BASE_MODEL_NAME] = base
    return settings.tracer.start_span(span_name, kind=SpanKind.INTERNAL, attributes=attributes)


def _loaded(
    settings: Settings, span: Span, name: str, path: str, base: str | None, started: float, identity: Any
) -> None:
    duration = time.perf_counter() - started
    span.set_attributes({**identity.attributes, semconv.ADAPTER_LOAD_DURATION: duration})
    labels = {semconv.ADAPTER_NAME: name}
    if base:
        labels[semconv.BASE_MODEL_NAME] = base
    if settings.load_duration is not None:
        settings.load_duration.record(duration, labels)


def _error(span: Span, error_type: str, message: str) -> None:
    span.set_attribute(semconv.ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR, f"{error_type}: {message}"))


@contextlib.contextmanager
def _load_recorded(span: Span) -> Iterator[None]:
    """Record a finished load's outcome on ``span`` (fail open: a failure to read it is logged), then end it."""
    try:
        yield
    except Exception:
        logger.debug("loratrace could not record the adapter load", exc_info=True)
    finally:
        span.end()


@contextlib.contextmanager
def _ended_if_raised(span: Span) -> Iterator[None]:
    """End ``span`` for a load or unload that raises, and let the exception through."""
    try:
        yield
    except BaseException as exception:
        span.record_exception(exception)
        _error(span, type(exception).__qualname__, str(exception))
        span.end()
        raise


def _error_response(result: Any) -> Any:
    error = getattr(result, "error", None)
    return error if error is not None and type(result).__name__ == "ErrorResponse" else None


def _base_of(models: Any, base_model_name: Any) -> str | None:
    if base_model_name:
        return str(base_model_name)
    paths = getattr(models, "base_model_paths", None)
    return paths[0].name if paths else None


def _server_load(settings: Settings, binder: Binder) -> Callable[..., Any]:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        arguments = PATCHES.bound(binder, instance, args, kwargs)
        if arguments is None:
            return await wrapped(*args, **kwargs)
        request = arguments["request"]
        name = str(getattr(request, "lora_name", "") or "")
        path = str(getattr(request, "lora_path", "") or "")
        base = _base_of(instance, arguments.get("base_model_name"))
        span = _start(settings, semconv.ADAPTER_LOAD_SPAN, name, path, base)
        started = time.perf_counter()
        with _ended_if_raised(span):
            result = await wrapped(*args, **kwargs)
        with _load_recorded(span):
            error = _error_response(result)
            if error is not None:
                _error(span, str(error.type), str(error.message))
            else:
                # Read the folder off the event loop: hashing a large adapter takes a while.
                identity = await asyncio.get_running_loop().run_in_executor(None, ADAPTERS.refresh, path, name)
                _loaded(settings, span, name, path, base, started, identity)
        return result

    return wrapper


def _server_unload(settings: Settings, binder: Binder) -> Callable[..., Any]:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        arguments = PATCHES.bound(binder, instance, args, kwargs)
        if arguments is None:
            return await wrapped(*args, **kwargs)
        name = str(getattr(arguments["request"], "lora_name", "") or "")
        loaded = getattr(instance, "lora_requests", {}).get(name)
        path = str(getattr(loaded, "lora_path", "") or "") or None
        span = _start(settings, semconv.ADAPTER_UNLOAD_SPAN, name, path, _base_of(instance, None))
        if loaded is not None:
            span.set_attributes(ADAPTERS.identity(loaded).attributes)
        with _ended_if_raised(span):
            result = await wrapped(*args, **kwargs)
        error = _error_response(result)
        if error is not None:
            _error(span, str(error.type), str(error.message))
        span.end()
        return result

    return wrapper


def _offline_load(settings: Settings, binder: Binder) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        arguments = PATCHES.bound(binder, instance, args, kwargs)
        if arguments is None:
            return wrapped(*args, **kwargs)
        lora = arguments["lora_request"]
        name = str(getattr(lora, "lora_name", "") or "")
        path = str(getattr(lora, "lora_path", "") or "")
        model_config = getattr(instance, "model_config", None)
        from loratrace.instrumentation.vllm._attributes import base_model_name

        base = base_model_name(model_config)
        span = _start(settings, semconv.ADAPTER_LOAD_SPAN, name, path, base)
        started = time.perf_counter()
        with _ended_if_raised(span):
            result = wrapped(*args, **kwargs)
        with _load_recorded(span):
            _loaded(settings, span, name, path, base, started, ADAPTERS.refresh(path, name))
        return result

    return wrapper
