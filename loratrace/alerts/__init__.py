"""Scheduled alert checks: rules, anytime-valid drift, rolling-window conditions, state, and sinks.

\b
    from loratrace.alerts import run_alert_check
    result = run_alert_check("./traces", "alerts.yaml")
    result.exit_code  # 0 quiet, 1 something firing
"""

from loratrace.alerts.check import CheckResult, run_alert_check
from loratrace.alerts.rules import RulesError, RuleSet, load_rules

__all__ = ["CheckResult", "RuleSet", "RulesError", "load_rules", "run_alert_check"]
