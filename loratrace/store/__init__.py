"""The span store: immutable Parquet segments and a DuckDB catalog of views over them.

\b
    from loratrace.store import open_store, query, scan_spans
    query("./traces", "SELECT adapter_name, count(*) AS n FROM spans GROUP BY 1")
    scan_spans("./traces").group_by("adapter_name").len().collect()
"""

from loratrace.store.catalog import ensure_store
from loratrace.store.readers import VIEWS, open_store, query, scan, scan_spans

__all__ = ["VIEWS", "ensure_store", "open_store", "query", "scan", "scan_spans"]
