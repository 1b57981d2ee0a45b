"""The OpenAI-compatible server: one generation span per completion / chat request.

``create_completion`` / ``create_chat_completion`` start a SERVER span that continues the caller's trace
(``traceparent``), named for the model the request asked for and carrying the adapter that model resolves to
in the server's registry (static ``--lora-modules`` and adapters loaded at run time alike). The engine calls
made for that request (``AsyncLLM.generate``) report token counts, finish reasons and the first token's time
back to the span, which ends when the response is complete: on return, or when a stream is exhausted. An
unknown model is an error span carrying the asked-for name, and no metric sample.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from loratrace import semconv
from loratrace.instrumentation.patching import Binder
from loratrace.instrumentation.settings import Settings
from loratrace.instrumentation.vllm import _attributes
from loratrace.instrumentation.vllm._adapters import ADAPTERS
from loratrace.instrumentation.vllm._patches import PATCHES
from loratrace.runtime.generation import Generation

logger = logging.getLogger(__name__)

COMPLETION_MODULE = "vllm.entrypoints.openai.completion.serving"
CHAT_MODULE = "vllm.entrypoints.openai.chat_completion.serving"
ASYNC_LLM_MODULE = "vllm.v1.engine.async_llm"
_GENERATE_PARAMETERS = ("prompt", "sampling_params", "request_id", "lora_request", "trace_headers")
_TRACECONTEXT = TraceContextTextMapPropagator()
GENERATION_HEADER = "loratrace-generation"

_current_call: contextvars.ContextVar[_ServerCall | None] = contextvars.ContextVar(
    "loratrace_vllm_server_call", default=None
)
_model_attributes: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


class VLLMErrorResponse(Exception):
    """vLLM answered the request with an ``ErrorResponse`` (returned, not raised); recorded as the span's
    error."""


def patchers(settings: Settings) -> dict[str, Callable[[Any], None]]:
    def serving_patch(class_name: str, method: str, operation: str) -> Callable[[Any], None]:
        def patch(module: Any) -> None:
            binder = Binder.for_method(getattr(module, class_name), method)
            wrapper = _serving_wrapper(settings, binder, operation)
            PATCHES.wrap(module, f"{class_name}.{method}", wrapper, expected=("request", "raw_request"))

        return patch

    patch_completion = serving_patch("OpenAIServingCompletion", "create_completion", semconv.OPERATION_TEXT_COMPLETION)
    patch_chat = serving_patch("OpenAIServingChat", "create_chat_completion", semconv.OPERATION_CHAT)

    def patch_engine(module: Any) -> None:
        wrapper = _engine_generate_wrapper(Binder.for_method(module.AsyncLLM, "generate"))
        PATCHES.wrap(module, "AsyncLLM.generate", wrapper, expected=_GENERATE_PARAMETERS)

    return {COMPLETION_MODULE: patch_completion, CHAT_MODULE: patch_chat, ASYNC_LLM_MODULE: patch_engine}


class _RequestTally:
    __slots__ = ("finish", "prompt_tokens", "tokens")

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.tokens: dict[int, int] = {}
        self.finish: dict[int, str] = {}


class _ServerCall:
    """One HTTP completion / chat request: its generation span and what the engine reported for it."""

    def __init__(self, generation: Generation, *, has_adapter: bool) -> None:
        self.generation = generation
        self.span = generation.span
        self._has_adapter = has_adapter
        self._requests: dict[str, _RequestTally] = {}
        self._first_token_s: float | None = None
        self._sampling_recorded = False
        self._ended = False

    # -- reported by AsyncLLM.generate ------------------------------------------------------------------
    def engine_request(self, request_id: str, sampling_params: Any) -> None:
        self._requests.setdefault(request_id, _RequestTally())
        if not self._sampling_recorded:
            self._sampling_recorded = True
            self.span.set_attributes(_attributes.sampling_attributes(sampling_params))
            self.span.set_attribute(semconv.GEN_AI_RESPONSE_ID, request_id)

    def observe(self, request_id: str, output: Any, delta: bool) -> None:
        tally = self._requests.setdefault(request_id, _RequestTally())
        prompt = getattr(output, "prompt_token_ids", None)
        if prompt:
            tally.prompt_tokens = max(tally.prompt_tokens, len(prompt))
        for completion in getattr(output, "outputs", None) or ():
            count = len(completion.token_ids or ())
            if self._first_token_s is None and count:
                self._first_token_s = self.generation.elapsed_s
            index = completion.index
            tally.tokens[index] = tally.tokens.get(index, 0) + count if delta else count
            if completion.finish_reason:
                tally.finish[index] = str(completion.finish_reason)
        if not self._has_adapter and getattr(output, "lora_request", None) is not None:
            # Resolved during the call (a LoRA resolver loaded it on first use): name it now.
            self._has_adapter = True
            identity = ADAPTERS.identity(output.lora_request)
            self.span.set_attributes(
                {
                    **identity.attributes,
                    semconv.VARIANT: semconv.VARIANT_ADAPTER,
                    semconv.GEN_AI_RESPONSE_MODEL: identity.name,
                    semconv.LLM_MODEL_NAME: identity.name,
                }
            )

    # -- ending -------------------------------------------------------------------------------------------
    def finish(self) -> None:
        if self._ended:
            return
        self._ended = True
        tallies = list(self._requests.values())
        reasons = [tally.finish[i] for tally in tallies for i in sorted(tally.finish)]
        self.generation.finish(
            input_tokens=sum(t.prompt_tokens for t in tallies),
            output_tokens=sum(sum(t.tokens.values()) for t in tallies),
            finish_reasons=reasons,
            ttft_s=self._first_token_s,
            register_in_scope=False,
        )

    def fail(self, exception: BaseException, *, error_type: str | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self.generation.fail(exception, error_type=error_type, register_in_scope=False)


def _model_attributes_of(serving: Any) -> dict[str, Any]:
    cached = _model_attributes.get(serving)
    if cached is None:
        cached = _attributes.model_attributes(getattr(serving, "model_config", None))
        models = getattr(serving, "models", None)
        paths = getattr(models, "base_model_paths", None)
        if paths:  # the served name the clients use, which may differ from the model path
            cached[semconv.BASE_MODEL_NAME] = paths[0].name
        _model_attributes[serving] = cached
    return cached


def _start_call(settings: Settings, serving: Any, operation: str, arguments: dict[str, Any]) -> _ServerCall:
    request = arguments["request"]
    raw_request = arguments.get("raw_request")
    model = _model_attributes_of(serving)
    base = model.get(semconv.BASE_MODEL_NAME) or "vllm"
    asked = getattr(request, "model", None) or base
    models = serving.models
    lora = getattr(models, "lora_requests", {}).get(asked)
    attributes = dict(model)
    recorder = settings.recorder
    adapter_name = None
    if lora is not None:
        identity = ADAPTERS.identity(lora)
        adapter_name = identity.name
        attributes.update(identity.attributes)
        response_model = identity.name
    elif asked == base or models.is_base_model(asked):
        response_model = base
    else:  # vLLM answers 404: nothing served it, so the span claims no response model (the asked name stays)
        recorder = settings.unmetered_recorder or settings.recorder
        response_model = None
    parent = None
    headers = getattr(raw_request, "headers", None)
    if headers is not None and headers.get("traceparent"):
        parent = propagate.extract(headers)
    generation = recorder.start(
        operation=operation,
        request_model=asked,
        response_model=response_model,
        attributes=attributes,
        adapter_name=adapter_name,
        base_model=base,
        kind=SpanKind.SERVER,
        parent=parent,
    )
    return _ServerCall(generation, has_adapter=adapter_name is not None)


@contextlib.contextmanager
def _serving(call: _ServerCall) -> Iterator[None]:
    """While the request's handler runs: its span is the current span, and ``call`` is what the engine calls it
    makes report to (``_engine_generate_wrapper``)."""
    call_token = _current_call.set(call)
    context_token = otel_context.attach(trace.set_span_in_context(call.span))
    try:
        yield
    finally:
        otel_context.detach(context_token)
        _current_call.reset(call_token)


def _serving_wrapper(settings: Settings, binder: Binder, operation: str) -> Callable[..., Any]:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        arguments = PATCHES.bound(binder, instance, args, kwargs)
        if arguments is None:
            return await wrapped(*args, **kwargs)
        try:
            call = _start_call(settings, instance, operation, arguments)
        except Exception:
            logger.debug("loratrace could not start the server request span", exc_info=True)
            return await wrapped(*args, **kwargs)
        try:
            with _serving(call):
                result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        try:
            return _complete(call, result)
        except Exception:
            logger.debug("loratrace could not finish the server request span", exc_info=True)
            return result

    return wrapper


def _complete(call: _ServerCall, result: Any) -> Any:
    error = getattr(result, "error", None)
    if error is not None and type(result).__name__ == "ErrorResponse":
        call.span.set_attribute("http.response.status_code", int(getattr(error, "code", 0) or 0))
        call.fail(VLLMErrorResponse(str(getattr(error, "message", error))), error_type=str(error.type))
        return result
    if hasattr(result, "__aiter__") and hasattr(result, "__anext__"):
        return _finish_when_streamed(call, result)
    call.finish()
    return result


async def _finish_when_streamed(call: _ServerCall, stream: Any) -> AsyncIterator[Any]:
    try:
        async for chunk in stream:
            yield chunk
    except BaseException as exc:  # includes the client going away (GeneratorExit / CancelledError)
        call.fail(exc)
        raise
    finally:
        await stream.aclose()
    call.finish()


def _engine_generate_wrapper(binder: Binder) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        call = _current_call.get()
        if call is None:
            return wrapped(*args, **kwargs)
        arguments = PATCHES.bound(binder, instance, args, kwargs)
        if arguments is None:
            return wrapped(*args, **kwargs)
        try:
            request_id = str(arguments["request_id"])
            sampling_params = arguments["sampling_params"]
            call.engine_request(request_id, sampling_params)
            delta = getattr(getattr(sampling_params, "output_kind", None), "name", "") == "DELTA"
            # vLLM's own llm_request span (when its tracing is on) then nests under this request's span.
            headers: dict[str, str] = dict(arguments.get("trace_headers") or {})
            _TRACECONTEXT.inject(headers, context=trace.set_span_in_context(call.span))
            # tells the enrichment of vLLM's llm_request span that this span is already the request's generation
            headers[GENERATION_HEADER] = "1"
            arguments["trace_headers"] = headers
            del arguments["self"]
        except Exception:
            logger.debug("loratrace could not observe the engine request", exc_info=True)
            return wrapped(*args, **kwargs)
        return _observe(wrapped(**arguments), call, request_id, delta)

    return wrapper


async def _observe(outputs: Any, call: _ServerCall, request_id: str, delta: bool) -> AsyncIterator[Any]:
    try:
        async for output in outputs:
            try:
                call.observe(request_id, output, delta)
            except Exception:
                logger.debug("loratrace could not read an engine output", exc_info=True)
            yield output
    finally:
        await outputs.aclose()
