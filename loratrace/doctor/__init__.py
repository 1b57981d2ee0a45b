"""``loratrace doctor``: release-hygiene findings (missing metadata, confounded changes, unevaluated exposure, no
release evidence, silent swaps) from the traces alone, for the command line and for alert rules.

\b
    from loratrace.doctor import hygiene_findings
    for finding in hygiene_findings("./traces"):
        print(finding.severity, finding.summary, finding.evidence.query)
"""

from loratrace.doctor.checks import CHECKS, CheckName, Evidence, Finding, Severity, hygiene_findings

__all__ = ["CHECKS", "CheckName", "Evidence", "Finding", "Severity", "hygiene_findings"]
