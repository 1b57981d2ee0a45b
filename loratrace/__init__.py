"""loratrace: which LoRA adapter served this answer, and is it worse than the base model it replaced?

\b
    import loratrace
    loratrace.instrument()
    with loratrace.context(route="billing", cohort="enterprise"):
        model.generate(**inputs)
"""

from loratrace._annotations import mark_fallback, record_eval, record_schema_attempt
from loratrace._feedback import record_feedback
from loratrace._release_context import context
from loratrace._request_scopes import RequestScopes, request_scopes
from loratrace._setup import Instrumentation, force_flush, instrument, uninstrument
from loratrace._version import __version__

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
