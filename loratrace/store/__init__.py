"""The span store: immutable Parquet segments and a DuckDB catalog of views over them.

\b
    from loratrace.store import open_store, query, scan_spans
    query("./traces", "SELECT adapter_name, count(*) AS n FROM spans GROUP BY 1")
    scan_spans("./traces").group_by("adapter_name").len().collect()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loratrace._lazy import lazy_attributes

if TYPE_CHECKING:
    from loratrace.store.catalog import ensure_store
    from loratrace.store.readers import VIEWS, open_store, query, scan, scan_spans

__all__ = ["VIEWS", "ensure_store", "open_store", "query", "scan", "scan_spans"]

# Resolved on first use: a reader that needs DuckDB alone (``loratrace query``) must not pay for Polars.
_HOMES = {
    "VIEWS": "loratrace.store.readers",
    "ensure_store": "loratrace.store.catalog",
    "open_store": "loratrace.store.rows",
    "query": "loratrace.store.readers",
    "scan": "loratrace.store.readers",
    "scan_spans": "loratrace.store.readers",
}


__getattr__, __dir__ = lazy_attributes(__name__, _HOMES, globals(), __all__)
