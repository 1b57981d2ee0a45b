"""TaskCompletion: check agent traces against their route's workflow, one verdict per trace.

Every span of an agent trace can succeed while the workflow misses its goal (a required step skipped, steps out of
order, a forbidden shortcut taken, a final answer that fails its check). This reads the traces of the workflows'
routes from a store and judges each one as a whole.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypedDict

from loratrace import semconv
from loratrace.store.rows import stream_rows
from loratrace.tasks.workflows import Workflow

if TYPE_CHECKING:
    from typing_extensions import Unpack

Outcome = Literal["completed", "forbidden_shortcut", "missing_step", "out_of_order", "final_answer_failed"]
# the label of a trace failing several ways: the most serious first
_SEVERITY_ORDER: Final[tuple[Outcome, ...]] = (
    "forbidden_shortcut",
    "missing_step",
    "out_of_order",
    "final_answer_failed",
)
_OUTPUT_KEYS: Final = (semconv.OUTPUT_VALUE, semconv.GEN_AI_OUTPUT_MESSAGES)


@dataclass(frozen=True)
class TraceSpan:
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    status_code: str
    operation_name: str | None
    finish_reason: str | None
    route: str | None
    attributes: Mapping[str, Any]

    @property
    def tool_name(self) -> str | None:
        value = self.attributes.get(semconv.GEN_AI_TOOL_NAME)
        return str(value) if value is not None else None

    def is_step(self, step: str) -> bool:
        return step in (self.tool_name, self.name) or self.name == f"{semconv.OPERATION_EXECUTE_TOOL} {step}"

    @property
    def is_generation(self) -> bool:
        return self.operation_name in semconv.GENERATION_OPERATIONS


@dataclass(frozen=True)
class TaskResult:
    """The verdict on one trace."""

    trace_id: str
    workflow: str
    passed: bool
    label: Outcome
    explanation: str
    target: TraceSpan
    """The span the result is about: the trace's last generation, else its root span."""


def _time_filter(since: dt.datetime | None, until: dt.datetime | None) -> dict[str, Any]:
    def naive(value: dt.datetime | None) -> dt.datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    return {"since": naive(since), "until": naive(until)}


# one statement: the routed traces (a narrow pass over three columns) joined to every span they hold, in trace
# order, so the traces stream one after another however many there are
_TASK_SPANS_SQL: Final = (
    "WITH routed AS (SELECT DISTINCT trace_id FROM spans WHERE route_name IN (SELECT unnest($routes)) "
    "AND ($since::TIMESTAMP IS NULL OR start_time >= $since::TIMESTAMP) "
    "AND ($until::TIMESTAMP IS NULL OR start_time < $until::TIMESTAMP) "
    "AND (NOT $skip_evaluated OR trace_id NOT IN (SELECT trace_id FROM evals WHERE name = $evaluation))) "
    "SELECT trace_id, span_id, parent_span_id, name, start_time_unix_nano, end_time_unix_nano, status_code, "
    "operation_name, finish_reason, route_name, attributes_json FROM spans "
    "WHERE trace_id IN (SELECT trace_id FROM routed) AND name <> $feedback_span "
    "ORDER BY trace_id, start_time_unix_nano, span_id"
)
# the evaluation results the final-answer checks read, in the same trace order (span events only); an evaluation
# sits on the span it judges, or on an ``evaluation <name>`` child span of it (loratrace.record_eval after the
# generation ended), which the span stream resolves
_TASK_EVALS_SQL: Final = (
    "SELECT trace_id, span_id, name, passed FROM evals WHERE name IN (SELECT unnest($names)) ORDER BY trace_id"
)
_EVALUATION_OPERATION: Final = "evaluation"


class TraceSelection(TypedDict, total=False):
    """Which traces :func:`stream_traces` (and the task verdicts built on it) read: ``since`` and ``until``
    bound the time range (None or absent: open); ``skip_evaluated`` (true unless given) leaves out the traces
    already judged."""

    since: dt.datetime | None
    until: dt.datetime | None
    skip_evaluated: bool


def stream_traces(
    store: str | os.PathLike[str],
    routes: Sequence[str],
    eval_names: Iterable[str] = (),
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    skip_evaluated: bool = True,
) -> Iterator[tuple[str, list[TraceSpan], dict[tuple[str, str, str], bool]]]:
    """Every trace touching ``routes`` in the time range (those already judged left out by default), in trace id
    order: its spans (evaluation and feedback spans left out) and ``{(trace id, judged span id, evaluation name):
    passed}`` for ``eval_names`` (a failure wins over a pass).

    The store is read once, streamed: memory holds one trace (and the evaluation rows not yet reached), whatever
    the store's size.
    """
    spans = stream_rows(
        store,
        _TASK_SPANS_SQL,
        {
            "routes": list(routes),
            **_time_filter(since, until),
            "skip_evaluated": skip_evaluated,
            "evaluation": semconv.TASK_COMPLETION_EVALUATION,
            "feedback_span": semconv.FEEDBACK_SPAN,
        },
    )
    wanted = sorted(set(eval_names))
    results = stream_rows(store, _TASK_EVALS_SQL, {"names": wanted}) if wanted else iter(())
    pending = next(results, None)
    for trace_id, rows in itertools.groupby(spans, key=lambda row: row[0]):
        trace: list[TraceSpan] = []
        judged_by: dict[str, str | None] = {}  # an evaluation span -> the span it judges
        for _, span_id, parent, name, start, end, status, operation, finish, route, attributes in rows:
            if operation == _EVALUATION_OPERATION:
                judged_by[span_id] = parent
                continue
            attrs = json.loads(attributes or "{}")
            trace.append(TraceSpan(span_id, parent, name, start, end, status, operation, finish, route, attrs))
        evals: dict[tuple[str, str, str], bool] = {}
        while pending is not None and pending[0] <= trace_id:
            result_trace, span_id, name, passed = pending
            if result_trace == trace_id:
                key = (trace_id, judged_by.get(span_id) or span_id, name)
                evals[key] = evals.get(key, True) and bool(passed)
            pending = next(results, None)
        yield trace_id, trace, evals


def _route_of(spans: Sequence[TraceSpan]) -> str | None:
    for span in spans:
        if span.is_generation and span.route is not None:
            return span.route
    return next((span.route for span in spans if span.route is not None), None)


def _first_index(steps: Sequence[TraceSpan], step: str) -> int | None:
    return next((i for i, span in enumerate(steps) if span.is_step(step)), None)


def _final_answer_problems(
    workflow: Workflow, final: TraceSpan | None, trace_id: str, evals: Mapping[tuple[str, str, str], bool]
) -> list[str]:
    check = workflow.final_answer
    if check.eval is None and not check.finish_reasons and check.output_matches is None:
        return []
    if final is None:
        return ["no generation produced a final answer"]
    problems = []
    if check.eval is not None:
        passed = evals.get((trace_id, final.span_id, check.eval))
        if passed is None:
            problems.append(f"the final answer has no {check.eval!r} evaluation")
        elif not passed:
            problems.append(f"the final answer failed its {check.eval!r} evaluation")
    if check.finish_reasons and final.finish_reason not in check.finish_reasons:
        problems.append(
            f"the final answer finished with {final.finish_reason!r}, not {' or '.join(check.finish_reasons)}"
        )
    if check.output_matches is not None:
        output = next((final.attributes[key] for key in _OUTPUT_KEYS if key in final.attributes), None)
        if output is None:
            problems.append(
                "the final answer's text was not captured (set OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true "
                "to check output_matches)"
            )
        elif not check.output_matches.search(str(output)):
            problems.append(f"the final answer does not match {check.output_matches.pattern!r}")
    return problems


def judge(
    trace_id: str, spans: Sequence[TraceSpan], workflow: Workflow, evals: Mapping[tuple[str, str, str], bool]
) -> TaskResult:
    """The verdict on one trace against its workflow."""
    ordered = sorted(spans, key=lambda span: (span.start_ns, span.end_ns))
    problems: dict[Outcome, list[str]] = defaultdict(list)
    for rule in workflow.forbidden:
        for index, span in enumerate(ordered):
            if not span.is_step(rule.step):
                continue
            allowed = any(earlier.is_step(step) for earlier in ordered[:index] for step in rule.unless_after)
            if not allowed:
                reason = f"without {' or '.join(rule.unless_after)} before it" if rule.unless_after else "(forbidden)"
                problems["forbidden_shortcut"].append(f"{rule.step} ran {reason}")
                break
    positions = {step: _first_index(ordered, step) for step in workflow.steps}
    missing = [step for step, position in positions.items() if position is None]
    if missing:
        problems["missing_step"].append(f"required step(s) never ran: {', '.join(missing)}")
    if workflow.ordered:
        present = [(positions[step], step) for step in workflow.steps if positions[step] is not None]
        done = [step for _, step in sorted(present)]
        expected = [step for step in workflow.steps if positions[step] is not None]
        if done != expected:
            problems["out_of_order"].append(f"steps ran as {' > '.join(done)}, expected {' > '.join(expected)}")
    generations = [span for span in ordered if span.is_generation]
    final = max(generations, key=lambda span: (span.end_ns, span.start_ns)) if generations else None
    problems["final_answer_failed"].extend(_final_answer_problems(workflow, final, trace_id, evals))
    failed = [outcome for outcome in _SEVERITY_ORDER if problems.get(outcome)]
    target = final or min(ordered, key=lambda span: (span.parent_span_id is not None, span.start_ns))
    if not failed:
        return TaskResult(trace_id, workflow.name, True, "completed", "every required step ran in order", target)
    explanation = "; ".join(text for outcome in failed for text in problems[outcome])
    return TaskResult(trace_id, workflow.name, False, failed[0], explanation, target)


def iter_task_results(
    store: str | os.PathLike[str],
    workflows: Sequence[Workflow],
    *,
    batch_traces: int = 20_000,
    **selection: Unpack[TraceSelection],
) -> Iterator[list[TaskResult]]:
    """The verdicts batch by batch of ``batch_traces`` traces, from one streamed pass over the store, so a large
    store is judged (and its results sent) in bounded memory. ``since``, ``until``, ``skip_evaluated``: see
    :class:`TraceSelection`."""
    by_route = {workflow.route: workflow for workflow in workflows}
    eval_names = {w.final_answer.eval for w in workflows if w.final_answer.eval is not None}
    traces = stream_traces(store, sorted(by_route), eval_names, **selection)
    results: list[TaskResult] = []
    seen = 0
    for trace_id, spans, evals in traces:
        route = _route_of(spans)
        workflow = by_route.get(route) if route is not None else None
        if workflow is not None:
            results.append(judge(trace_id, spans, workflow, evals))
        seen += 1
        if seen == batch_traces:
            yield results
            results, seen = [], 0
    if seen:
        yield results


def evaluate_tasks(
    store: str | os.PathLike[str], workflows: Sequence[Workflow], **selection: Unpack[TraceSelection]
) -> list[TaskResult]:
    """One ``TaskResult`` per trace on a workflow's route (traces already judged are skipped by default; see
    :class:`TraceSelection`)."""
    return [result for batch in iter_task_results(store, workflows, **selection) for result in batch]
