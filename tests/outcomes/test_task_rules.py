"""The workflow rules on hand-built traces: each way a trace can miss its task, and the most serious one named."""

from __future__ import annotations

import re

import pytest

from loratrace.tasks.evaluate import TraceSpan, judge
from loratrace.tasks.workflows import FinalAnswer, Forbidden, Workflow


def _span(number: int, name: str, *, tool: str | None = None, generation: bool = False, **extra) -> TraceSpan:
    attributes = {"gen_ai.tool.name": tool} if tool else {}
    attributes.update(extra.pop("attributes", {}))
    return TraceSpan(
        span_id=f"{number:016x}",
        parent_span_id="0" * 15 + "1",
        name=name,
        start_ns=number * 1000,
        end_ns=number * 1000 + 500,
        status_code="UNSET",
        operation_name="chat" if generation else "execute_tool",
        finish_reason=extra.pop("finish_reason", "stop" if generation else None),
        route="refunds",
        attributes=attributes,
    )


WORKFLOW = Workflow(
    name="refund",
    route="refunds",
    steps=("lookup_order", "issue_refund"),
    forbidden=(Forbidden("issue_refund", ("check_escalation_policy",)), Forbidden("delete_account")),
    final_answer=FinalAnswer(finish_reasons=("stop",), output_matches=re.compile("refund")),
)


@pytest.mark.parametrize(
    ("steps", "label", "explanation"),
    [
        pytest.param(
            ["lookup_order", "check_escalation_policy", "issue_refund"], "completed", "every required step", id="ok"
        ),
        pytest.param(
            ["check_escalation_policy", "issue_refund", "lookup_order"],
            "out_of_order",
            "steps ran as issue_refund > lookup_order, expected lookup_order > issue_refund",
            id="order",
        ),
        pytest.param(
            ["check_escalation_policy"], "missing_step", "never ran: lookup_order, issue_refund", id="missing"
        ),
        pytest.param(
            ["lookup_order", "issue_refund", "check_escalation_policy"],
            "forbidden_shortcut",
            "issue_refund ran without check_escalation_policy before it",
            id="late-check",
        ),
        pytest.param(
            ["lookup_order", "check_escalation_policy", "issue_refund", "delete_account"],
            "forbidden_shortcut",
            "delete_account ran (forbidden)",
            id="never",
        ),
    ],
)
def test_each_way_to_miss_the_task(steps: list[str], label: str, explanation: str) -> None:
    spans = [_span(i + 2, f"execute_tool {step}") for i, step in enumerate(steps)]
    spans.append(_span(50, "chat a1", generation=True, attributes={"output.value": "your refund is on its way"}))
    result = judge("t" * 32, spans, WORKFLOW, {})
    assert (result.passed, result.label) == (label == "completed", label)
    assert explanation in result.explanation
    assert result.target.span_id == f"{50:016x}"


def test_steps_match_tool_names_and_the_final_answer_is_checked() -> None:
    spans = [
        _span(2, "call", tool="lookup_order"),
        _span(3, "check_escalation_policy"),
        _span(4, "call", tool="issue_refund"),
        _span(5, "chat a1", generation=True, finish_reason="length", attributes={"output.value": "no"}),
    ]
    result = judge("t" * 32, spans, WORKFLOW, {})
    assert result.label == "final_answer_failed"
    assert result.explanation == (
        "the final answer finished with 'length', not stop; the final answer does not match 'refund'"
    )
    uncaptured = [*spans[:3], _span(5, "chat a1", generation=True)]
    assert "was not captured" in judge("t" * 32, uncaptured, WORKFLOW, {}).explanation
