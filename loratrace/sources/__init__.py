"""Where the analyses read spans: the local store, or ClickHouse's ``otel_traces``.

\b
    from loratrace.sources import open_source
    source = open_source("chdb:///var/lib/loratrace-ch?table=otel_traces")  # or a store folder, or clickhouse://
    source.cells(metrics, window=timedelta(hours=1))
"""

from __future__ import annotations

import os

from loratrace.sources.base import EVERYTHING, Present, Selection, Source
from loratrace.sources.local import LocalStore

__all__ = [
    "EVERYTHING",
    "ClickHouseSource",
    "LocalStore",
    "Present",
    "Selection",
    "Source",
    "as_source",
    "open_source",
]

_URL_SCHEMES = ("clickhouse://", "clickhouses://", "chdb://")


def open_source(spec: str | os.PathLike[str], *, local: bool | None = None) -> Source:
    """A source from a store folder or a ClickHouse URL (``local``: force one reading, None: decide by scheme)."""
    from loratrace.errors import StoreError
    from loratrace.store.readers import _store_path

    text = os.fspath(spec)
    is_url = text.startswith(_URL_SCHEMES)
    if local is False or (local is None and is_url):
        from loratrace.sources.clickhouse import ClickHouseSource

        if not is_url:
            from loratrace.sources.clickhouse import redact

            msg = f"a ClickHouse source is clickhouse://…, clickhouses://… or chdb://PATH, got {redact(text)!r}"
            raise StoreError(msg)
        return ClickHouseSource(text)
    _store_path(text)  # a clear error now for a folder that is not a store
    return LocalStore(text)


def as_source(store: str | os.PathLike[str] | Source) -> Source:
    """``store`` as a source: a folder is a :class:`LocalStore` (checked when read), a source stays itself."""
    return LocalStore(store) if isinstance(store, (str, os.PathLike)) else store


def __getattr__(name: str) -> object:
    if name == "ClickHouseSource":  # imported on use: clickhouse-connect / chdb are an optional extra
        from loratrace.sources.clickhouse import ClickHouseSource

        return ClickHouseSource
    msg = f"module 'loratrace.sources' has no attribute {name!r}"
    raise AttributeError(msg)
