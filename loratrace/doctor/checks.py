"""Release-hygiene checks: the common adapter-release mistakes, found from traces alone.

Each check runs one query file of ``loratrace/queries/`` and turns its rows into findings. A finding carries a
severity, what it is about, the evidence (the query file and the exact parameters it ran with) and how to fix it.
The same function serves ``loratrace doctor`` and alert rules (``hygiene_findings``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from loratrace.doctor import queries
from loratrace.errors import ConfigurationError
from loratrace.store import query

if TYPE_CHECKING:
    from loratrace.sources.base import Source

Severity = Literal["error", "warning"]
CheckName = Literal[
    "metadata_completeness", "confounded_changes", "unevaluated_exposure", "no_release_evidence", "silent_swaps"
]
CHECKS: Final[tuple[CheckName, ...]] = (
    "metadata_completeness",
    "confounded_changes",
    "unevaluated_exposure",
    "no_release_evidence",
    "silent_swaps",
)

# without an adapter's identity or id no analysis can attribute an answer; the other fields weaken it
_ERROR_FIELDS: Final = frozenset({"adapter_identity", "adapter_id"})
_FIELD_FIXES: Final[dict[str, str]] = {
    "adapter_identity": (
        "these generations name no adapter and no variant: they come from an instrumentation that logs only the "
        "base model. Serve them through loratrace.instrument() (transformers + PEFT, vLLM) or set "
        "loratrace.adapter.name / loratrace.variant on the spans yourself"
    ),
    "adapter_id": (
        "set loratrace.adapter.id (loratrace's instrumentors hash the adapter's weights; a custom exporter must "
        "send the same sha256 id) so that new weights under an old name are told apart"
    ),
    "adapter_rank": "set loratrace.adapter.rank (the LoRA r) on adapter generations",
    "adapter_alpha": "set loratrace.adapter.alpha (lora_alpha) on adapter generations",
    "adapter_merged": "set loratrace.adapter.merged (true when the weights were merged into the base)",
    "dataset_version": "pass loratrace.context(dataset_version=...) with the adapter's training data version",
    "prompt_version": "pass loratrace.context(prompt_version=...) where the prompt template is chosen",
    "route_name": "pass loratrace.context(route=...) where the serving route is chosen",
}


@dataclass(frozen=True)
class Evidence:
    """The query a finding came from and the parameters it ran with (re-run it to see the rows)."""

    query: str
    params: Mapping[str, Any]


@dataclass(frozen=True)
class Finding:
    """One release-hygiene finding."""

    check: CheckName
    severity: Severity
    subject: Mapping[str, Any]
    """What it is about: service and route, adapter and cohort..."""
    summary: str
    fix: str
    evidence: Evidence
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A stable identity, e.g. for alert de-duplication: the check and its subject."""
        parts = ",".join(f"{name}={self.subject[name]}" for name in sorted(self.subject))
        return f"{self.check}:{parts}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["evidence"] = {"query": self.evidence.query, "params": _jsonable(dict(self.evidence.params))}
        data["details"] = _jsonable(dict(self.details))
        data["subject"] = _jsonable(dict(self.subject))
        data["key"] = self.key
        return data


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    # a timedelta has no isoformat: JSON gets its length in seconds
    return {
        k: v.isoformat() if isinstance(v, dt.datetime) else v.total_seconds() if isinstance(v, dt.timedelta) else v
        for k, v in values.items()
    }


@dataclass(frozen=True)
class _Run:
    store: str | os.PathLike[str] | Source
    params: Mapping[str, Any]

    def rows(self, file: str) -> tuple[Evidence, list[dict[str, Any]]]:
        loaded = queries.load(file)
        bound = loaded.bind(dict(self.params))
        if isinstance(self.store, (str, os.PathLike)):
            frame = query(self.store, loaded.sql, bound)
        else:  # the same file where the spans are (on ClickHouse, translated by sqlglot)
            frame = self.store.analysis_query(loaded.sql, bound)
        return Evidence(file, _jsonable(bound)), frame.to_dicts()


Row = dict[str, Any]


@dataclass(frozen=True)
class _Check:
    """How one check turns the rows of its query into findings: one finding per row."""

    name: CheckName
    query: str
    subject: Mapping[str, str]
    """The finding's subject: its key -> the row's column."""
    details: tuple[str, ...]
    """The row's columns copied into the finding's details."""
    summary: Callable[[Row], str]
    fix: Callable[[Row], str]
    severity: Callable[[Row], Severity] = lambda _row: "error"

    def findings(self, run: _Run) -> list[Finding]:
        evidence, rows = run.rows(self.query)
        return [
            Finding(
                check=self.name,
                severity=self.severity(row),
                subject={key: row[column] for key, column in self.subject.items()},
                summary=self.summary(row),
                fix=self.fix(row),
                evidence=evidence,
                details={column: row[column] for column in self.details},
            )
            for row in rows
        ]


def _always(fix: str) -> Callable[[Row], str]:
    return lambda _row: fix


def _metadata_summary(row: Row) -> str:
    return (
        f"{row['missing_share']:.0%} of generations ({row['missing']} of {row['applicable']}) of service "
        f"{row['service_name']!r} on route {row['route_name']!r} lack {row['field']}"
    )


def _confounded_summary(row: Row) -> str:
    return (
        f"on route {row['route_name']!r}, adapter id {row['adapter_id']} arrived "
        f"{row['adapter_first_seen']:%Y-%m-%d %H:%M} UTC together with "
        f"{', '.join(row['new_values'])}: a regression there has no clean owner, and drift verdicts on "
        "that window compare more than the adapter"
    )


def _unevaluated_summary(row: Row) -> str:
    what = (
        "with no replayed example of that cohort"
        if row["replayed_examples"] == 0
        else f"with {row['replay_share']:.0%} of its replayed examples"
    )
    return (
        f"adapter {row['adapter_name']!r} ({row['adapter_id']}) serves cohort {row['cohort']!r} "
        f"{row['traffic_share']:.0%} of its production traffic ({row['production_generations']} "
        f"generations) {what}"
    )


def _no_release_evidence_summary(row: Row) -> str:
    when = (
        f"its first replay came only at {row['first_replay']:%Y-%m-%d %H:%M} UTC"
        if row["first_replay"] is not None
        else "no replay of it was ever recorded"
    )
    return (
        f"adapter {row['adapter_name']!r} ({row['adapter_id']}) served "
        f"{row['generations_before_evidence']} production generations from "
        f"{row['first_production']:%Y-%m-%d %H:%M} UTC before any release evidence: {when}"
    )


def _silent_swap_summary(row: Row) -> str:
    return (
        f"adapter name {row['adapter_name']!r} serves new weights since "
        f"{row['first_seen']:%Y-%m-%d %H:%M} UTC (id {row['adapter_id']}, previously "
        f"{row['previous_id']}; {row['production_generations']} generations) and the new id was never replayed"
    )


_ADAPTER: Final = {"adapter": "adapter_name", "adapter_id": "adapter_id"}
_CHECK_SPECS: Final[dict[CheckName, _Check]] = {
    check.name: check
    for check in (
        _Check(
            name="metadata_completeness",
            query="hygiene_metadata_completeness.sql",
            subject={"service": "service_name", "route": "route_name", "field": "field"},
            details=("missing", "applicable", "missing_share"),
            summary=_metadata_summary,
            fix=lambda row: _FIELD_FIXES[row["field"]],
            severity=lambda row: "error" if row["field"] in _ERROR_FIELDS else "warning",
        ),
        _Check(
            name="confounded_changes",
            query="hygiene_confounded_changes.sql",
            subject={"route": "route_name", "adapter_id": "adapter_id"},
            details=("adapter_first_seen", "other_first_seen", "also_changed", "new_values"),
            summary=_confounded_summary,
            fix=_always(
                "change one thing at a time on a route: roll out the new adapter before or after the other change, "
                "or compare paired on a golden-set replay (loratrace replay) with the other change held fixed"
            ),
        ),
        _Check(
            name="unevaluated_exposure",
            query="hygiene_unevaluated_exposure.sql",
            subject={**_ADAPTER, "cohort": "cohort"},
            details=("production_generations", "traffic_share", "replayed_examples", "replay_share"),
            summary=_unevaluated_summary,
            fix=_always(
                "add golden-set examples of this cohort (loratrace.context(cohort=..., example_id=...)) and "
                "replay them through the adapter and the base, or route the cohort elsewhere until then"
            ),
            severity=lambda row: "error" if row["replayed_examples"] == 0 else "warning",
        ),
        _Check(
            name="no_release_evidence",
            query="hygiene_no_release_evidence.sql",
            subject=_ADAPTER,
            details=("first_production", "first_replay", "generations_before_evidence"),
            summary=_no_release_evidence_summary,
            fix=_always(
                "replay the golden set through this adapter id and the base before it takes traffic "
                "(loratrace replay), and gate the rollout on it (loratrace gate)"
            ),
        ),
        _Check(
            name="silent_swaps",
            query="hygiene_silent_swaps.sql",
            subject=_ADAPTER,
            details=("previous_id", "first_seen"),
            summary=_silent_swap_summary,
            fix=_always(
                "give new weights a new adapter name or version, and replay the golden set through the new id "
                "before it serves; compare it with the previous id (loratrace drift --adapter NAME)"
            ),
        ),
    )
}


def _utc_naive(value: dt.datetime | None, name: str) -> dt.datetime | None:
    # the store's times are UTC without a zone (TIMESTAMP); an aware time is converted, a naive one taken as UTC
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        msg = f"hygiene_findings({name}=...) takes a datetime, got {value!r}"
        raise ConfigurationError(msg)
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def hygiene_findings(
    store: str | os.PathLike[str] | Source,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    checks: Iterable[CheckName] | None = None,
    window: dt.timedelta = dt.timedelta(hours=1),
    min_replay_share_ratio: float = 0.25,
) -> list[Finding]:
    """Run the release-hygiene checks over a store; the findings, errors first.

    Parameters
    ----------
    store
        The store folder, or a :class:`~loratrace.sources.Source` (ClickHouse).
    since, until
        The production traffic to look at (UTC; an aware datetime is converted). Replays count from the whole
        store: evidence recorded before ``since`` is still evidence.
    checks
        A subset of ``CHECKS``; all by default.
    window
        Confounded changes: two changes on a route at most this far apart count as one change.
    min_replay_share_ratio
        Unevaluated exposure: a cohort whose share of an adapter's replayed examples is below this times its
        share of the adapter's traffic is flagged (a cohort with no replayed example always is).

    Returns
    -------
    list[Finding]
        Each with ``check``, ``severity`` ("error" | "warning"), ``subject``, ``summary``, ``fix``, ``evidence``
        (query file + parameters), ``details`` and a stable ``key``.

    \b
    Example::

        from loratrace.doctor import hygiene_findings
        firing = [f for f in hygiene_findings("./traces", checks=["silent_swaps"]) if f.severity == "error"]
    """
    chosen = tuple(CHECKS if checks is None else checks)
    unknown = [name for name in chosen if name not in _CHECK_SPECS]
    if unknown:
        msg = f"unknown hygiene check(s) {unknown!r}; choose from {', '.join(CHECKS)}"
        raise ConfigurationError(msg)
    if not isinstance(window, dt.timedelta) or window <= dt.timedelta(0):
        msg = f"hygiene_findings(window=...) takes a positive timedelta, got {window!r}"
        raise ConfigurationError(msg)
    if not 0 < min_replay_share_ratio <= 1:
        msg = f"hygiene_findings(min_replay_share_ratio=...) takes a number in (0, 1], got {min_replay_share_ratio!r}"
        raise ConfigurationError(msg)
    params = {
        "since": _utc_naive(since, "since"),
        "until": _utc_naive(until, "until"),
        "window_seconds": int(window.total_seconds()),
        "min_share_ratio": float(min_replay_share_ratio),
    }
    run = _Run(store, params)
    findings = [finding for name in chosen for finding in _CHECK_SPECS[name].findings(run)]
    return sorted(findings, key=lambda f: (f.severity != "error", CHECKS.index(f.check), f.key))
