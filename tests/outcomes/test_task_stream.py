"""``evaluate tasks`` reads the store in one streamed pass: agent traces sent through a real collector, their
evaluations on the final generation or on an ``evaluation <name>`` child span, interleaved with traces of other
routes whose evaluations must not leak into them, judged batch by batch."""

from __future__ import annotations

from opentelemetry import trace

from loratrace import semconv
from loratrace.tasks import evaluate_tasks, iter_task_results
from loratrace.tasks.workflows import FinalAnswer, Forbidden, Workflow

from .spans import Traffic, wait_for_rows

WORKFLOW = Workflow(
    name="refund",
    route="refunds",
    steps=("lookup_order", "issue_refund"),
    forbidden=(Forbidden("issue_refund", ("check_escalation_policy",)),),
    final_answer=FinalAnswer(eval="answer_grounded"),
)
ROUTED = {semconv.ROUTE_NAME: "refunds", semconv.GEN_AI_OPERATION_NAME: "chat"}


def _result(span, passed: bool) -> None:
    span.add_event(
        semconv.GEN_AI_EVALUATION_RESULT_EVENT,
        {semconv.GEN_AI_EVALUATION_NAME: "answer_grounded", semconv.EVALUATION_PASSED: passed},
    )


def _agent(tracer, steps: list[str], *, grounded: bool, as_child: bool, route: dict) -> str:
    with tracer.start_as_current_span("invoke_agent refund_bot") as root:
        with tracer.start_as_current_span("chat plan", attributes=route):
            pass
        for step in steps:
            tool = {semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_EXECUTE_TOOL, semconv.GEN_AI_TOOL_NAME: step}
            with tracer.start_as_current_span(f"execute_tool {step}", attributes=tool):
                pass
        with tracer.start_as_current_span("chat answer", attributes=route) as final:
            if not as_child:
                _result(final, grounded)
        if as_child:  # loratrace.record_eval's shape after the answer ended: a child span holding the event
            context = trace.set_span_in_context(final)
            with tracer.start_as_current_span(
                "evaluation answer_grounded", context=context, attributes={semconv.GEN_AI_OPERATION_NAME: "evaluation"}
            ) as evaluation:
                _result(evaluation, grounded)
        return format(root.get_span_context().trace_id, "032x")


def test_one_streamed_pass_judges_every_routed_trace_with_its_own_evaluations(collector):
    traffic = Traffic(collector.http)
    tracer = traffic.sender.tracer_provider.get_tracer("agent")
    full = ["lookup_order", "check_escalation_policy", "issue_refund"]
    expected = {
        _agent(tracer, full, grounded=True, as_child=False, route=ROUTED): "completed",
        _agent(tracer, full, grounded=False, as_child=True, route=ROUTED): "final_answer_failed",
        _agent(tracer, full, grounded=True, as_child=True, route=ROUTED): "completed",
        _agent(tracer, ["check_escalation_policy", "issue_refund"], grounded=True, as_child=False, route=ROUTED): (
            "missing_step"
        ),
        _agent(tracer, ["lookup_order", "issue_refund"], grounded=True, as_child=False, route=ROUTED): (
            "forbidden_shortcut"
        ),
    }
    # traces of another route with failed evaluations, their ids anywhere among the routed ones
    other = {**ROUTED, semconv.ROUTE_NAME: "chat"}
    for _ in range(20):
        _agent(tracer, full, grounded=False, as_child=False, route=other)
    sent = traffic.send()
    wait_for_rows(collector, "SELECT count(*) FROM spans", sent)
    batches = list(iter_task_results(collector.store, [WORKFLOW], batch_traces=2))
    assert [len(batch) for batch in batches] == [2, 2, 1]
    judged = {result.trace_id: result.label for batch in batches for result in batch}
    assert judged == expected
    assert [r.trace_id for batch in batches for r in batch] == sorted(expected)  # trace order
    whole = evaluate_tasks(collector.store, [WORKFLOW])
    assert {r.trace_id: r.label for r in whole} == expected
    # the result's target is the final generation even when the evaluation sat on a child span of it
    assert {r.target.name for r in whole} == {"chat answer"}
