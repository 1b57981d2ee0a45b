"""What each analysed metric is, defined once as SQL over the ``generations`` view's columns.

A metric's ``value_sql`` gives one number per row of its source relation — 1 or 0 for a rate, a number for a mean,
NULL when the row does not count for that metric (a generation without structured output has no schema-retry
value). The same text is evaluated locally through :func:`polars.sql_expr` and, on ClickHouse, inside the database
(``loratrace.sources``), so the two engines can never disagree about what a metric means.

Evaluation metrics come from the data: every ``gen_ai.evaluation.name`` found gives ``eval_pass:<name>`` (the share
of results with ``loratrace.evaluation.passed`` true) and ``eval_score:<name>`` (the mean score).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import polars as pl

from loratrace.analysis._typing import Direction, MetricKind, MetricSource

EVAL_PASS_PREFIX = "eval_pass:"
EVAL_SCORE_PREFIX = "eval_score:"
EVAL_PREFIXES = (EVAL_PASS_PREFIX, EVAL_SCORE_PREFIX)
FEEDBACK_PREFIX = "feedback:"
# feedback kinds that are good news; every other kind (thumbs_down, escalation, reopened...) is an unwanted outcome
_POSITIVE_FEEDBACK = ("thumbs_up", "accepted", "resolved", "positive", "helpful", "solved")


@dataclass(frozen=True)
class Metric:
    """One analysed quantity.

    Parameters
    ----------
    name
        The name rows and flags use (``error_rate``, ``eval_pass:json_valid``).
    kind
        ``rate`` (value 0/1) or ``mean``.
    source
        ``generations`` (one row per generation) or ``evals`` (one row per evaluation result).
    value_sql
        One SQL expression over the source's columns; NULL when the row does not count.
    direction
        Whether a higher value is better (pass rates) or worse (error rates, latency).
    eval_name
        For ``evals`` metrics, the ``gen_ai.evaluation.name`` the rows are filtered to.
    description
        One line for ``--help`` and docs.
    """

    name: str
    kind: MetricKind
    source: MetricSource
    value_sql: str
    direction: Direction
    eval_name: str | None = None
    description: str = ""

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher_is_better"

    def expr(self) -> pl.Expr:
        """The value as a Polars expression (Float64), from the same SQL text ClickHouse runs."""
        return pl.sql_expr(self.value_sql).cast(pl.Float64)


def _flag(condition: str) -> str:
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


BUILTIN: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "error_rate",
            "rate",
            "generations",
            _flag("error_type IS NOT NULL OR status_code = 'ERROR'"),
            "lower_is_better",
            description="share of generations that failed (error.type set or span status ERROR)",
        ),
        Metric(
            "timeout_rate",
            "rate",
            "generations",
            _flag("lower(coalesce(error_type, '')) LIKE '%timeout%' OR finish_reason = 'timeout'"),
            "lower_is_better",
            description="share of generations that timed out",
        ),
        Metric(
            "fallback_rate",
            "rate",
            "generations",
            _flag("coalesce(fallback, false)"),
            "lower_is_better",
            description="share of generations marked loratrace.fallback",
        ),
        Metric(
            "schema_retry_rate",
            "rate",
            "generations",
            f"CASE WHEN schema_attempts IS NULL THEN NULL ELSE {_flag('schema_attempts > 1')} END",
            "lower_is_better",
            description="share of structured-output generations that were a retry (schema attempts above 1)",
        ),
        Metric(
            "schema_invalid_rate",
            "rate",
            "generations",
            "CASE WHEN schema_valid IS NULL THEN NULL WHEN schema_valid THEN 0 ELSE 1 END",
            "lower_is_better",
            description="share of structured-output generations whose answer failed validation",
        ),
        Metric(
            "refusal_rate",
            "rate",
            "generations",
            _flag("finish_reason = 'content_filter'"),
            "lower_is_better",
            description="share of generations the engine ended as refused (finish reason content_filter)",
        ),
        Metric(
            "duration_ms",
            "mean",
            "generations",
            "duration_ns / 1000000.0",
            "lower_is_better",
            description="mean generation duration in milliseconds",
        ),
        Metric(
            "ttft_ms",
            "mean",
            "generations",
            "ttft_ms",
            "lower_is_better",
            description="mean time to first token in milliseconds",
        ),
        Metric(
            "output_tokens",
            "mean",
            "generations",
            "CAST(output_tokens AS DOUBLE)",
            "lower_is_better",
            description="mean output tokens per generation (a cost proxy)",
        ),
    )
}
"""The metrics every store has; evaluation metrics are added per evaluation name found."""

DEFAULT_METRICS: tuple[str, ...] = (
    "error_rate",
    "timeout_rate",
    "fallback_rate",
    "schema_retry_rate",
    "schema_invalid_rate",
    "refusal_rate",
)
"""What ``drift`` reports when no ``--metric`` is given, besides every evaluation's pass rate."""


def eval_metrics(eval_name: str) -> tuple[Metric, Metric]:
    """``eval_pass:<name>`` and ``eval_score:<name>`` for one evaluation."""
    return (
        Metric(
            f"{EVAL_PASS_PREFIX}{eval_name}",
            "rate",
            "evals",
            "CASE WHEN passed IS NULL THEN NULL WHEN passed THEN 1 ELSE 0 END",
            "higher_is_better",
            eval_name=eval_name,
            description=f"share of `{eval_name}` evaluations that passed",
        ),
        Metric(
            f"{EVAL_SCORE_PREFIX}{eval_name}",
            "mean",
            "evals",
            "CAST(score AS DOUBLE)",
            "higher_is_better",
            eval_name=eval_name,
            description=f"mean `{eval_name}` score",
        ),
    )


def feedback_metric(kind: str) -> Metric:
    """``feedback:<kind>``: the share of generations that could have received that feedback and did.

    Reads the column of the same name that :func:`loratrace.analysis.feedback.with_feedback` adds to the generation
    rows: the number of such feedback on the generation, NULL when it could not have received any (golden-set
    replay, shadow traffic, a route where that kind of feedback is never collected).
    """
    column = f'"{FEEDBACK_PREFIX}{kind}"'
    positive = kind.lower().startswith(_POSITIVE_FEEDBACK)
    return Metric(
        f"{FEEDBACK_PREFIX}{kind}",
        "rate",
        "generations",
        f"CASE WHEN {column} IS NULL THEN NULL WHEN {column} > 0 THEN 1 ELSE 0 END",
        "higher_is_better" if positive else "lower_is_better",
        description=f"share of the generations that could have received `{kind}` feedback and did",
    )


def available(eval_names: Iterable[str] = (), feedback_kinds: Iterable[str] = ()) -> dict[str, Metric]:
    """Every metric a store with these evaluation names and feedback kinds offers."""
    out = dict(BUILTIN)
    for name in sorted(set(eval_names)):
        for metric in eval_metrics(name):
            out[metric.name] = metric
    for kind in sorted(set(feedback_kinds)):
        feedback = feedback_metric(kind)
        out[feedback.name] = feedback
    return out


def resolve(
    names: Sequence[str] | None, eval_names: Iterable[str] = (), feedback_kinds: Iterable[str] = ()
) -> list[Metric]:
    """The metrics to analyse: the named ones, or the defaults plus every evaluation's pass rate and every
    feedback kind's rate.

    Raises
    ------
    ValueError
        For an unknown name, with the nearest known names.
    """
    found = set(eval_names)
    offered = available(found, feedback_kinds)
    if not names:
        defaults = [offered[n] for n in DEFAULT_METRICS]
        return defaults + [m for n, m in offered.items() if n.startswith((EVAL_PASS_PREFIX, FEEDBACK_PREFIX))]
    out = []
    for name in names:
        if name not in offered:
            near = difflib.get_close_matches(name, list(offered), n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            msg = f"unknown metric {name!r}{hint} (metrics in this store: {', '.join(offered)})"
            raise ValueError(msg)
        out.append(offered[name])
    return out
