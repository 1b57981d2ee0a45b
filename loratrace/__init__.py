"""loratrace: which LoRA adapter served this answer, and is it worse than the base model it replaced?

\b
    import loratrace
    loratrace.instrument()
    with loratrace.context(route="billing", cohort="enterprise"):
        model.generate(**inputs)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loratrace._lazy import lazy_attributes
from loratrace._version import __version__

if TYPE_CHECKING:
    from loratrace._feedback import record_feedback
    from loratrace._setup import Instrumentation, force_flush, instrument, uninstrument
    from loratrace.runtime.annotations import mark_fallback, record_eval, record_schema_attempt
    from loratrace.runtime.release_scope import context
    from loratrace.runtime.request_scopes import RequestScopes, request_scopes

__all__ = [
    "Instrumentation",
    "RequestScopes",
    "__version__",
    "context",
    "force_flush",
    "instrument",
    "mark_fallback",
    "record_eval",
    "record_feedback",
    "record_schema_attempt",
    "request_scopes",
    "uninstrument",
]

# The serving API loads the OpenTelemetry SDK (over 0.3 s); resolving it on first use keeps the command line's
# read-only commands (``loratrace query``) and ``import loratrace.semconv`` from paying for it.
_HOMES = {
    "Instrumentation": "loratrace._setup",
    "RequestScopes": "loratrace.runtime.request_scopes",
    "request_scopes": "loratrace.runtime.request_scopes",
    "context": "loratrace.runtime.release_scope",
    "force_flush": "loratrace._setup",
    "instrument": "loratrace._setup",
    "mark_fallback": "loratrace.runtime.annotations",
    "record_eval": "loratrace.runtime.annotations",
    "record_feedback": "loratrace._feedback",
    "record_schema_attempt": "loratrace.runtime.annotations",
    "uninstrument": "loratrace._setup",
}


__getattr__, __dir__ = lazy_attributes(__name__, _HOMES, globals(), __all__)
