"""Release context: route, cohort, variant, versions, and the current generation of a scope.

A scope is opened by ``loratrace.context(...)``. It lives in a ``contextvars.ContextVar`` so it follows asyncio
tasks and any thread that is handed the context (``contextvars.copy_context().run``, or executors that copy it).

Within a scope, the latest generation span stays open until the next generation starts in the same scope or the
scope exits; its end time is fixed when the model call returned. That lets serving code annotate the answer it just
got (``record_schema_attempt``, ``mark_fallback``, ``record_eval``) after the call, which is when it knows.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from opentelemetry.trace import Span

from loratrace import semconv
from loratrace.errors import ConfigurationError

F = TypeVar("F", bound=Callable[..., Any])

_AttributeValue = str | bool | int | float
_NAMED_KEYS = {
    "route": semconv.ROUTE_NAME,
    "cohort": semconv.COHORT,
    "variant": semconv.VARIANT,
    "prompt_version": semconv.PROMPT_VERSION,
    "dataset_version": semconv.DATASET_VERSION,
    "example_id": semconv.EXAMPLE_ID,
}


class Scope:
    """The state of one ``loratrace.context`` block, shared by every thread and task that runs inside it."""

    __slots__ = (
        "_lock",
        "attributes",
        "fallback_reason",
        "has_fallback",
        "parent",
        "pending_end_ns",
        "pending_fallback",
        "pending_span",
        "schema_attempts",
    )

    def __init__(self, attributes: dict[str, Any], parent: Scope | None) -> None:
        self.attributes = attributes
        self.parent = parent
        self._lock = threading.Lock()
        self.pending_span: Span | None = None
        self.pending_end_ns: int | None = None
        self.schema_attempts = 0
        self.has_fallback: bool = parent.has_fallback if parent else False
        self.fallback_reason: str | None = parent.fallback_reason if parent else None
        # a fallback marked before any generation of the scope: the next generation carries it
        self.pending_fallback = False

    def adopt_generation(self, span: Span, end_ns: int) -> None:
        """Keep ``span`` open as the scope's current generation; end the one it replaces."""
        with self._lock:
            previous, previous_end = self.pending_span, self.pending_end_ns
            self.pending_span, self.pending_end_ns = span, end_ns
        if previous is not None:
            previous.end(previous_end)  # a generation not yet built ends as soon as it is

    def current_generation(self) -> Span | None:
        with self._lock:
            return self.pending_span

    def close(self) -> None:
        with self._lock:
            span, end_ns = self.pending_span, self.pending_end_ns
            self.pending_span = self.pending_end_ns = None
        if span is not None:
            span.end(end_ns)

    def count_schema_attempt(self) -> int:
        with self._lock:
            self.schema_attempts += 1
            return self.schema_attempts

    def set_fallback(self, reason: str | None, *, carried: bool) -> None:
        """The scope fell back; ``carried``: a current generation carries this fallback, else the next one will."""
        with self._lock:
            self.has_fallback = True
            self.fallback_reason = reason
            if not carried:
                self.pending_fallback = True

    def take_fallback(self) -> tuple[bool, bool, str | None]:
        """For a generation starting in the scope: (served after a fallback, carries a pending fallback, reason)."""
        with self._lock:
            carries, self.pending_fallback = self.pending_fallback, False
            return self.has_fallback, carries, self.fallback_reason


# read directly by the generation code on every model call (a function call around it costs there)
CURRENT_SCOPE: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("loratrace_scope", default=None)


def current_scope() -> Scope | None:
    return CURRENT_SCOPE.get()


def _check_value(key: str, value: Any) -> _AttributeValue:
    if isinstance(value, str | bool | int | float):
        return value
    msg = (
        f"loratrace.context({key}=...) takes a str, bool, int or float, got {type(value).__name__} {value!r}; "
        "convert it to a string first"
    )
    raise ConfigurationError(msg)


def _attributes_from_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for key, value in arguments.items():
        if value is None:
            continue
        if not key.isidentifier():
            msg = f"loratrace.context() extra key {key!r} must be a Python identifier such as 'tenant'"
            raise ConfigurationError(msg)
        value = _check_value(key, value)
        if key == "variant" and value not in semconv.VARIANTS:
            msg = f"loratrace.context(variant=...) must be one of {', '.join(semconv.VARIANTS)}; got {value!r}"
            raise ConfigurationError(msg)
        attributes[_NAMED_KEYS.get(key, semconv.CONTEXT_PREFIX + key)] = value
    return attributes


class context:  # lower case: used like a function, ``with loratrace.context(...)``
    """Set the release context for every generation span started inside.

    Usable as a context manager and as a decorator on sync and async functions. Scopes nest: an inner scope
    inherits the outer values and overrides the ones it names. ``None`` leaves a value as inherited.

    \b
    Example::

        with loratrace.context(route="billing", cohort="enterprise", prompt_version="v7"):
            model.generate(**inputs)

        @loratrace.context(route="support", tenant="acme")   # extra keys land as loratrace.context.tenant
        async def answer(question): ...
    """

    def __init__(
        self,
        *,
        route: str | None = None,
        cohort: str | None = None,
        variant: str | None = None,
        prompt_version: str | None = None,
        dataset_version: str | None = None,
        example_id: str | None = None,
        **extra: Any,
    ) -> None:
        self._attributes = _attributes_from_arguments(
            {
                "route": route,
                "cohort": cohort,
                "variant": variant,
                "prompt_version": prompt_version,
                "dataset_version": dataset_version,
                "example_id": example_id,
                **extra,
            }
        )
        self._entered: list[tuple[Scope, contextvars.Token[Scope | None]]] = []

    def __enter__(self) -> Scope:
        parent = CURRENT_SCOPE.get()
        merged = {**parent.attributes, **self._attributes} if parent is not None else dict(self._attributes)
        scope = Scope(merged, parent)
        self._entered.append((scope, CURRENT_SCOPE.set(scope)))
        return scope

    def __exit__(self, *exc_info: object) -> None:
        scope, token = self._entered.pop()
        CURRENT_SCOPE.reset(token)
        scope.close()

    def _fresh(self) -> context:
        twin = context.__new__(context)
        twin._attributes = self._attributes
        twin._entered = []
        return twin

    def __call__(self, function: F) -> F:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._fresh():
                    return await function(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]  # functools.wraps kept F's signature

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]  # functools.wraps kept F's signature
