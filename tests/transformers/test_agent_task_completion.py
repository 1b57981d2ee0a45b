"""TaskCompletion on agent traces from the tiny model: tool spans and real generations (transformers + PEFT)
exported over OTLP to a real collector, judged by ``loratrace evaluate tasks``, the verdicts sent back through the
collector and read as evaluations."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from collector.conftest import start_collector
from opentelemetry.trace import Status, StatusCode

import loratrace
from loratrace import semconv
from loratrace.cli import cli
from loratrace.store import query
from tests.support.hf import load_peft

WORKFLOWS = """
[[workflow]]
name = "refund"
route = "refunds"
steps = ["lookup_order", "issue_refund"]

[[workflow.forbidden]]
step = "issue_refund"
unless_after = ["check_escalation_policy"]

[workflow.final_answer]
eval = "answer_grounded"
"""

AGENTS = {
    # name: (tool steps in order, the failing step, the final answer's evaluation)
    "completes": (["lookup_order", "check_escalation_policy", "issue_refund"], None, True),
    "skips_lookup": (["check_escalation_policy", "issue_refund"], None, True),
    "bypasses_escalation": (["lookup_order", "issue_refund"], None, True),
    "ungrounded_answer": (["lookup_order", "check_escalation_policy", "issue_refund"], None, False),
    "bypasses_with_a_failed_span": (["lookup_order", "issue_refund"], "lookup_order", True),
}
EXPECTED = {
    "completes": (True, "completed"),
    "skips_lookup": (False, "missing_step"),
    "bypasses_escalation": (False, "forbidden_shortcut"),
    "ungrounded_answer": (False, "final_answer_failed"),
    "bypasses_with_a_failed_span": (False, "forbidden_shortcut"),
}


def _run_agent(tracer, model, inputs, steps, failing, grounded) -> str:
    with tracer.start_as_current_span("invoke_agent refund_bot", attributes={"gen_ai.operation.name": "invoke_agent"}):
        root = format(tracer_span_context().trace_id, "032x")
        with loratrace.context(route="refunds", cohort="enterprise"):
            model.generate(**inputs, max_new_tokens=3, do_sample=False)  # the plan
            for step in steps:
                attributes = {
                    semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_EXECUTE_TOOL,
                    semconv.GEN_AI_TOOL_NAME: step,
                }
                with tracer.start_as_current_span(f"execute_tool {step}", attributes=attributes) as span:
                    if step == failing:
                        span.set_status(Status(StatusCode.ERROR, "order service timed out"))
            model.generate(**inputs, max_new_tokens=3, do_sample=False)  # the final answer
            loratrace.record_eval("answer_grounded", passed=grounded)
    return root


def tracer_span_context():
    from opentelemetry import trace

    return trace.get_current_span().get_span_context()


@pytest.fixture(scope="module")
def agent_store(tiny_models, tokenizer, tmp_path_factory):
    collector = start_collector(tmp_path_factory.mktemp("agents") / "store")
    state = loratrace.instrument(endpoint=collector.http, libraries=["transformers"], service_name="refund-agent")
    try:
        tracer = state.tracer_provider.get_tracer("agent")
        model = load_peft(tiny_models, "a1")
        inputs = tokenizer(["I want my money back"], return_tensors="pt")
        traces = {name: _run_agent(tracer, model, inputs, *plan) for name, plan in AGENTS.items()}
        assert loratrace.force_flush(30_000)
    finally:
        loratrace.uninstrument()
    collector.wait_until(
        lambda: query(collector.store, "SELECT count(*) FROM generations")[0, 0] == 2 * len(AGENTS),
        timeout=60,
        what="the agents' generations",
    )
    yield collector, traces
    collector.terminate()


def test_workflows_judge_each_trace_and_the_verdicts_arrive_as_evaluations(agent_store, tmp_path: Path):
    collector, traces = agent_store
    workflows = tmp_path / "workflows.toml"
    workflows.write_text(WORKFLOWS)
    arguments = ["evaluate", "tasks", "--store", str(collector.store), "--workflows", str(workflows)]
    result = CliRunner().invoke(cli, [*arguments, "--endpoint", collector.http])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"5 trace(s) judged, 4 failed; 5 result(s) sent to {collector.http}"
    collector.wait_until(
        lambda: query(collector.store, "SELECT count(*) FROM evals WHERE name = 'task_completion'")[0, 0] == 5,
        what="the task verdicts",
    )
    rows = query(
        collector.store,
        "SELECT e.trace_id, e.passed, e.label, e.adapter_name, e.route_name, e.cohort, s.parent_span_id, "
        "s.attributes['loratrace.task.workflow'] AS workflow FROM evals AS e JOIN spans AS s USING (trace_id, span_id) "
        "WHERE e.name = 'task_completion'",
    )
    by_trace = {row["trace_id"]: row for row in rows.to_dicts()}
    final_generations = dict(
        query(
            collector.store,
            "SELECT trace_id, arg_max(span_id, end_time_unix_nano) FROM generations GROUP BY 1",
        ).rows()
    )
    for name, trace_id in traces.items():
        row = by_trace[trace_id]
        assert (row["passed"], row["label"]) == EXPECTED[name], name
        assert (row["adapter_name"], row["route_name"], row["cohort"], row["workflow"]) == (
            "a1",
            "refunds",
            "enterprise",
            "refund",
        )
        assert row["parent_span_id"] == final_generations[trace_id]  # on the trace's final answer

    # every span succeeded, the task did not: the shipped query finds exactly those
    sql = (Path(__file__).parents[2] / "loratrace" / "queries" / "task_failed_spans_ok.sql").read_text()
    failed_ok = query(collector.store, sql, {"since": None, "until": None})
    assert sorted(zip(failed_ok["trace_id"], failed_ok["label"], strict=True)) == sorted(
        (traces[name], EXPECTED[name][1]) for name in ("skips_lookup", "bypasses_escalation", "ungrounded_answer")
    )

    # judged traces are not judged twice, so the command can run on a schedule
    again = CliRunner().invoke(cli, [*arguments, "--endpoint", collector.http])
    assert again.exit_code == 0, again.output
    assert again.output == f"0 trace(s) judged, 0 failed; 0 result(s) sent to {collector.http}\n"
    dry = CliRunner().invoke(cli, [*arguments, "--again", "--dry-run"])
    assert dry.exit_code == 0
    assert f"{traces['skips_lookup']}  refund  FAILED  missing_step: required step(s) never ran: lookup_order" in (
        dry.output
    )
    assert dry.output.splitlines()[-1] == "5 trace(s) judged, 4 failed; nothing sent (--dry-run)"


def test_a_large_store_is_judged_batch_by_batch(agent_store, tmp_path: Path):
    from loratrace.tasks import evaluate_tasks, iter_task_results, load_workflows

    collector, traces = agent_store
    workflows = tmp_path / "workflows.toml"
    workflows.write_text(WORKFLOWS)
    loaded = load_workflows(workflows)
    batches = list(iter_task_results(collector.store, loaded, skip_evaluated=False, batch_traces=2))
    assert [len(batch) for batch in batches] == [2, 2, 1]
    whole = evaluate_tasks(collector.store, loaded, skip_evaluated=False)
    assert [(r.trace_id, r.label) for batch in batches for r in batch] == [(r.trace_id, r.label) for r in whole]
    assert {r.trace_id for r in whole} == set(traces.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[[workflow]]\nroute = 'r'\n", "workflow[0] needs 'steps'", id="no-steps"),
        pytest.param("[[workflow]]\nroute = 'r'\nsteps = 'a'\n", "workflow[0].steps must be a list", id="steps"),
        pytest.param("x = 1\n", "declares no workflow", id="empty"),
        pytest.param(
            "[[workflow]]\nroute='r'\nsteps=['a']\n[[workflow]]\nroute='r'\nsteps=['b']\n",
            "two workflows",
            id="two-per-route",
        ),
        pytest.param("[[workflow]]\nroute='r'\nsteps=['a']\nstpes=['b']\n", "unknown key(s) ['stpes']", id="typo"),
        pytest.param(
            "[[workflow]]\nroute='r'\nsteps=['a']\n[workflow.final_answer]\noutput_matches='('\n",
            "is not a regular expression",
            id="regex",
        ),
        pytest.param("[[workflow\n", "is not valid TOML", id="toml"),
    ],
)
def test_a_bad_workflows_file_exits_2(agent_store, tmp_path: Path, text: str, message: str):
    collector, _ = agent_store
    workflows = tmp_path / "workflows.toml"
    workflows.write_text(text)
    result = CliRunner().invoke(
        cli, ["evaluate", "tasks", "--store", str(collector.store), "--workflows", str(workflows), "--dry-run"]
    )
    assert result.exit_code == 2
    assert message in result.output
