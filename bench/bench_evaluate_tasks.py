"""``evaluate tasks`` over a store of 100k agent traces: one streamed pass (shipped) against a scan per batch (before).

    .venv/bin/python bench/bench_evaluate_tasks.py --store /tmp/lt-bench-tasks --traces 100000 --repeats 3

The first run builds the store (``--traces`` agent traces on route ``refunds``, six spans each: the agent, a plan
and a final generation, three tool calls, the final answer's ``answer_grounded`` evaluation as an event; as many
single-generation traces on another route, which neither approach may read). Then, in one run of this script so
that the machine's load is shared alike, alternately, each in a fresh process:

* ``streamed`` (shipped, ``loratrace.tasks.iter_task_results``): one statement selects the routed traces and joins
  every span they hold, streamed in trace order; the evaluation events stream beside it in the same order;
* ``per batch`` (before): the routed trace ids first, then for each batch of 20,000 traces one query for their
  spans (``trace_id IN (...)``, a scan of every span) and one for their evaluations (a join of the evaluation
  events with every span).

Both judge every trace (``skip_evaluated=False``) and must give the same verdicts. Each figure: wall time and
the process's peak RSS, median over ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

# the tool calls of agent i % 4: completes, skips a step, bypasses the escalation check, completes (ungrounded
# when i % 8 == 3)
PLANS = (
    ("lookup_order", "check_escalation_policy", "issue_refund"),
    ("check_escalation_policy", "issue_refund"),
    ("lookup_order", "issue_refund"),
    ("lookup_order", "check_escalation_policy", "issue_refund"),
)


def build_store(store: Path, traces: int) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    from loratrace import semconv
    from loratrace.store.embedded import StoreSpanExporter

    class Collected(SpanExporter):
        def __init__(self) -> None:
            self.spans: list = []

        def export(self, spans):  # type: ignore[no-untyped-def]
            self.spans.extend(spans)
            return SpanExportResult.SUCCESS

    collected = Collected()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(collected))
    tracer = provider.get_tracer("bench")
    target = StoreSpanExporter(store)
    t0 = time.time_ns() - 10 * 86400 * 10**9
    generation = {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_REQUEST_MODEL: "tiny-llama"}
    for number in range(traces):
        start = t0 + number * 10**8
        routed = {semconv.ROUTE_NAME: "refunds", semconv.COHORT: "enterprise"}
        with tracer.start_as_current_span("invoke_agent refund_bot", start_time=start):
            tracer.start_span("chat tiny-llama", attributes={**generation, **routed}, start_time=start + 1).end(
                end_time=start + 2
            )
            for offset, step in enumerate(PLANS[number % 4]):
                attributes = {
                    semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_EXECUTE_TOOL,
                    semconv.GEN_AI_TOOL_NAME: step,
                }
                tracer.start_span(f"execute_tool {step}", attributes=attributes, start_time=start + 3 + offset).end(
                    end_time=start + 4 + offset
                )
            final = tracer.start_span("chat tiny-llama", attributes={**generation, **routed}, start_time=start + 10)
            final.add_event(
                semconv.GEN_AI_EVALUATION_RESULT_EVENT,
                {semconv.GEN_AI_EVALUATION_NAME: "answer_grounded", semconv.EVALUATION_PASSED: number % 8 != 3},
                timestamp=start + 11,
            )
            final.end(end_time=start + 12)
        other = {**generation, semconv.ROUTE_NAME: "chat"}
        tracer.start_span("chat tiny-llama", attributes=other, start_time=start + 50).end(end_time=start + 60)
        if len(collected.spans) >= 60_000:
            target.export(collected.spans)
            collected.spans = []
    target.export(collected.spans)


# --- the approach before: a scan of every span per batch of traces -----------------------------------------------
_ROUTED_TRACES_SQL = (
    "SELECT DISTINCT trace_id FROM spans WHERE route_name IN (SELECT unnest($routes)) "
    "AND (NOT $skip_evaluated OR trace_id NOT IN (SELECT trace_id FROM evals WHERE name = $evaluation)) "
    "ORDER BY trace_id"
)
_TRACE_SPANS_SQL = (
    "SELECT trace_id, span_id, parent_span_id, name, start_time_unix_nano, end_time_unix_nano, status_code, "
    "operation_name, finish_reason, route_name, attributes_json FROM spans "
    "WHERE trace_id IN (SELECT unnest($traces)) "
    "AND operation_name IS DISTINCT FROM 'evaluation' AND name <> $feedback_span "
    "ORDER BY trace_id, start_time_unix_nano, span_id"
)
_TRACE_EVALS_SQL = (
    "SELECT e.trace_id, CASE WHEN s.operation_name = 'evaluation' THEN s.parent_span_id ELSE e.span_id END "
    "AS judged_span_id, e.name, e.passed FROM evals AS e JOIN spans AS s USING (trace_id, span_id) "
    "WHERE e.trace_id IN (SELECT unnest($traces)) AND e.name IN (SELECT unnest($names))"
)


def per_batch_results(store: Path, workflows, batch_traces: int = 20_000):  # type: ignore[no-untyped-def]
    from loratrace import semconv
    from loratrace.store import query
    from loratrace.tasks.evaluate import TraceSpan, _route_of, judge

    by_route = {w.route: w for w in workflows}
    names = sorted({w.final_answer.eval for w in workflows if w.final_answer.eval is not None})
    params = {"routes": sorted(by_route), "skip_evaluated": False, "evaluation": semconv.TASK_COMPLETION_EVALUATION}
    ids = query(store, _ROUTED_TRACES_SQL, params)["trace_id"].to_list()
    for start in range(0, len(ids), batch_traces):
        chosen = ids[start : start + batch_traces]
        frame = query(store, _TRACE_SPANS_SQL, {"traces": chosen, "feedback_span": semconv.FEEDBACK_SPAN})
        traces: dict[str, list] = defaultdict(list)
        for trace_id, span_id, parent, name, begin, end, status, operation, finish, route, attrs in frame.iter_rows():
            traces[trace_id].append(
                TraceSpan(
                    span_id, parent, name, begin, end, status, operation, finish, route, json.loads(attrs or "{}")
                )
            )
        evals: dict[tuple[str, str, str], bool] = {}
        for trace_id, span_id, name, passed in query(
            store, _TRACE_EVALS_SQL, {"traces": chosen, "names": names}
        ).iter_rows():
            evals[(trace_id, span_id, name)] = evals.get((trace_id, span_id, name), True) and bool(passed)
        batch = []
        for trace_id, spans in sorted(traces.items()):
            workflow = by_route.get(_route_of(spans))
            if workflow is not None:
                batch.append(judge(trace_id, spans, workflow, evals))
        yield batch


def run_one(store: Path, approach: str) -> None:
    """In a fresh process: judge every trace one way; print wall time, peak RSS and the verdicts."""
    from loratrace.tasks import iter_task_results
    from loratrace.tasks.workflows import FinalAnswer, Forbidden, Workflow

    # the refund workflow: both steps, no refund without the escalation-policy check, a grounded final answer
    workflows = [
        Workflow(
            name="refund",
            route="refunds",
            steps=("lookup_order", "issue_refund"),
            forbidden=(Forbidden("issue_refund", ("check_escalation_policy",)),),
            final_answer=FinalAnswer(eval="answer_grounded"),
        )
    ]
    started = time.perf_counter()
    if approach == "streamed":
        batches = iter_task_results(store, workflows, skip_evaluated=False)
    else:
        batches = per_batch_results(store, workflows)
    labels: Counter[str] = Counter()
    for batch in batches:
        labels.update(result.label for result in batch)
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "peak_rss_mb": peak_mb, "labels": dict(sorted(labels.items()))}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", choices=["streamed", "per-batch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args.store, args.one)
        return
    if not (args.store / "catalog.duckdb").exists():
        started = time.perf_counter()
        build_store(args.store, args.traces)
        print(f"built {args.store} with {args.traces} agent traces in {time.perf_counter() - started:.1f} s")
    from loratrace.store import query

    print(f"spans in the store: {query(args.store, 'SELECT count(*) FROM spans')[0, 0]}")
    runs: dict[str, list[dict]] = {"streamed": [], "per-batch": []}
    for _ in range(args.repeats):
        for approach in runs:
            command = [sys.executable, __file__, "--store", str(args.store), "--one", approach]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            runs[approach].append(json.loads(done.stdout.splitlines()[-1]))
    verdicts = {approach: [json.dumps(r["labels"]) for r in results] for approach, results in runs.items()}
    if len(set(verdicts["streamed"] + verdicts["per-batch"])) != 1:
        sys.exit(f"the two approaches disagree: {verdicts}")
    print(f"verdicts (both): {runs['streamed'][0]['labels']}")
    for approach, results in runs.items():
        seconds = [r["seconds"] for r in results]
        rss = [r["peak_rss_mb"] for r in results]
        each = ", ".join(f"{s:.2f}" for s in seconds)
        median_rss = statistics.median(rss)
        print(f"{approach:>10}: median {statistics.median(seconds):.2f} s (runs {each}), peak RSS {median_rss:.0f} MB")


if __name__ == "__main__":
    main()
