"""The wrappers: generate (transformers and PEFT), pipelines, adapter loading and merging.

One span per user call, or per prompt row of a batched call (``_rows``): ``PeftModel.generate`` calls the base
model's ``generate``, so the outermost wrapper sets a context variable and nested generate calls run untraced.
The outermost wrapper is the one that knows the PeftModel, hence the adapter.

Everything that reads the model or the output is fail open: an exception there is logged at debug level and
the user's call runs, and returns, exactly as it would without loratrace.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context

from loratrace import semconv
from loratrace.instrumentation._identity_cache import IdentityCache
from loratrace.instrumentation.patching import Patches
from loratrace.instrumentation.settings import Settings
from loratrace.instrumentation.transformers import _peft_state
from loratrace.instrumentation.transformers._content import (
    PIPELINE_TOKENIZER,
    content_attributes,
    tokenizer_for,
)
from loratrace.instrumentation.transformers._model_info import ModelInfo, model_info
from loratrace.instrumentation.transformers._outputs import (
    GenerateCall,
    completion,
    completion_rows,
    count_input_tokens,
    input_tokens_per_row,
    request_attributes,
)
from loratrace.instrumentation.transformers._rows import BatchReading, RowGenerations, row_generations, split_rows
from loratrace.runtime.generation import CURRENT_SPAN_KEY, Generation, suppressed
from loratrace.runtime.recorder import GenerationProfile

logger = logging.getLogger(__name__)

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


# the transformers instrumentor's patches; wrappers read ``PATCHES.on``, which ``uninstrument`` clears first
PATCHES = Patches("transformers")


class FirstTokenStreamer:
    """Passes everything to the caller's streamer and notes when the first generated token arrived.

    generate first puts the prompt (or the decoder start token), then the generated tokens.
    """

    __slots__ = ("_generation", "_puts", "_streamer", "ttft_s")

    def __init__(self, streamer: Any, generation: Generation) -> None:
        self._streamer = streamer
        self._generation = generation
        self._puts = 0
        self.ttft_s: float | None = None

    def put(self, value: Any) -> None:
        self._puts += 1
        if self._puts == 2:
            self.ttft_s = self._generation.elapsed_s
        self._streamer.put(value)

    def end(self) -> None:
        self._streamer.end()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._streamer, name)


@dataclass(frozen=True)
class _PeftInfo:
    tuner: Any
    inner: Any
    info: ModelInfo
    state: _peft_state.TunerState


_PEFT_MODELS: IdentityCache[_PeftInfo] = IdentityCache()
_PEFT_MODELS_BY_ID = _PEFT_MODELS.by_id


def _peft_info(peft_model: Any) -> _PeftInfo:
    known = _PEFT_MODELS_BY_ID.get(id(peft_model))
    if known is None:
        inner = peft_model.get_base_model()
        tuner = peft_model.base_model
        known = _PeftInfo(tuner, inner, model_info(inner), _peft_state.tuner_state(tuner))
        _PEFT_MODELS[peft_model] = known
        _peft_state.remember_owner(peft_model, inner)
    return known


def _describe_peft(peft_model: Any) -> tuple[ModelInfo, _peft_state.AdapterReading | None, Any]:
    known = _peft_info(peft_model)
    reading = _peft_state.read_adapter(peft_model, known.tuner, known.state)
    return known.info, reading, known.inner.generation_config


def _describe_plain(model: Any) -> tuple[ModelInfo, _peft_state.AdapterReading | None, Any]:
    merged = _peft_state.merged_adapter(model)
    if merged is None:
        owner = _peft_state.owner_of(model)
        if owner is not None:  # generate called on the model inside a PeftModel: its LoRA layers are live
            return _describe_peft(owner)
    return model_info(model), merged, model.generation_config


# (model info, adapter reading) -> what its generations serve, built once per combination (both are cached
# objects, hashed by identity). Request parameters are added off the caller's thread, from a snapshot.
_PROFILES: dict[tuple[Any, Any], GenerationProfile] = {}
_REQUEST_ATTRIBUTES: dict[tuple[Any, ...], dict[str, Any]] = {}
_CACHE_MAX = 512


def _cached(cache: dict[Any, Any], key: Any, build: Callable[[], Any]) -> Any:
    """``cache[key]``, built on a miss; the cache is emptied when full, so it stays small and never evicts per key.
    An unhashable key (a list of stop strings among the parameters) is built every time."""
    try:
        cached = cache.get(key)
    except TypeError:
        return build()
    if cached is None:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cached = cache[key] = build()
    return cached


def _profile(info: ModelInfo, reading: _peft_state.AdapterReading | None) -> GenerationProfile:
    profile = _PROFILES.get((info, reading))
    if profile is None:
        profile = _cached(_PROFILES, (info, reading), lambda: _new_profile(info, reading))
    return profile


def _new_profile(info: ModelInfo, reading: _peft_state.AdapterReading | None) -> GenerationProfile:
    adapter_name = reading.name if reading is not None else None
    attributes = {**info.attributes, **reading.attributes} if reading is not None else dict(info.attributes)
    return GenerationProfile(
        operation=semconv.OPERATION_TEXT_COMPLETION,
        request_model=info.name,
        response_model=adapter_name or info.name,
        attributes=attributes,
        adapter_name=adapter_name,
        base_model=info.name,
    )


def _request_attributes(call: GenerateCall) -> dict[str, Any]:
    """The request parameters' attributes; a service repeats a handful of combinations, so they are cached."""
    values = call.request_values()
    return _cached(_REQUEST_ATTRIBUTES, values, lambda: request_attributes(values))


def _traced_generate(settings: Settings, describe: Callable[[Any], tuple[ModelInfo, Any, Any]]) -> Wrapper:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not PATCHES.on:
            return wrapped(*args, **kwargs)
        recorder = settings.recorder
        parent = otel_context.get_current()
        if suppressed(parent):  # OpenTelemetry's suppress_instrumentation()
            return wrapped(*args, **kwargs)
        current = parent.get(CURRENT_SPAN_KEY)
        if type(current) is Generation and current.recorder is recorder:
            return wrapped(*args, **kwargs)  # generate called by a traced generate (PeftModel's calls the base's)
        try:
            info, reading, model_generation_config = describe(instance)
            call = GenerateCall(args, kwargs, model_generation_config)
            profile = _profile(info, reading)
            rows = row_generations(recorder, profile, parent, call.input_ids)
            if rows is None:
                generation = Generation(recorder, profile, parent)
        except Exception:
            logger.debug("loratrace could not start a span for %s.generate", type(instance).__name__, exc_info=True)
            return wrapped(*args, **kwargs)
        if rows is not None:
            return _traced_rows(settings, rows, wrapped, instance, args, kwargs, call, info, parent)
        result, streamer = _run_current(generation, parent, wrapped, args, kwargs, call, ((generation, True),))
        try:
            # token counts, request parameters and content are read off the caller's thread
            generation.finish_reading(_FinishedCall.of(result, settings, instance, call, info, streamer).outcome)
        except Exception:
            logger.debug("loratrace could not end the generation span", exc_info=True)
        return result

    return wrapper


def _run_current(
    generation: Generation,
    parent: otel_context.Context,
    wrapped: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    call: GenerateCall,
    failing: Sequence[tuple[Generation, bool]],
) -> tuple[Any, FirstTokenStreamer | None]:
    """The user's call with ``generation`` current (and timing a streamer's first token); when it raises, every
    (generation, registered in its scope) of ``failing`` fails with the exception, which is re-raised."""
    streamer = kwargs.get("streamer")
    if streamer is not None:
        streamer = FirstTokenStreamer(streamer, generation)
        kwargs = {**kwargs, "streamer": streamer}
    generation.activate(parent)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        generation.deactivate()
        for failed, registered in failing:
            _fail(failed, call, exc, registered)
        raise
    generation.deactivate()
    return result, streamer


def _fail(generation: Generation, call: GenerateCall, exc: BaseException, register_in_scope: bool = True) -> None:
    try:
        generation.set_attributes(_request_attributes(call))
    except Exception:
        logger.debug("loratrace could not read the request parameters of a failed call", exc_info=True)
    generation.fail(exc, register_in_scope=register_in_scope)


def _traced_rows(
    settings: Settings,
    rows: RowGenerations,
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    call: GenerateCall,
    info: ModelInfo,
    parent: otel_context.Context,
) -> Any:
    """A batched call: one generation per prompt row (see ``_rows``); the first is current during the call."""
    rows_and_registered = list(zip(rows.generations, rows.registered, strict=True))
    result, streamer = _run_current(rows.generations[0], parent, wrapped, args, kwargs, call, rows_and_registered)
    try:
        finished = _FinishedCall.of(result, settings, instance, call, info, streamer)
        reading = BatchReading(functools.partial(finished.row_outcomes, len(rows.generations)))
        for index, (generation, registered) in enumerate(rows_and_registered):
            generation.finish_reading(functools.partial(reading.row, index), register_in_scope=registered)
    except Exception:
        logger.debug("loratrace could not end the generation spans of a batch", exc_info=True)
    return result


@dataclass(frozen=True)
class _FinishedCall:
    """What a generate call's outcome is read from, off the caller's thread: the generated ids and the prompt
    alone, so the rest of a result (scores, a key-value cache) is not kept alive."""

    sequences: Any
    instance: Any
    call: GenerateCall
    info: ModelInfo
    streamer: FirstTokenStreamer | None
    capture_content: bool
    pipeline_tokenizer: Any | None

    @classmethod
    def of(
        cls,
        result: Any,
        settings: Settings,
        instance: Any,
        call: GenerateCall,
        info: ModelInfo,
        streamer: FirstTokenStreamer | None,
    ) -> _FinishedCall:
        """Called on the caller's thread: the pipeline's tokenizer lives in its context."""
        tokenizer = PIPELINE_TOKENIZER.get() if settings.capture_content else None
        sequences = getattr(result, "sequences", result)  # of a ModelOutput, only the generated ids
        return cls(sequences, instance, call, info, streamer, settings.capture_content, tokenizer)

    def tokenizer(self) -> Any | None:
        return tokenizer_for(self.instance, self.call.tokenizer, self.pipeline_tokenizer)

    def row_outcomes(self, rows: int) -> list[dict[str, Any]]:
        """``outcome`` for each prompt row of a batch, from one read of the generated ids."""
        call = self.call
        input_ids = call.input_ids
        width = int(input_ids.shape[-1]) if input_ids is not None else 0
        counts, reasons, generated = completion_rows(self.sequences, call, self.info, width)
        outcomes = split_rows(
            rows, input_tokens_per_row(call, call.get("pad_token_id")), counts, reasons, _request_attributes(call)
        )
        per_row = len(counts) // rows
        tokenizer = self.tokenizer() if self.capture_content else None
        for row, outcome in enumerate(outcomes):
            if self.streamer is not None:
                outcome["ttft_s"] = self.streamer.ttft_s
            if tokenizer is not None and input_ids is not None and "output_tokens" in outcome:
                chosen = slice(row * per_row, (row + 1) * per_row)
                outcome["extra"].update(
                    content_attributes(tokenizer, input_ids[row : row + 1], generated[chosen], reasons[chosen])
                )
        return outcomes

    def outcome(self) -> dict[str, Any]:
        call = self.call
        outcome: dict[str, Any] = {}
        extra = dict(_request_attributes(call))
        outcome["extra"] = extra
        input_ids = call.input_ids
        outcome["input_tokens"] = count_input_tokens(call, call.get("pad_token_id"))
        width = int(input_ids.shape[-1]) if input_ids is not None else 0
        output_tokens, reasons, generated = completion(self.sequences, call, self.info, width)
        outcome["output_tokens"] = output_tokens
        outcome["finish_reasons"] = reasons
        if self.streamer is not None:
            outcome["ttft_s"] = self.streamer.ttft_s
        if self.capture_content:
            tokenizer = self.tokenizer()
            if tokenizer is not None:
                extra.update(content_attributes(tokenizer, input_ids, generated, reasons))
        return outcome


def generate_wrapper(settings: Settings) -> Wrapper:
    """For ``GenerationMixin.generate``: plain models, pipelines, models made by ``merge_and_unload()``."""
    return _traced_generate(settings, _describe_plain)


def peft_generate_wrapper(settings: Settings) -> Wrapper:
    """For ``PeftModel.generate`` and the task classes that override it."""
    return _traced_generate(settings, _describe_peft)


def pipeline_wrapper(settings: Settings) -> Wrapper:
    """For ``Pipeline.__call__``: hands the pipeline's tokenizer to generate, for content capture."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not PATCHES.on or not settings.capture_content:
            return wrapped(*args, **kwargs)
        token = PIPELINE_TOKENIZER.set(getattr(instance, "tokenizer", None))
        try:
            return wrapped(*args, **kwargs)
        finally:
            PIPELINE_TOKENIZER.reset(token)

    return wrapper


def _bound_arguments(wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    arguments = inspect.signature(wrapped).bind_partial(*args, **kwargs).arguments
    extra = arguments.pop("kwargs", None)
    return {**arguments, **(extra or {})}


@contextlib.contextmanager
def _failing_open(what: str) -> Iterator[None]:
    """Around loratrace's own reading of a call: a failure is logged and the user's call goes on as without it."""
    try:
        yield
    except Exception:
        logger.debug("loratrace could not %s", what, exc_info=True)


def load_adapter_wrapper(settings: Settings) -> Wrapper:
    """For ``PeftModel.load_adapter`` (``from_pretrained`` calls it): remembers where adapters came from."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        result = wrapped(*args, **kwargs)
        if PATCHES.on:
            with _failing_open("record the source of a loaded adapter"):
                arguments = _bound_arguments(wrapped, args, kwargs)
                _peft_state.record_source(
                    instance.base_model,
                    arguments["adapter_name"],
                    arguments["model_id"],
                    arguments.get("revision"),
                )
                _peft_info(instance)
        return result

    return wrapper


def merge_and_unload_wrapper(settings: Settings) -> Wrapper:
    """For ``BaseTuner.merge_and_unload``: the returned model keeps a record of the adapter merged in."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not PATCHES.on:
            return wrapped(*args, **kwargs)
        reading = None
        with _failing_open("identify the adapter being merged"):
            # read before merging: the LoRA weights the id hashes are gone afterwards
            reading = _peft_state.read_merging(instance, _bound_arguments(wrapped, args, kwargs).get("adapter_names"))
        result = wrapped(*args, **kwargs)
        with _failing_open("record the merged adapter"):
            _peft_state.forget_owner(result)
            if reading is not None:
                _peft_state.record_merge(result, reading)
        return result

    return wrapper


def unload_wrapper(settings: Settings) -> Wrapper:
    """For ``BaseTuner.unload``: the returned model no longer carries the adapters."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        result = wrapped(*args, **kwargs)
        if PATCHES.on:
            _peft_state.forget_owner(result)
        return result

    return wrapper
