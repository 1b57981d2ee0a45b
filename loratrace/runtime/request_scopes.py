"""One release-context scope per request of an offline batch: ``loratrace.request_scopes(...)``.

``loratrace.context`` is one scope for everything inside it, but one vLLM ``LLM.generate`` call serves many
requests, each for its own user, cohort or golden-set example; so does a transformers ``generate`` over a padded
batch of prompts (one generation per row). ``request_scopes`` opens one scope per request: while ``serving()`` is
active, request ``k`` of the next offline batch call (row ``k`` of a batched ``generate``) is served in the
``k``-th scope it names, so its generation span carries that scope's context and stays open in it; ``request(i)``
makes scope ``i`` current again, so ``record_eval``, ``record_schema_attempt`` and ``mark_fallback`` annotate
request ``i``'s answer exactly as serving code does after a single call. Closing ends every request's generation.

\b
Example::

    with loratrace.request_scopes([{"cohort": "smb", "example_id": "q1"}, {"example_id": "q2"}]) as scopes:
        with scopes.serving():
            outputs = llm.generate(prompts, params, lora_request=loras)
        for index, output in enumerate(outputs):
            with scopes.request(index):
                loratrace.record_eval("exact_match", passed=output.outputs[0].text == expected[index])
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from loratrace.errors import ConfigurationError
from loratrace.runtime.release_scope import CURRENT_SCOPE, Scope, _attributes_from_arguments

# the scopes the next offline batch call serves its requests in, by position; read once per batch call
SERVING_SCOPES: contextvars.ContextVar[Sequence[Scope] | None] = contextvars.ContextVar(
    "loratrace_serving_scopes", default=None
)


class RequestScopes:
    """The scopes of one batch's requests; see the module's note. Build with ``loratrace.request_scopes``."""

    def __init__(self, contexts: Sequence[Mapping[str, Any]]) -> None:
        if isinstance(contexts, Mapping | str) or not isinstance(contexts, Sequence):
            msg = (
                "loratrace.request_scopes() takes a list with one mapping of context keys per request "
                f"(e.g. [{{'cohort': 'smb', 'example_id': 'q1'}}]), got {type(contexts).__name__}"
            )
            raise ConfigurationError(msg)
        parent = CURRENT_SCOPE.get()
        inherited = dict(parent.attributes) if parent is not None else {}
        self._scopes: list[Scope] = []
        for position, keys in enumerate(contexts):
            if not isinstance(keys, Mapping):
                msg = (
                    f"loratrace.request_scopes() entry {position} must be a mapping of context keys "
                    f"(cohort=, example_id=, ...), got {type(keys).__name__} {keys!r}"
                )
                raise ConfigurationError(msg)
            self._scopes.append(Scope({**inherited, **_attributes_from_arguments(keys)}, parent))
        self._closed = False

    def __len__(self) -> int:
        return len(self._scopes)

    def __enter__(self) -> RequestScopes:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def serving(self, indices: Sequence[int] | None = None) -> Iterator[None]:
        """Serve request ``k`` of the next offline batch call in scope ``indices[k]`` (default: scope ``k``).

        A retry of some requests is one call over just those: ``with scopes.serving([3, 7]): llm.generate(...)``.
        """
        self._check_open("serving")
        chosen = self._scopes if indices is None else [self._scopes[index] for index in indices]
        token = SERVING_SCOPES.set(chosen)
        try:
            yield
        finally:
            SERVING_SCOPES.reset(token)

    @contextlib.contextmanager
    def request(self, index: int) -> Iterator[Scope]:
        """Make request ``index``'s scope current: helpers annotate its latest generation, and a model call made
        inside is served in it (a retry, a fallback)."""
        self._check_open("request")
        token = CURRENT_SCOPE.set(self._scopes[index])
        try:
            yield self._scopes[index]
        finally:
            CURRENT_SCOPE.reset(token)

    def close(self) -> None:
        """End every request's latest generation (at the time its call returned)."""
        self._closed = True
        for scope in self._scopes:
            scope.close()

    def _check_open(self, method: str) -> None:
        if self._closed:
            msg = f"RequestScopes.{method}() after close(): open new scopes with loratrace.request_scopes(...)"
            raise ConfigurationError(msg)


def request_scopes(contexts: Sequence[Mapping[str, Any]]) -> RequestScopes:
    """Open one release-context scope per request of an offline batch (see :mod:`loratrace.runtime.request_scopes`).

    Each mapping takes ``loratrace.context``'s keys (``cohort``, ``variant``, ``example_id``, ... and extra
    keys); every scope inherits the enclosing ``loratrace.context``.

    \b
    Example::

        with loratrace.context(dataset_version="golden-v3"):
            with loratrace.request_scopes([{"example_id": row["id"]} for row in rows]) as scopes:
                with scopes.serving():
                    outputs = llm.generate(prompts, params, lora_request=loras)
                with scopes.request(0):
                    loratrace.record_eval("exact_match", passed=True)
    """
    return RequestScopes(contexts)
