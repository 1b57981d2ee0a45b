"""Offline engine: ``LLM.generate`` and ``LLM.chat``.

One span for the call (``vllm.LLM.generate`` / ``vllm.LLM.chat``) and, when it returns, one child generation
span per request built from its ``RequestOutput``: the adapter from ``output.lora_request`` (so a batch
mixing the base model and several adapters gets each request right), token counts from the token ids, finish
reasons, and the request's own timing (arrival, queue time, time to first token) when vLLM records it
(``disable_log_stats=False``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from loratrace import semconv
from loratrace.instrumentation.patching import Binder
from loratrace.instrumentation.settings import Settings
from loratrace.instrumentation.vllm import _attributes
from loratrace.instrumentation.vllm._adapters import ADAPTERS
from loratrace.instrumentation.vllm._patches import PATCHES
from loratrace.runtime.finisher import finisher
from loratrace.runtime.generation import Generation
from loratrace.runtime.recorder import GenerationProfile, capture_content_enabled
from loratrace.runtime.release_scope import CURRENT_SCOPE, Scope
from loratrace.runtime.request_scopes import SERVING_SCOPES

logger = logging.getLogger(__name__)

MODULE = "vllm.entrypoints.llm"
_GENERATE_PARAMETERS = ("prompts", "sampling_params", "lora_request")
_CHAT_PARAMETERS = ("messages", "sampling_params", "lora_request")

_model_attributes: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def patchers(settings: Settings) -> dict[str, Callable[[Any], None]]:
    def patch(module: Any) -> None:
        llm = module.LLM
        generate = _wrapper(settings, llm, "generate", semconv.OPERATION_TEXT_COMPLETION)
        PATCHES.wrap(module, "LLM.generate", generate, expected=_GENERATE_PARAMETERS)
        PATCHES.wrap(
            module,
            "LLM.chat",
            _wrapper(settings, llm, "chat", semconv.OPERATION_CHAT),
            expected=_CHAT_PARAMETERS,
        )

    return {MODULE: patch}


def _wrapper(settings: Settings, llm_class: type, method: str, operation: str) -> Callable[..., Any]:
    binder = Binder.for_method(llm_class, method)
    span_name = f"vllm.LLM.{method}"

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        arguments = PATCHES.bound(binder, instance, args, kwargs)
        if arguments is None:
            return wrapped(*args, **kwargs)
        try:
            call = _BatchCall(settings, instance, operation, span_name, arguments)
        except Exception:
            logger.debug("loratrace could not start the %s span", span_name, exc_info=True)
            return wrapped(*args, **kwargs)
        token = call.activate()
        try:
            outputs = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.deactivate(token)
            call.fail(exc)
            raise
        call.deactivate(token)
        try:
            call.finish(outputs)
        except Exception:
            logger.debug("loratrace could not record the %s outputs", span_name, exc_info=True)
        return outputs

    return wrapper


def _model_attributes_of(llm: Any) -> dict[str, Any]:
    try:
        cached = _model_attributes.get(llm)
    except TypeError:
        cached = None
    if cached is None:
        cached = _attributes.model_attributes(getattr(llm, "model_config", None))
        with contextlib.suppress(TypeError):  # an LLM subclass without weak references: no cache
            _model_attributes[llm] = cached
    return cached


def _per_prompt(value: Any, index: int) -> Any:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return value[index] if index < len(value) else None
    return value


class _BatchCall:
    """One ``LLM.generate`` / ``LLM.chat`` call: the parent span, then a child span per request output."""

    def __init__(self, settings: Settings, llm: Any, operation: str, span_name: str, arguments: dict[str, Any]) -> None:
        self._settings = settings
        self._operation = operation
        self._arguments = arguments
        self._model = _model_attributes_of(llm)
        self._base = self._model.get(semconv.BASE_MODEL_NAME) or "vllm"
        self._start_ns = time.time_ns()
        self.span = settings.tracer.start_span(
            span_name,
            kind=SpanKind.INTERNAL,
            # No gen_ai.operation.name here: the call groups the generations, it is not one, and GenAI
            # backends (and loratrace's own queries) count every span carrying an operation as a generation.
            attributes={semconv.GEN_AI_PROVIDER_NAME: semconv.PROVIDER_VLLM, **self._model},
            start_time=self._start_ns,
        )

    def activate(self) -> object:
        from opentelemetry import context

        return context.attach(trace.set_span_in_context(self.span))

    def deactivate(self, token: object) -> None:
        from opentelemetry import context

        context.detach(token)  # type: ignore[arg-type]  # the Token activate() returned, opaque to its callers

    def fail(self, exception: BaseException) -> None:
        try:
            # a LoRARequest whose path does not exist fails the whole call: name the adapter(s) it asked for
            self.span.set_attributes(_requested_adapters(self._arguments.get("lora_request")))
        except Exception:
            logger.debug("loratrace could not name the adapters of a failed call", exc_info=True)
        try:
            self.span.set_attribute(semconv.ERROR_TYPE, type(exception).__qualname__)
            self.span.record_exception(exception)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(exception).__qualname__}: {exception}"))
        finally:
            self.span.end()

    def finish(self, outputs: Sequence[Any]) -> None:
        end_ns = time.time_ns()
        try:
            parent = trace.set_span_in_context(self.span)
            # Inside a loratrace.context scope, a single-request call is "the generation" later helpers
            # annotate; in a batch no one request is, so none is kept open, unless loratrace.request_scopes
            # gave each request a scope of its own.
            serving = SERVING_SCOPES.get()
            register = len(outputs) == 1 or serving is not None
            self.span.set_attribute(semconv.BATCH_SIZE, len(outputs))
            # requests served by the same adapter with the same sampling parameters share one profile, so the
            # background thread merges their common attributes once per batch, not once per request
            profiles: dict[tuple[int | None, int], GenerationProfile] = {}
            capture = capture_content_enabled()
            tasks: list[tuple[Any, ...]] = []
            try:
                for index, output in enumerate(outputs):
                    scope = serving[index] if serving is not None and index < len(serving) else None
                    self._request_span(output, index, parent, end_ns, profiles, register, capture, tasks, scope)
            finally:
                # the batch's request spans go to the background thread as one item: the thread's queue is
                # bounded, and an offline batch may hold more requests than the bound
                finisher.submit_all(tasks)
        finally:
            self.span.end(end_time=end_ns)

    def _profile(
        self, lora: Any, params: Any, profiles: dict[tuple[int | None, int], GenerationProfile]
    ) -> GenerationProfile:
        identity = ADAPTERS.identity(lora) if lora is not None else None
        # by identity: both objects outlive the batch (the adapter cache and the caller hold them)
        key = (id(identity) if identity is not None else None, id(params))
        profile = profiles.get(key)
        if profile is None:
            attributes: dict[str, Any] = dict(self._model)
            if identity is not None:
                attributes.update(identity.attributes)
            if params is not None:
                attributes.update(_attributes.sampling_attributes(params))
            model = identity.name if identity is not None else self._base
            profile = profiles[key] = GenerationProfile(
                operation=self._operation,
                request_model=model,
                response_model=model,
                attributes=attributes,
                adapter_name=identity.name if identity is not None else None,
                base_model=self._base,
            )
        return profile

    def _request_span(
        self,
        output: Any,
        index: int,
        parent: Any,
        call_end_ns: int,
        profiles: dict[tuple[int | None, int], GenerationProfile],
        register: bool,
        capture: bool,
        tasks: list[tuple[Any, ...]],
        scope: Scope | None = None,
    ) -> None:
        params = _per_prompt(self._arguments.get("sampling_params"), index)
        profile = self._profile(getattr(output, "lora_request", None), params, profiles)
        extra: dict[str, Any] = {}
        request_id = getattr(output, "request_id", None)
        if request_id is not None:
            extra[semconv.GEN_AI_RESPONSE_ID] = str(request_id)
        start_ns, end_ns, ttft_s, queue_s = _timing(getattr(output, "metrics", None), self._start_ns, call_end_ns)
        if queue_s is not None:
            extra[semconv.GEN_AI_LATENCY_TIME_IN_QUEUE] = queue_s
        if scope is None:
            generation = Generation(self._settings.recorder, profile, parent, start_time_ns=start_ns)
        else:  # the generation takes its context from the scope current when it starts: the request's own
            token = CURRENT_SCOPE.set(scope)
            try:
                generation = Generation(self._settings.recorder, profile, parent, start_time_ns=start_ns)
            finally:
                CURRENT_SCOPE.reset(token)
        completions = getattr(output, "outputs", None) or ()
        if capture:
            extra.update(self._content(output, index, completions))
        generation.finish(
            input_tokens=len(getattr(output, "prompt_token_ids", None) or ()),
            output_tokens=_attributes.output_token_count(completions),
            finish_reasons=_attributes.finish_reasons(completions),
            ttft_s=ttft_s,
            extra=extra,
            register_in_scope=register,
            end_time=end_ns,
            into=tasks,
        )

    def _content(self, output: Any, index: int, completions: Sequence[Any]) -> dict[str, Any]:
        texts = [str(getattr(c, "text", "")) for c in completions]
        content: dict[str, Any] = {
            semconv.OUTPUT_VALUE: texts[0] if len(texts) == 1 else json.dumps(texts),
            semconv.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": text}]} for text in texts]
            ),
        }
        if self._operation == semconv.OPERATION_CHAT:
            messages = self._arguments.get("messages")
            # a list of messages is one conversation for every output; a list of lists is one per prompt
            conversation = messages if messages and isinstance(messages[0], dict) else _per_prompt(messages, index)
            content[semconv.GEN_AI_INPUT_MESSAGES] = json.dumps(conversation, default=str)
        prompt = getattr(output, "prompt", None)
        if prompt is not None:
            content[semconv.INPUT_VALUE] = str(prompt)
        return content


def _requested_adapters(lora_request: Any) -> dict[str, Any]:
    """The adapters a call asked for (one ``LoRARequest`` or one per prompt), as span attributes."""
    requests = lora_request if isinstance(lora_request, Sequence) else [lora_request]
    names: dict[str, str] = {}
    for request in requests:
        name = getattr(request, "lora_name", None)
        if name:
            names.setdefault(str(name), str(getattr(request, "lora_path", "") or ""))
    if not names:
        return {}
    if len(names) == 1:
        ((name, path),) = names.items()
        return {semconv.ADAPTER_NAME: name, semconv.ADAPTER_SOURCE: path} if path else {semconv.ADAPTER_NAME: name}
    return {semconv.ADAPTER_NAMES: list(names)}


def _timing(metrics: Any, call_start_ns: int, call_end_ns: int) -> tuple[int, int, float | None, float | None]:
    """(start ns, end ns, time to first token s, queue time s) of one request.

    vLLM records the arrival as wall-clock time and the rest on the engine core's monotonic clock, so the end
    is the arrival plus the first-token latency plus the decode time. Without stats the request spans the
    call.
    """
    arrival = getattr(metrics, "arrival_time", 0.0) if metrics is not None else 0.0
    if not arrival:
        return call_start_ns, call_end_ns, None, None
    start_ns = int(arrival * 1e9)
    ttft = float(getattr(metrics, "first_token_latency", 0.0) or 0.0)
    first, last = metrics.first_token_ts, metrics.last_token_ts
    decode = max(0.0, last - first) if first and last else 0.0
    end_ns = min(call_end_ns, start_ns + int((ttft + decode) * 1e9))
    queued, scheduled = metrics.queued_ts, metrics.scheduled_ts
    queue_s = max(0.0, scheduled - queued) if queued and scheduled else None
    return start_ns, max(start_ns, end_ns), (ttft or None), queue_s
