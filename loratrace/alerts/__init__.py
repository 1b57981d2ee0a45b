"""Scheduled alert checks: rules, anytime-valid drift, rolling-window conditions, state, and sinks.

\b
    from loratrace.alerts import run_alert_check
    result = run_alert_check("./traces", "alerts.yaml")
    result.exit_code  # 0 quiet, 1 something firing
"""
