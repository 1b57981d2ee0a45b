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
    return {k: v.isoformat() if isinstance(v, dt.datetime | dt.timedelta) else v for k, v in values.items()}


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


def _metadata_completeness(run: _Run) -> list[Finding]:
    evidence, rows = run.rows("hygiene_metadata_completeness.sql")
    findings = []
    for row in rows:
        name = row["field"]
        share = row["missing_share"]
        findings.append(
            Finding(
                check="metadata_completeness",
                severity="error" if name in _ERROR_FIELDS else "warning",
                subject={"service": row["service_name"], "route": row["route_name"], "field": name},
                summary=(
                    f"{share:.0%} of generations ({row['missing']} of {row['applicable']}) of service "
                    f"{row['service_name']!r} on route {row['route_name']!r} lack {name}"
                ),
                fix=_FIELD_FIXES[name],
                evidence=evidence,
                details={"missing": row["missing"], "applicable": row["applicable"], "missing_share": share},
            )
        )
    return findings


def _confounded_changes(run: _Run) -> list[Finding]:
    evidence, rows = run.rows("hygiene_confounded_changes.sql")
    return [
        Finding(
            check="confounded_changes",
            severity="error",
            subject={"route": row["route_name"], "adapter_id": row["adapter_id"]},
            summary=(
                f"on route {row['route_name']!r}, adapter id {row['adapter_id']} arrived "
                f"{row['adapter_first_seen']:%Y-%m-%d %H:%M} UTC together with "
                f"{', '.join(row['new_values'])}: a regression there has no clean owner, and drift verdicts on "
                "that window compare more than the adapter"
            ),
            fix=(
                "change one thing at a time on a route: roll out the new adapter before or after the other change, "
                "or compare paired on a golden-set replay (loratrace replay) with the other change held fixed"
            ),
            evidence=evidence,
            details={
                "adapter_first_seen": row["adapter_first_seen"],
                "other_first_seen": row["other_first_seen"],
                "also_changed": row["also_changed"],
                "new_values": row["new_values"],
            },
        )
        for row in rows
    ]


def _unevaluated_exposure(run: _Run) -> list[Finding]:
    evidence, rows = run.rows("hygiene_unevaluated_exposure.sql")
    findings = []
    for row in rows:
        none_replayed = row["replayed_examples"] == 0
        what = (
            "with no replayed example of that cohort"
            if none_replayed
            else f"with {row['replay_share']:.0%} of its replayed examples"
        )
        findings.append(
            Finding(
                check="unevaluated_exposure",
                severity="error" if none_replayed else "warning",
                subject={"adapter": row["adapter_name"], "adapter_id": row["adapter_id"], "cohort": row["cohort"]},
                summary=(
                    f"adapter {row['adapter_name']!r} ({row['adapter_id']}) serves cohort {row['cohort']!r} "
                    f"{row['traffic_share']:.0%} of its production traffic ({row['production_generations']} "
                    f"generations) {what}"
                ),
                fix=(
                    "add golden-set examples of this cohort (loratrace.context(cohort=..., example_id=...)) and "
                    "replay them through the adapter and the base, or route the cohort elsewhere until then"
                ),
                evidence=evidence,
                details={
                    "production_generations": row["production_generations"],
                    "traffic_share": row["traffic_share"],
                    "replayed_examples": row["replayed_examples"],
                    "replay_share": row["replay_share"],
                },
            )
        )
    return findings


def _no_release_evidence(run: _Run) -> list[Finding]:
    evidence, rows = run.rows("hygiene_no_release_evidence.sql")
    findings = []
    for row in rows:
        when = (
            f"its first replay came only at {row['first_replay']:%Y-%m-%d %H:%M} UTC"
            if row["first_replay"] is not None
            else "no replay of it was ever recorded"
        )
        findings.append(
            Finding(
                check="no_release_evidence",
                severity="error",
                subject={"adapter": row["adapter_name"], "adapter_id": row["adapter_id"]},
                summary=(
                    f"adapter {row['adapter_name']!r} ({row['adapter_id']}) served "
                    f"{row['generations_before_evidence']} production generations from "
                    f"{row['first_production']:%Y-%m-%d %H:%M} UTC before any release evidence: {when}"
                ),
                fix=(
                    "replay the golden set through this adapter id and the base before it takes traffic "
                    "(loratrace replay), and gate the rollout on it (loratrace gate)"
                ),
                evidence=evidence,
                details={
                    "first_production": row["first_production"],
                    "first_replay": row["first_replay"],
                    "generations_before_evidence": row["generations_before_evidence"],
                },
            )
        )
    return findings


def _silent_swaps(run: _Run) -> list[Finding]:
    evidence, rows = run.rows("hygiene_silent_swaps.sql")
    return [
        Finding(
            check="silent_swaps",
            severity="error",
            subject={"adapter": row["adapter_name"], "adapter_id": row["adapter_id"]},
            summary=(
                f"adapter name {row['adapter_name']!r} serves new weights since "
                f"{row['first_seen']:%Y-%m-%d %H:%M} UTC (id {row['adapter_id']}, previously "
                f"{row['previous_id']}; {row['production_generations']} generations) and the new id was never replayed"
            ),
            fix=(
                "give new weights a new adapter name or version, and replay the golden set through the new id "
                "before it serves; compare it with the previous id (loratrace drift --adapter NAME)"
            ),
            evidence=evidence,
            details={"previous_id": row["previous_id"], "first_seen": row["first_seen"]},
        )
        for row in rows
    ]


_RUNNERS: Final[dict[CheckName, Callable[[_Run], list[Finding]]]] = {
    "metadata_completeness": _metadata_completeness,
    "confounded_changes": _confounded_changes,
    "unevaluated_exposure": _unevaluated_exposure,
    "no_release_evidence": _no_release_evidence,
    "silent_swaps": _silent_swaps,
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
    unknown = [name for name in chosen if name not in _RUNNERS]
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
    findings = [finding for name in chosen for finding in _RUNNERS[name](run)]
    return sorted(findings, key=lambda f: (f.severity != "error", CHECKS.index(f.check), f.key))
