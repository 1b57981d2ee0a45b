"""The incident query that reproduces each alert's evidence, by name and parameters (``loratrace query NAME``).

The queries live in ``loratrace/queries/`` (one ``.sql`` file each, named parameters bound by DuckDB). An alert
names the query and its parameters, never SQL text, so the evidence is re-run by the same reviewed file. The
window is the alert's own (``since`` / ``until`` as naive UTC ISO times, the store's convention).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

QUERY_FOR_METRIC: Final[Mapping[str, str]] = {
    "error_rate": "failing_traces",
    "timeout_rate": "failing_traces",
    "fallback_rate": "fallback_traces",
    "schema_retry_rate": "schema_retry_traces",
    "schema_invalid_rate": "schema_retry_traces",
    "duration_ms": "slowest_traces",
    "ttft_ms": "slowest_traces",
    "output_tokens": "slowest_traces",
}
"""Which query shows the generations behind a metric (evaluation metrics: ``eval_failures_by_cohort``)."""

EVAL_QUERY: Final = "eval_failures_by_cohort"
LATENCY_QUERY: Final = "slowest_traces"
FALLBACK_QUERY: Final = "fallback_traces"


def _eval_name(metric: str) -> str | None:
    if metric == "refusal_rate":
        return "refusal"
    prefix, sep, name = metric.partition(":")
    return name if sep and prefix in ("eval_pass", "eval_score") else None


def evidence_query(
    metric: str, *, adapter: str | None, since: datetime | None, until: datetime | None, store: str = "STORE"
) -> dict[str, Any]:
    """``{"name", "params", "command"}``: the query for a metric's evidence over a window, and its command line.

    ``adapter=None`` (the base model) leaves the adapter out; queries that need one then list every adapter.

    Examples
    --------
    >>> from datetime import datetime
    >>> evidence_query("fallback_rate", adapter="a1", since=datetime(2026, 12, 1, 10), until=None)["command"]
    'loratrace query fallback_traces --store STORE --param adapter=a1 --param since=2026-12-01T10:00:00'
    >>> evidence_query("eval_pass:quality", adapter="a1", since=None, until=datetime(2026, 12, 1))["params"]
    {'eval': 'quality', 'until': '2026-12-01T00:00:00'}
    """
    eval_name = _eval_name(metric)
    params: dict[str, object]
    if eval_name is not None:
        name, params = EVAL_QUERY, {"eval": eval_name}
    elif metric.startswith("slower_than_ms:"):
        name, params = LATENCY_QUERY, {"adapter": adapter}
    else:
        name, params = QUERY_FOR_METRIC.get(metric, "failing_traces"), {"adapter": adapter}
    params |= {"since": since, "until": until}
    kept = {k: v.isoformat() if isinstance(v, datetime) else str(v) for k, v in params.items() if v is not None}
    parts = ["loratrace", "query", name, "--store", store]
    for key, value in kept.items():
        parts += ["--param", f"{key}={value}"]
    return {"name": name, "params": kept, "command": shlex.join(parts)}
