"""Findings as a table for people or JSON for machines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

from loratrace.doctor.checks import Finding

OutputFormat = Literal["table", "json"]


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
