"""The deferred generation span, and every part of the OpenTelemetry SDK loratrace's span runtime touches.

A ``Generation`` is current while its model call runs, under ids it announces; the calling thread only captures
facts, and the SDK span is built later on the finisher thread (``loratrace.runtime.finisher``) under those ids.
That takes four things from the SDK beyond its API, all here (``tests/core/test_sdk_coupling.py`` pins them):
the tracer's ``id_generator`` (swapped for ``AnnouncedIds`` while a recorder uses it), its ``sampler`` (asked
for the flags announced during the call; ``DEFAULT_ON`` is recognised and not asked), its ``span_processor``
(whose ``force_flush`` exports a finisher burst), and ``RandomIdGenerator`` for a tracer with no generator.
The profile, the metrics and the recorder are in ``loratrace.runtime.recorder``.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import Token
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import DEFAULT_ON
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags, Tracer

from loratrace import semconv
from loratrace.runtime.export_requests import EXPORT_WAIT_SECONDS, export_requests
from loratrace.runtime.finisher import finisher
from loratrace.runtime.release_scope import CURRENT_SCOPE, Scope

if TYPE_CHECKING:
    from loratrace.runtime.recorder import GenerationProfile, GenerationRecorder

logger = logging.getLogger(__name__)

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
# The context key of the current span, obtained through the public API (so it is the key the API uses): reading
# and setting it directly saves the API's function calls on every model call.
CURRENT_SPAN_KEY = next(iter(trace.set_span_in_context(trace.INVALID_SPAN, otel_context.Context())))


def _suppression_keys() -> tuple[str, ...]:
    """The context keys ``suppress_instrumentation()`` sets, found through the public API (in an empty
    context, they are all it sets): the wrappers read them straight from the context they already hold (~0.3 us,
    where ``is_instrumentation_enabled()`` costs ~1.2-1.8 us, on every model call)."""
    token = otel_context.attach(otel_context.Context())
    try:
        with suppress_instrumentation():
            return tuple(otel_context.get_current())
    finally:
        otel_context.detach(token)


SUPPRESSION_KEYS: tuple[str, ...] = _suppression_keys()


def suppressed(current: otel_context.Context) -> bool:
    """Whether ``current`` is inside OpenTelemetry's ``suppress_instrumentation()`` (contrib instrumentors skip
    their work there; so does loratrace)."""
    for key in SUPPRESSION_KEYS:  # noqa: SIM110 (a loop: any(<generator>) costs more on every model call)
        if current.get(key):
            return True
    return False


# Guards every generation's hand-over from the serving thread to its SDK span. One lock for all: held for
# microseconds, and a lock made per generation would cost an allocation on every model call.
_LOCK = threading.Lock()
_OUTCOME_KEYS = ("input_tokens", "output_tokens", "finish_reasons", "ttft_s", "extra")


class AnnouncedIds(IdGenerator):
    """The ids a generation was announced under while its call ran, for the tracer that later builds its span.

    Installed as the ``id_generator`` of loratrace's own tracer object only (the SDK caches one tracer per
    instrumentation scope), it hands out the announced ids on the finisher thread and defers to the provider's
    generator otherwise. Recorders on the same tracer share it; the last one to close puts the provider's
    generator back, so instrumenting again never stacks one on another.
    """

    def __init__(self, fallback: IdGenerator) -> None:
        self.fallback = fallback
        self.users = 0
        self._local = threading.local()

    def announce(self, trace_id: int, span_id: int) -> None:
        self._local.ids = (trace_id, span_id)

    def clear(self) -> None:
        self._local.ids = None

    def generate_span_id(self) -> int:
        ids = getattr(self._local, "ids", None)
        return ids[1] if ids else self.fallback.generate_span_id()

    def generate_trace_id(self) -> int:
        ids = getattr(self._local, "ids", None)
        return ids[0] if ids else self.fallback.generate_trace_id()

    def is_trace_id_random(self) -> bool:
        # the SDK sets the W3C random-trace-id flag from this: the announced ids are the provider generator's
        return self.fallback.is_trace_id_random()


_ANNOUNCED_IDS_LOCK = threading.Lock()


class Generation(Span):
    """One generation: a span whose SDK span is built off the caller's thread, under the ids it announced.

    Rarely set fields default at class level: a generation is made on the serving thread for every call, and
    each attribute written there costs (see ``bench/bench_transformers_overhead.py``).

    While the call runs, this object is the current span (its context has real ids, so anything started inside
    the call is its child, and ``traceparent`` headers carry it); attributes and events set on it meanwhile are
    kept. ``finish`` / ``fail`` hand everything to the finisher thread, which starts the SDK span with those ids,
    start time and attributes, and ends it (or, inside a ``loratrace.context`` scope, leaves it open until the
    scope ends it). After that, calls are forwarded to the SDK span.
    """

    _name: str | None = None
    _kind: SpanKind = SpanKind.CLIENT
    _start_ns_given: int | None = None  # a span started after the fact (a batch request from vLLM's timestamps)
    _scope: Scope | None = None
    # the scope's fallback state when the generation started: (served after a fallback, carries the fallback
    # marked before it, the reason)
    _fallback: tuple[bool, bool, str | None] = (False, False, None)
    _ids: tuple[int, int, TraceFlags] | None = None
    _context: SpanContext | None = None
    _late: dict[str, Any] | None = None  # attributes set by serving code before the SDK span exists
    _events: list[tuple[str, Mapping[str, Any] | None, int]] | None = None
    _sdk_span: Span | None = None
    _end_requested: int | None = None
    _context_token: Token[otel_context.Context] | None = None

    def __init__(
        self,
        recorder: GenerationRecorder,
        profile: GenerationProfile,
        parent: otel_context.Context | None = None,
        *,
        start_time_ns: int | None = None,
        name: str | None = None,
        kind: SpanKind = SpanKind.CLIENT,
    ) -> None:
        # the caller's context, captured here: the SDK span is started on another thread. Everything derived from
        # it (the parent's ids, this span's ids) is worked out on first use, usually on the finisher thread.
        self._parent = parent if parent is not None else otel_context.get_current()
        self.recorder = recorder
        self.profile = profile
        self._start_s = time.perf_counter()
        if start_time_ns is None:
            self._start_ns = time.time_ns()
        else:
            self._start_ns = self._start_ns_given = start_time_ns
        # the scope the generation was started in: it is also the one current when the call ends
        scope = CURRENT_SCOPE.get()
        if scope is not None:
            self._scope = scope
            if scope.has_fallback:
                self._fallback = scope.take_fallback()
        if name is not None:
            self._name = name
        if kind is not SpanKind.CLIENT:
            self._kind = kind

    # --- the caller's side ------------------------------------------------------------------------------------
    @property
    def span(self) -> Span:
        """The span to set attributes on or put in a context: the generation itself."""
        return self

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self._start_s

    def activate(self, current: otel_context.Context | None = None) -> None:
        """Make the generation current for the wrapped call, so library spans and helpers nest under it.

        ``current`` is the caller's current context when the caller already holds it."""
        self._context_token = otel_context.attach(otel_context.set_value(CURRENT_SPAN_KEY, self, current))

    def deactivate(self) -> None:
        if self._context_token is not None:
            otel_context.detach(self._context_token)
            self._context_token = None

    def finish(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        finish_reasons: Sequence[str] | None = None,
        ttft_s: float | None = None,
        extra: Mapping[str, Any] | None = None,
        register_in_scope: bool = True,
        end_time: int | None = None,
        into: list[tuple[Callable[..., Any], tuple[Any, ...]]] | None = None,
    ) -> None:
        """Record the outcome, the metrics and the end (deferred inside a scope), off the caller's thread.

        ``end_time`` (ns since the epoch) ends a span whose timing is known after the fact; the duration
        metric is then ``end_time`` minus the ``start_time`` the span was started with. ``into``: append the
        completion to this list instead of queueing it, for the caller to queue a batch's together
        (``finisher.submit_all``).
        """
        outcome = (input_tokens, output_tokens, finish_reasons, ttft_s, extra)
        self._complete(outcome, None, None, register_in_scope, end_time, into)

    def finish_reading(self, read_outcome: Callable[[], Mapping[str, Any]], *, register_in_scope: bool = True) -> None:
        """Like :meth:`finish`, with the outcome read on the finisher thread: ``read_outcome()`` returns
        ``finish``'s keyword arguments. For outcomes that cost to read (token counts from tensors), when what it
        reads is not changed after the call returns. A ``read_outcome`` that raises leaves the outcome unset."""
        # _complete's work, inline: this runs on the serving thread after every call
        duration_s = time.perf_counter() - self._start_s
        end_ns = time.time_ns()
        scope = self._scope if register_in_scope else None
        if scope is None:
            finisher.submit(self._build, read_outcome, None, None, duration_s, end_ns)
        else:
            finisher.submit(self._build, read_outcome, None, None, duration_s, None)
            scope.adopt_generation(self, end_ns)

    def fail(
        self,
        exception: BaseException,
        *,
        register_in_scope: bool = True,
        error_type: str | None = None,
        end_time: int | None = None,
    ) -> None:
        """Report the exception (status ERROR, exception event, ``error.type``) and end. Never raises.

        ``error_type`` overrides the exception's class name, for errors a library returns instead of raising
        (vLLM's server answers an unknown model with an ``ErrorResponse`` of type ``NotFoundError``).
        """
        self._complete(None, exception, error_type or type(exception).__qualname__, register_in_scope, end_time)

    def _complete(
        self,
        outcome: tuple[Any, ...] | None,
        exception: BaseException | None,
        error_type: str | None,
        register_in_scope: bool,
        end_time: int | None,
        into: list[tuple[Callable[..., Any], tuple[Any, ...]]] | None = None,
    ) -> None:
        if end_time is not None and self._start_ns_given is not None:
            duration_s = max(0.0, (end_time - self._start_ns_given) / 1e9)
        else:
            duration_s = self.elapsed_s
        end_ns = end_time if end_time is not None else time.time_ns()
        scope = self._scope if register_in_scope else None
        args = (outcome, exception, error_type, duration_s, None if scope is not None else end_ns)
        if into is None:
            finisher.submit(self._build, *args)
        else:
            into.append((self._build, args))
        if scope is not None:
            scope.adopt_generation(self, end_ns)

    def _start_attributes(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(start attributes, metric labels) for this generation; the attributes are a new dict."""
        provider = self.recorder.provider
        scope = self._scope
        if scope is None:
            attributes, labels = self.profile.plain(provider)
            return dict(attributes), labels
        attributes = self.profile.start_attributes(provider, scope.attributes, *self._fallback)
        return attributes, self.profile.labels(provider, attributes)

    # --- the finisher's side ----------------------------------------------------------------------------------
    def _build(
        self,
        outcome: tuple[Any, ...] | Callable[[], Mapping[str, Any]] | None,
        exception: BaseException | None,
        error_type: str | None,
        duration_s: float,
        end_ns: int | None,
    ) -> None:
        recorder = self.recorder
        measured: dict[str, Any] = {"duration_s": duration_s, "input_tokens": None, "output_tokens": None}
        measured["ttft_s"] = None
        attributes, labels = self._start_attributes()
        if callable(outcome):
            try:
                read = dict(outcome())
            except Exception:
                logger.debug("loratrace could not read the outcome of a generation", exc_info=True)
                read = {}
            outcome = tuple(read.get(key) for key in _OUTCOME_KEYS)
        if outcome is not None:
            input_tokens, output_tokens, finish_reasons, ttft_s, extra = outcome
            attributes.update(_outcome_attributes(input_tokens, output_tokens, finish_reasons, ttft_s, extra))
            measured.update(input_tokens=input_tokens, output_tokens=output_tokens, ttft_s=ttft_s)
        else:
            attributes[semconv.ERROR_TYPE] = error_type
            measured["error_type"] = error_type
        ids = recorder.announced_ids
        if ids is not None:
            trace_id, span_id, _flags = self._span_ids()
            ids.announce(trace_id, span_id)
        try:
            sdk_span = recorder.tracer.start_span(
                self._name or self.profile.span_name(), context=self._parent, kind=self._kind, start_time=self._start_ns
            )
        finally:
            if ids is not None:
                ids.clear()
        with _LOCK:
            # attributes and events set by serving code during the call are newer than the start attributes
            if self._late:
                attributes.update(self._late)
            sdk_span.set_attributes(attributes)
            for name, event_attributes, timestamp in self._events or ():
                sdk_span.add_event(name, event_attributes, timestamp)
            if exception is not None:
                sdk_span.record_exception(exception)
                sdk_span.set_status(Status(StatusCode.ERROR, f"{error_type}: {exception}"))
            self._sdk_span = sdk_span
            end_requested = self._end_requested
        if recorder.metrics is not None:
            recorder.metrics.record(labels, **measured)
        if end_ns is not None or end_requested is not None:
            sdk_span.end(end_time=end_ns if end_ns is not None else end_requested)
            if recorder.request_export is not None:
                finisher.after_burst(recorder.request_export)

    # --- the Span API: the SDK span's once it exists, kept until then ------------------------------------------
    def _span_ids(self) -> tuple[int, int, TraceFlags]:
        """(trace id, span id, flags), made on first use: the parent's trace continues, else a new one starts."""
        with _LOCK:
            if self._ids is None:
                parent_context = trace.get_current_span(self._parent).get_span_context()
                new_ids = self.recorder.new_ids
                if parent_context.is_valid:
                    trace_id = parent_context.trace_id
                    random_trace_id = parent_context.trace_flags.random_trace_id
                else:
                    trace_id, random_trace_id = new_ids.generate_trace_id(), new_ids.is_trace_id_random()
                flags = _SAMPLED if self._sampled(parent_context, trace_id) else _NOT_SAMPLED
                if random_trace_id:
                    flags = TraceFlags(flags | TraceFlags.RANDOM_TRACE_ID)
                self._ids = (trace_id, new_ids.generate_span_id(), flags)
            return self._ids

    def _sampled(self, parent_context: SpanContext, trace_id: int) -> bool:
        """The tracer provider's sampler decides, as it will for the SDK span built later with the same parent
        and trace id: the flags announced to spans started inside the call (and to vLLM's ``llm_request`` through
        ``traceparent``) must not claim a sampled parent that is never exported."""
        sampler = getattr(self.recorder.tracer, "sampler", None)
        # a proxy or no-op tracer, or the SDK's default ParentBased(ALWAYS_ON) (its decision, without the ~7 us
        # of asking it): the caller's decision, or sampled for a new trace
        if sampler is None or sampler is DEFAULT_ON:
            return parent_context.trace_flags.sampled if parent_context.is_valid else True
        try:
            name = self._name or self.profile.span_name()
            result = sampler.should_sample(self._parent, trace_id, name, self._kind)
        except Exception:
            logger.debug("loratrace could not ask the sampler about a generation", exc_info=True)
            return True
        return bool(result.decision.is_sampled())

    def get_span_context(self) -> SpanContext:
        if self._context is None:  # built on first use: most calls never need it
            trace_id, span_id, flags = self._span_ids()
            self._context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags)
        return self._context

    def is_recording(self) -> bool:
        with _LOCK:
            if self._sdk_span is not None:
                return self._sdk_span.is_recording()
            return self._end_requested is None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        with _LOCK:
            if self._sdk_span is None:
                if self._late is None:
                    self._late = {}
                self._late.update(attributes)
                return
        self._sdk_span.set_attributes(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        self.set_attributes({key: value})

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None) -> None:
        with _LOCK:
            if self._sdk_span is None:
                if self._events is None:
                    self._events = []
                self._events.append((name, dict(attributes) if attributes else None, timestamp or time.time_ns()))
                return
        self._sdk_span.add_event(name, attributes, timestamp)

    def update_name(self, name: str) -> None:
        with _LOCK:
            if self._sdk_span is None:
                self._name = name
                return
        self._sdk_span.update_name(name)

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        with _LOCK:
            sdk_span = self._sdk_span
        if sdk_span is not None:
            sdk_span.set_status(status, description)
        else:
            logger.debug("loratrace sets a generation's status itself; ignoring set_status during the call")

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        with _LOCK:
            sdk_span = self._sdk_span
        if sdk_span is not None:
            sdk_span.record_exception(exception, attributes, timestamp, escaped)
        else:
            self.add_event("exception", {"exception.type": type(exception).__qualname__, **(attributes or {})})

    def end(self, end_time: int | None = None) -> None:
        """End the SDK span (a scope ends its generation this way); before it exists, end it once it does."""
        with _LOCK:
            sdk_span = self._sdk_span
            if sdk_span is None:
                self._end_requested = end_time if end_time is not None else time.time_ns()
                return
        sdk_span.end(end_time=end_time)

    @property
    def attributes(self) -> Mapping[str, Any]:
        """What the span carries (or will carry): for helpers that copy a generation's adapter attributes."""
        with _LOCK:
            sdk_span = self._sdk_span
            if sdk_span is None:
                return {**self._start_attributes()[0], **(self._late or {})}
        return getattr(sdk_span, "attributes", None) or {}


def _outcome_attributes(
    input_tokens: int | None,
    output_tokens: int | None,
    finish_reasons: Sequence[str] | None,
    ttft_s: float | None,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    attributes: dict[str, Any] = dict(extra) if extra else {}
    if input_tokens is not None:
        attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
        attributes[semconv.LLM_TOKEN_COUNT_PROMPT] = input_tokens
    if output_tokens is not None:
        attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
        attributes[semconv.LLM_TOKEN_COUNT_COMPLETION] = output_tokens
    if input_tokens is not None and output_tokens is not None:
        attributes[semconv.LLM_TOKEN_COUNT_TOTAL] = input_tokens + output_tokens
    if finish_reasons:
        attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = list(finish_reasons)
    if ttft_s is not None:
        attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttft_s
    return attributes


# --- what a recorder takes from an SDK tracer ------------------------------------------------------------------
def lend_announced_ids(tracer: Tracer) -> tuple[AnnouncedIds | None, IdGenerator]:
    """(the announced-ids generator installed on ``tracer``, the generator that makes new ids).

    An SDK tracer builds each span under the ids its generation announced during the call; any other tracer (a
    proxy, the no-op one) has no ``id_generator`` and gets fresh ids, which only matters to spans started inside
    the call. The provider's own generator makes the announced ids (an X-Ray style generator keeps its format).
    """
    with _ANNOUNCED_IDS_LOCK:
        id_generator = getattr(tracer, "id_generator", None)
        if isinstance(id_generator, IdGenerator) and not isinstance(id_generator, AnnouncedIds):
            id_generator = AnnouncedIds(id_generator)
            tracer.id_generator = id_generator  # type: ignore[attr-defined]  # the SDK tracer's, found above
        if isinstance(id_generator, AnnouncedIds):
            id_generator.users += 1
            return id_generator, id_generator.fallback
    return None, RandomIdGenerator()


def return_announced_ids(tracer: Tracer, announced: AnnouncedIds) -> None:
    """Give ``tracer`` its own id generator back once no recorder needs announced ids."""
    with _ANNOUNCED_IDS_LOCK:
        announced.users -= 1
        if announced.users == 0 and getattr(tracer, "id_generator", None) is announced:
            tracer.id_generator = announced.fallback  # type: ignore[attr-defined]


def export_request(tracer: Tracer) -> Callable[[], object] | None:
    """A call that asks ``tracer``'s span processor to export now, on the export thread, waited for a bounded
    time (``loratrace.runtime.export_requests``); None for a tracer without a span processor (a proxy, the no-op
    one): it has nothing to export."""
    processor = getattr(tracer, "span_processor", None)
    flush = getattr(processor, "force_flush", None)
    if flush is None:
        return None
    return functools.partial(export_requests.request, flush, EXPORT_WAIT_SECONDS)
