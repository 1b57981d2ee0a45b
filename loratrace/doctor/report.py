"""Findings as a table for people or JSON for machines, and the ``--since`` / ``--until`` forms."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from typing import Literal

from loratrace.doctor.checks import Finding
from loratrace.errors import ConfigurationError

OutputFormat = Literal["table", "json"]
_AGO = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: str, *, flag: str) -> dt.timedelta:
    """``30m`` / ``1h`` / ``7d`` / ``2w`` as a positive timedelta."""
    match = _AGO.fullmatch(value.strip())
    if match is None or int(match.group(1)) == 0:
        msg = f"{flag} takes a positive duration such as 30m, 1h, 7d or 2w, got {value!r}"
        raise ConfigurationError(msg)
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_bound(value: str | None, *, flag: str, now: dt.datetime | None = None) -> dt.datetime | None:
    """``24h`` / ``30m`` / ``7d`` / ``2w`` before now, or an ISO 8601 time (UTC when no offset is given)."""
    if value is None:
        return None
    text = value.strip()
    if _AGO.fullmatch(text):
        return (now or dt.datetime.now(dt.timezone.utc)) - parse_duration(text, flag=flag)
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        msg = f"{flag} takes a duration before now (30m, 24h, 7d, 2w) or an ISO 8601 time, got {value!r}"
        raise ConfigurationError(msg) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.timezone.utc)


def render(findings: Sequence[Finding], output_format: OutputFormat) -> str:
    if output_format == "json":
        return json.dumps([finding.to_dict() for finding in findings], indent=2, default=str) + "\n"
    if not findings:
        return "no findings\n"
    lines = []
    for finding in findings:
        params = ", ".join(f"{k}={v}" for k, v in finding.evidence.params.items())
        lines += [
            f"{finding.severity.upper():7} {finding.check}: {finding.summary}",
            f"        fix: {finding.fix}",
            f"        evidence: loratrace/queries/{finding.evidence.query} ({params})",
            "",
        ]
    errors = sum(f.severity == "error" for f in findings)
    lines.append(f"{len(findings)} finding(s), {errors} at error severity")
    return "\n".join(lines) + "\n"
