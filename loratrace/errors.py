"""Exceptions and warnings loratrace raises.

LoratraceError
├── ConfigurationError   a bad argument or environment value; the message names it and says what to pass
├── StoreError           the store folder is missing, unreadable or not a loratrace store
│   └── QueryError       SQL that DuckDB rejected; lists the tables or columns that exist
└── CollectorError       the collector could not start (port taken, bad TLS files, missing token)

LoratraceWarning         misuse that loratrace tolerates so it never breaks serving code
"""

from __future__ import annotations


class LoratraceError(Exception):
    """Base class of every error loratrace raises on purpose."""


class ConfigurationError(LoratraceError, ValueError):
    """A bad argument or environment value."""


class StoreError(LoratraceError):
    """The store folder is missing, unreadable or not a loratrace store."""


class QueryError(StoreError):
    """SQL the store could not run."""


class CollectorError(LoratraceError):
    """The collector could not start or keep serving."""


class LoratraceWarning(UserWarning):
    """Tolerated misuse: loratrace carries on, and says what to change."""
