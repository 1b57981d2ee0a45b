"""The incident query that reproduces each alert's evidence, by name and parameters (``loratrace query NAME``).

The queries live in ``loratrace/queries/`` (one ``.sql`` file each, named parameters bound by DuckDB). An alert
names the query and the parameters, never SQL text, so the evidence is re-run by the same reviewed file.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any, Final

QUERY_FOR: Final[Mapping[str, str]] = {
    "drift": "eval_failures_by_cohort",
    "spike": "failing_traces",
    "slo:errors": "failing_traces",
    "slo:latency": "slowest_traces",
    "fallback": "fallback_traces",
}
"""Which query shows the evidence of each rule type."""


def evidence_query(kind: str, params: Mapping[str, Any], *, store: str = "STORE") -> dict[str, Any]:
    """``{"name", "params", "command"}``: the query, its parameters (None dropped) and the command line.

    Examples
    --------
    >>> evidence_query("fallback", {"adapter": "a1", "cohort": None, "since": "2026-12-01T10:00:00"})["command"]
    'loratrace query fallback_traces --store STORE --param adapter=a1 --param since=2026-12-01T10:00:00'
    """
    name = QUERY_FOR[kind]
    kept = {k: str(v) for k, v in params.items() if v is not None}
    parts = ["loratrace", "query", name, "--store", store]
    for key, value in kept.items():
        parts += ["--param", f"{key}={value}"]
    return {"name": name, "params": kept, "command": shlex.join(parts)}
