"""The patching toolkit every instrumentor uses: lazy, exactly undoable patches, with signature checks that stay
out of the way on a mismatch, and arguments bound by name.

Importing vLLM or transformers costs seconds, so nothing here imports the target: each patch is a post-import
hook (wrapt) that applies when the application imports the target module, or at once when it already has.
Post-import hooks cannot be unregistered, so they are registered once per process and consult the instrumentor's
``Patches``; ``uninstrument`` unwraps exactly what was wrapped, and leaves a method another library wrapped over
ours alone (unwrapping it would remove that library's wrapper too).

\b
    PATCHES = Patches("vLLM")                                 # one per instrumentor
    PATCHES.enable({"vllm.entrypoints.llm": [lambda module: PATCHES.wrap(module, "LLM.generate", wrapper)]})
    ...
    PATCHES.disable()
"""

from __future__ import annotations

import inspect
import logging
import sys
import threading
from collections.abc import Callable, Collection
from typing import Any

import wrapt
from opentelemetry import context as otel_context

from loratrace.runtime.generation import suppressed

logger = logging.getLogger(__name__)

Patcher = Callable[[Any], None]


class Patches:
    """One instrumentor's patches: which modules get which, and what was actually wrapped (so unwrap is exact).

    ``library`` names the target in the messages about a version it does not match (``"vLLM"``).
    """

    def __init__(self, library: str) -> None:
        self.library = library
        self._lock = threading.Lock()
        self._hooked: set[str] = set()
        self._patchers: dict[str, list[Patcher]] = {}
        self._applied: list[tuple[Any, str, Any]] = []  # (owner, attribute, the wrapper installed)
        # instrumented: read by wrappers that check suppression themselves, from the context they already hold
        self.on = False

    @property
    def enabled(self) -> bool:
        """Instrumented, and not inside OpenTelemetry's ``suppress_instrumentation()`` (as contrib instrumentors
        check it): every wrapper asks this (or ``on`` and ``suppressed``) first."""
        return self.on and not suppressed(otel_context.get_current())

    def enable(self, patchers: dict[str, list[Patcher]]) -> None:
        with self._lock:
            self.on = True
            self._patchers = patchers
            pending = [name for name in patchers if name not in self._hooked]
            self._hooked.update(pending)
            already_hooked = [name for name in patchers if name not in pending and name in sys.modules]
        for name in pending:
            # Runs the hook now when the module is already imported, else right after its import.
            wrapt.register_post_import_hook(self._on_import, name)
        for name in already_hooked:
            self._on_import(sys.modules[name])

    def _on_import(self, module: Any) -> None:
        if not self.on:
            return
        for patcher in self._patchers.get(module.__name__, ()):
            try:
                patcher(module)
            except Exception:
                logger.debug("loratrace could not patch %s", module.__name__, exc_info=True)

    def wrap(
        self,
        module: Any,
        path: str,
        wrapper: Callable[..., Any],
        *,
        expected: Collection[str] = (),
    ) -> bool:
        """Wrap ``module.<path>`` (``"Class.method"``) if it exists and takes the ``expected`` parameters.

        ``module`` may be any object (a class: ``wrap(cls, "generate", ...)``). True when ours is in place."""
        owner_path, _, attribute = path.rpartition(".")
        owner: Any = module
        for part in filter(None, owner_path.split(".")):
            owner = getattr(owner, part, None)
            if owner is None:
                break
        target = None
        if owner is not None:
            target = owner.__dict__.get(attribute) if isinstance(owner, type) else getattr(owner, attribute, None)
        where = _qualified_name(module)
        if target is None:
            log_once(f"missing:{where}.{path}", "loratrace: %s.%s not found; not instrumented", where, path)
            return False
        if isinstance(target, wrapt.FunctionWrapper):
            logger.debug("%s.%s is already wrapped; leaving it", where, path)
            return True  # already ours (instrument() twice without uninstrument)
        if expected and not has_parameters(target, expected):
            log_once(
                f"signature:{where}.{path}",
                "loratrace: %s.%s does not take the parameters %s in this %s version; not instrumented",
                where,
                path,
                sorted(expected),
                self.library,
            )
            return False
        wrapt.wrap_function_wrapper(owner, attribute, wrapper)
        with self._lock:
            self._applied.append((owner, attribute, vars(owner)[attribute]))
        return True

    def bound(
        self, binder: Binder, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A wrapped method call's arguments by name, when it is to be traced: instrumented (``enabled``) and the
        arguments bind. None means: run the call untraced."""
        return binder.bind(instance, args, kwargs) if self.enabled else None

    def disable(self) -> None:
        with self._lock:
            self.on = False
            applied, self._applied = self._applied, []
        for owner, attribute, installed in reversed(applied):
            if vars(owner).get(attribute) is installed:
                setattr(owner, attribute, installed.__wrapped__)
            else:  # someone wrapped over us: unwrapping now would remove their wrapper too
                logger.debug("%r.%s was re-wrapped by another library; leaving it", owner, attribute)


def _qualified_name(owner: Any) -> str:
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}"
    return str(getattr(owner, "__name__", owner))


_logged: set[str] = set()


def log_once(key: str, message: str, *args: Any) -> None:
    """Warn once per process per key: a version mismatch is worth one line, not one per request."""
    if key in _logged:
        return
    _logged.add(key)
    logger.warning(message, *args)


def has_parameters(function: Callable[..., Any], names: Collection[str]) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return all(name in parameters for name in names)


class Binder:
    """Binds a wrapped call's arguments by name; on a mismatch logs once and returns None."""

    __slots__ = ("_key", "_signature")

    def __init__(self, function: Callable[..., Any], key: str) -> None:
        self._signature = inspect.signature(function)
        self._key = key

    @classmethod
    def for_method(cls, owner: type, name: str) -> Binder:
        function = inspect.unwrap(owner.__dict__[name]) if name in owner.__dict__ else getattr(owner, name)
        return cls(function, f"{owner.__qualname__}.{name}")

    def bind(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """Arguments of a method call (``instance`` is bound to ``self``), defaults applied."""
        return self.bind_function((instance, *args), kwargs)

    def bind_function(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError:
            log_once(f"bind:{self._key}", "loratrace: unexpected arguments to %s; call not traced", self._key)
            return None
        bound.apply_defaults()
        return bound.arguments
