"""Time loratrace adds to one generate call on the tiny model, next to OpenLLMetry's instrumentor.

\b
    .venv/bin/python bench/bench_transformers_overhead.py     # 4 processes x 3 rounds of 8.5 s blocks (~22 min)
    .venv/bin/python bench/bench_transformers_overhead.py --processes 10 --rounds 10

Conditions on the same text-generation pipeline call (greedy, 8 new tokens), in one process: uninstrumented;
loratrace (SDK TracerProvider + BatchSpanProcessor with an exporter that counts and drops spans, SDK
MeterProvider); loratrace with its background completion held until the block ends (the serving thread's own
cost without the background thread's contention, which the CPU column still counts); the SDK floor (a bare
wrapper that starts and ends one span carrying the same attributes as loratrace's span and records the same
three histograms, with no loratrace logic: what any instrumentation emitting this much pays); and
``opentelemetry-instrumentation-transformers`` (same tracer provider). They are interleaved in rounds of one
block each, toggling instrumentation between blocks, so machine drift hits every condition alike; a block lasts
just over two of loratrace's background bursts (one every 4 s), so their contention with the serving thread is
inside the timed calls. The peer, ~150 ms per call, is interleaved with its own uninstrumented baseline in a
second pass of longer blocks. A second table times ``PeftModel.generate`` directly (adapter a1 active), where the
peer emits nothing. "Added" is the median of a condition minus the uninstrumented median, over the samples of
every worker process, with a 95 % bootstrap interval over the rounds (this host's timing drifts by more than the
differences measured, so the interval says what a figure can be trusted to). Two "in situ" tables time, in each
call, everything but the model's own ``generate`` (see ``InnerTimer``): with and without loratrace, the difference
is what its wrappers add to the call on the serving thread, free of the host's drift; reading the background
thread's CPU clock around each call, they also give its work per call, the calls its bursts overlapped, and how much
those calls pull the median of whole calls (all calls vs the calls no burst overlapped). A last table times the
wrappers alone around a precomputed result (no model run: warm caches), the figure to compare with SDK
microbenchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _common import BackgroundClock, counting_providers, make_peft_call, make_pipeline_call
from _inner_timer import InnerTimer
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

DEFERRED = "loratrace, background completion after the block (serving thread alone)"


class Condition:
    def __init__(
        self, name: str, on: Callable[[], None], off: Callable[[], None], baseline: Condition | None = None
    ) -> None:
        self.name, self.on, self.off = name, on, off
        # the uninstrumented condition this one is compared with (the first row's when None)
        self.baseline = baseline
        self.blocks: list[list[float]] = []  # call durations (µs), one list per block (one block per round)
        # process CPU time (every thread) of the timed blocks, including switching the condition off: for
        # loratrace that drains the spans completed off the calling thread, so their cost is counted here
        self.cpu_ns = 0
        # loratrace's background thread, while this condition's calls ran (in-situ tables only)
        self.background_ns = 0
        self.overlapped = 0  # calls during which the background thread ran a burst
        # whole durations (µs) of the calls no burst overlapped, and of all calls, with the same blocks
        self.clear_calls: list[float] = []
        self.all_calls: list[float] = []


def _measure(
    call: Callable[[], Any],
    conditions: list[Condition],
    rounds: int,
    block_seconds: float,
    inner: InnerTimer | None = None,
    background: BackgroundClock | None = None,
) -> None:
    for condition in conditions:  # warm-up: first-call caches (adapter id, model info), lazy imports
        condition.on()
        for _ in range(3):
            call()
        condition.off()
    for _ in range(rounds):
        for condition in conditions:
            condition.on()
            cpu_started = time.process_time_ns()
            samples: list[float] = []
            deadline = time.perf_counter_ns() + int(block_seconds * 1e9)
            while True:
                before = background.read() if background is not None else None
                started = time.perf_counter_ns()
                call()
                ended = time.perf_counter_ns()
                samples.append((ended - started - (inner.last_ns if inner is not None else 0)) / 1000)
                after = background.read() if background is not None else None
                if before is not None and after is not None:
                    overlapped = after - before > BackgroundClock.BURST_NS
                    condition.background_ns += after - before
                    condition.overlapped += overlapped
                    condition.all_calls.append((ended - started) / 1000)
                    if not overlapped:
                        condition.clear_calls.append((ended - started) / 1000)
                if ended >= deadline:
                    break
            condition.off()
            condition.cpu_ns += time.process_time_ns() - cpu_started
            condition.blocks.append(samples)


def _rows(conditions: list[Condition]) -> list[dict[str, Any]]:
    """One process's measurements, as the worker hands them to the parent."""
    return [
        {
            "name": c.name,
            "blocks": c.blocks,
            "cpu_ns": c.cpu_ns,
            "background_ns": c.background_ns,
            "overlapped": c.overlapped,
            "clear_calls": c.clear_calls,
            "all_calls": c.all_calls,
            "baseline": (c.baseline or conditions[0]).name,
        }
        for c in conditions
    ]


_RESAMPLES = 400
_PEER_BLOCK_SECONDS = 6.3  # ~40 of the peer's ~150 ms calls per block


def _added_interval(name: str, baseline: str, runs: list[list[dict[str, Any]]]) -> tuple[float, float]:
    """95 % bootstrap interval of the added median. The unit resampled is one round of one process (a block of
    each condition, run back to back): the host drifts by more than the differences measured here over seconds,
    so the rounds, not the calls, are the independent samples."""
    units = []
    for rows in runs:
        by_name = {row["name"]: row for row in rows}
        if name not in by_name:  # the peer runs in the first process only
            continue
        for mine, theirs in zip(by_name[name]["blocks"], by_name[baseline]["blocks"], strict=True):
            units.append((mine, theirs))
    rng = random.Random(20261128)
    estimates = []
    for _ in range(_RESAMPLES):
        mine_pool: list[float] = []
        theirs_pool: list[float] = []
        for _ in units:
            mine, theirs = units[rng.randrange(len(units))]
            mine_pool += mine
            theirs_pool += theirs
        estimates.append(statistics.median(mine_pool) - statistics.median(theirs_pool))
    estimates.sort()
    return estimates[int(_RESAMPLES * 0.025)], estimates[int(_RESAMPLES * 0.975) - 1]


def _table(title: str, runs: list[list[dict[str, Any]]]) -> str:
    """Samples pooled over the worker processes; the last column has each process's own added median."""
    pooled: dict[str, dict[str, Any]] = {}
    for rows in runs:
        for row in rows:
            into = pooled.setdefault(
                row["name"],
                {"samples": [], "cpu_ns": 0, "background_ns": 0, "overlapped": 0, "baseline": row["baseline"]},
            )
            for block in row["blocks"]:
                into["samples"].extend(block)
            into["cpu_ns"] += row["cpu_ns"]
            into["background_ns"] += row.get("background_ns", 0)
            into["overlapped"] += row.get("overlapped", 0)
            into.setdefault("clear_calls", []).extend(row.get("clear_calls", ()))
            into.setdefault("all_calls", []).extend(row.get("all_calls", ()))
    lines = [
        f"### {title}",
        "",
        "| condition | calls | median µs | added µs (median) | 95 % interval | p10 µs | p90 µs "
        "| CPU µs per call (all threads) | added µs, each process |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in pooled.items():
        reference = pooled[row["baseline"]]
        baseline = statistics.median(reference["samples"])
        baseline_cpu = reference["cpu_ns"] / 1000 / len(reference["samples"])
        samples = sorted(row["samples"])
        median = statistics.median(samples)
        p10 = samples[len(samples) // 10]
        p90 = samples[(len(samples) * 9) // 10]
        cpu = row["cpu_ns"] / 1000 / len(samples)
        first = name == row["baseline"]
        added = "—" if first else f"{median - baseline:+.1f}"
        interval = "—"
        if not first:
            low, high = _added_interval(name, row["baseline"], runs)
            interval = f"{low:+.0f} .. {high:+.0f}"
        cpu_text = f"{cpu:.1f}" if first else f"{cpu:.1f} ({cpu - baseline_cpu:+.1f})"
        each = []
        for rows in runs:
            by_name = {r["name"]: r for r in rows}
            if not first and name in by_name and row["baseline"] in by_name:
                own = statistics.median([x for block in by_name[name]["blocks"] for x in block])
                theirs = statistics.median([x for block in by_name[row["baseline"]]["blocks"] for x in block])
                each.append(f"{own - theirs:+.0f}")
        lines.append(
            f"| {name} | {len(samples)} | {median:.1f} | {added} | {interval} | {p10:.1f} | {p90:.1f} | {cpu_text} "
            f"| {' '.join(each) or '—'} |"
        )
    for name, row in pooled.items():
        if row["background_ns"]:
            calls = len(row["samples"])
            lines.append(
                f"\n{name}: the background thread spent {row['background_ns'] / 1000 / calls:.1f} µs of CPU per call; "
                f"its bursts overlapped {row['overlapped']} of {calls} calls ({row['overlapped'] / calls:.1%})."
            )
            if row["clear_calls"] and row["all_calls"]:
                # the same blocks with and without the overlapped calls: drift cancels, the bursts' pull remains
                shift = statistics.median(row["all_calls"]) - statistics.median(row["clear_calls"])
                lines.append(
                    f"Those calls moved the median of whole calls by {shift:+.1f} µs (median of all calls minus "
                    "median of the calls no burst overlapped, same blocks)."
                )
    return "\n".join(lines)


def _floor(owner: type, tracer_provider: TracerProvider, meter_provider: MeterProvider, attributes: Any) -> Condition:
    """One span with ``attributes`` and three histogram records around each call: the SDK's own cost."""
    import wrapt

    from loratrace import semconv

    tracer = tracer_provider.get_tracer("floor")
    meter = meter_provider.get_meter("floor")
    duration = meter.create_histogram("floor.duration")
    tokens = meter.create_histogram("floor.tokens")
    labels = {key: attributes[key] for key in semconv.METRIC_LABELS if key in attributes}
    input_labels = {**labels, semconv.GEN_AI_TOKEN_TYPE: "input"}
    output_labels = {**labels, semconv.GEN_AI_TOKEN_TYPE: "output"}
    start_attributes = dict(attributes)

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        span = tracer.start_span("floor", attributes=start_attributes)
        started = time.perf_counter()
        result = wrapped(*args, **kwargs)
        duration.record(time.perf_counter() - started, labels)
        tokens.record(5, input_labels)
        tokens.record(8, output_labels)
        span.end()
        return result

    original = owner.__dict__["generate"]

    def on() -> None:
        wrapt.wrap_function_wrapper(owner, "generate", wrapper)

    def off() -> None:
        owner.generate = original

    return Condition("SDK floor: 1 span + 3 histogram records, same attributes", on, off)


def _warm_table(
    peft_model: Any,
    inputs: Any,
    generate_kwargs: dict[str, Any],
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    floor: Condition,
) -> str:
    """Median per-call cost of each wrapper around a function returning a precomputed generate output."""
    from opentelemetry import metrics, trace
    from peft.peft_model import PeftModelForCausalLM

    from loratrace.instrumentation.transformers import TransformersInstrumentor

    output = peft_model.generate(**inputs, **generate_kwargs)
    kwargs = {**inputs, **generate_kwargs}

    def precomputed(*args: Any, **kwargs: Any) -> Any:
        return output

    def timed(on: Callable[[], None], off: Callable[[], None]) -> float:
        on()  # the wrappers read their settings at call time: keep the instrumentation on while timing
        try:
            wrapper = PeftModelForCausalLM.__dict__["generate"]._self_wrapper
            samples = []
            for _ in range(2000):
                started = time.perf_counter_ns()
                wrapper(precomputed, peft_model, (), kwargs)
                samples.append((time.perf_counter_ns() - started) / 1000)
        finally:
            off()
        return statistics.median(samples)

    instrumentor = TransformersInstrumentor()
    cases = {
        "loratrace, SDK providers": (
            lambda: instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider),
            instrumentor.uninstrument,
        ),
        "loratrace, no-op providers (loratrace's own logic)": (
            lambda: instrumentor.instrument(
                tracer_provider=trace.NoOpTracerProvider(), meter_provider=metrics.NoOpMeterProvider()
            ),
            instrumentor.uninstrument,
        ),
        floor.name: (floor.on, floor.off),
    }
    lines = [
        "### wrappers alone, warm (precomputed result, no model run)",
        "",
        "| wrapper | median µs |",
        "|---|---|",
    ]
    for name, (on, off) in cases.items():
        lines.append(f"| {name} | {timed(on, off):.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--processes",
        type=int,
        default=4,
        help="worker processes, run one after another, whose samples are pooled: a process's memory layout "
        "moves a 9 ms call by tens of µs either way, more than the differences measured here",
    )
    parser.add_argument("--worker-output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per process: one block of each condition")
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument(
        "--block-seconds",
        type=float,
        help="length of a block of calls between condition switches (default: twice the background thread's gather "
        "interval plus 0.5 s, 8.5 s): long enough that the first calls after a switch (re-warming caches) do not "
        "weigh on the median, and holding two of loratrace's background bursts, so ~95%% of a loratrace block's "
        "spans are completed during its timed calls, as in steady serving (the rest when the block ends, counted "
        "in the CPU column)",
    )
    parser.add_argument("--peer-rounds", type=int, default=5, help="rounds of OpenLLMetry and its baseline")
    parser.add_argument("--skip-peer", action="store_true", help="leave out OpenLLMetry (it is slow per call)")
    parser.add_argument(
        "--gather-seconds",
        type=float,
        help="experiment: how long loratrace's background thread gathers work before a burst (default: its own, 4 s)",
    )
    parser.add_argument("--save-samples", type=Path, help="also write every call's duration to this JSON file")
    parser.add_argument("--report", type=Path, help="print the tables of a --save-samples file, measuring nothing")
    options = parser.parse_args()
    if options.block_seconds is None:
        from loratrace.runtime import finisher as _finisher

        gather = options.gather_seconds if options.gather_seconds is not None else _finisher.finisher.gather_seconds
        options.block_seconds = 2 * gather + 0.5
    if options.report is not None:
        _report(json.loads(options.report.read_text()))
    elif options.worker_output is None:
        _run_workers(options)
    else:
        options.worker_output.write_text(json.dumps(_worker(options)))


def _run_workers(options: argparse.Namespace) -> None:
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for index in range(options.processes):
            output = Path(folder) / f"worker-{index}.json"
            command = [sys.executable, __file__, "--worker-output", str(output)]
            command += ["--rounds", str(options.rounds), "--block-seconds", str(options.block_seconds)]
            command += ["--new-tokens", str(options.new_tokens), "--peer-rounds", str(options.peer_rounds)]
            if options.gather_seconds is not None:
                command += ["--gather-seconds", str(options.gather_seconds)]
            if options.skip_peer or index > 0:  # the peer's ~140 ms per call needs no pooling
                command.append("--skip-peer")
            subprocess.run(command, check=True)
            runs.append(json.loads(output.read_text()))
    if options.save_samples is not None:
        options.save_samples.write_text(json.dumps(runs))
    _report(runs)


def _report(runs: list[dict[str, Any]]) -> None:
    for title in runs[0]["tables"]:
        print(_table(title, [run["tables"][title] for run in runs]))
        print()
    print(runs[0]["warm"])
    exported = sum(run["exported"] for run in runs)
    adapters = sorted({name for run in runs for name in run["adapters"]})
    print(f"\nprocesses: {len(runs)}; exported spans: {exported}; adapter names seen: {adapters}")


def _worker(options: argparse.Namespace) -> dict[str, Any]:
    import loratrace

    pipeline_call = make_pipeline_call(options.new_tokens)
    generate_kwargs = {"max_new_tokens": options.new_tokens, "do_sample": False}

    tracer_provider, meter_provider, exporter = counting_providers()

    def _sample_attributes(call: Callable[[], Any]) -> dict[str, Any]:
        """The attributes of one loratrace span for ``call`` (for the floor condition)."""
        sample_exporter = InMemorySpanExporter()
        sample_provider = TracerProvider()
        sample_provider.add_span_processor(SimpleSpanProcessor(sample_exporter))
        loratrace.instrument(tracer_provider=sample_provider, meter_provider=meter_provider)
        try:
            call()
        finally:
            loratrace.uninstrument()
        (span,) = sample_exporter.get_finished_spans()
        return dict(span.attributes)

    def loratrace_on() -> None:
        loratrace.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

    def nothing() -> None:
        return None

    from loratrace.runtime import finisher as _finisher

    if options.gather_seconds is not None:  # bench-only experiment knob on loratrace's internal finisher
        _finisher.finisher.gather_seconds = options.gather_seconds
    gather_seconds = _finisher.finisher.gather_seconds

    def loratrace_deferred_on() -> None:
        # bench-only: the background thread waits until the block ends (uninstrument drains it, outside the
        # timed calls), which isolates the serving thread's own cost from the background thread's contention
        _finisher.finisher.gather_seconds = 3600.0
        loratrace_on()

    def loratrace_deferred_off() -> None:
        loratrace.uninstrument()
        _finisher.finisher.gather_seconds = gather_seconds

    conditions = [
        Condition("uninstrumented", nothing, nothing),
        Condition("loratrace", loratrace_on, loratrace.uninstrument),
        Condition(DEFERRED, loratrace_deferred_on, loratrace_deferred_off),
    ]

    from transformers.generation.utils import GenerationMixin

    conditions.append(_floor(GenerationMixin, tracer_provider, meter_provider, _sample_attributes(pipeline_call)))
    _measure(pipeline_call, conditions, options.rounds, options.block_seconds)
    rows = list(conditions)
    if not options.skip_peer:
        from opentelemetry.instrumentation.transformers import TransformersInstrumentor as PeerInstrumentor

        peer = PeerInstrumentor()
        peer_baseline = Condition("uninstrumented (baseline of the next row)", nothing, nothing)
        peer_baseline.baseline = peer_baseline
        peer_condition = Condition(
            "opentelemetry-instrumentation-transformers 0.62.4",
            lambda: peer.instrument(tracer_provider=tracer_provider),
            peer.uninstrument,
            baseline=peer_baseline,
        )
        # ~150 ms per peer call: longer blocks, so each holds a few dozen calls
        _measure(pipeline_call, [peer_baseline, peer_condition], options.peer_rounds, _PEER_BLOCK_SECONDS)
        rows += [peer_baseline, peer_condition]
    tables = {f"text-generation pipeline call, {options.new_tokens} new tokens": _rows(rows)}

    peft_call, peft_model, inputs = make_peft_call(options.new_tokens)

    from peft.peft_model import PeftModelForCausalLM

    peft_floor = _floor(PeftModelForCausalLM, tracer_provider, meter_provider, _sample_attributes(peft_call))
    peft_conditions = [Condition(c.name, c.on, c.off) for c in conditions[:3]] + [peft_floor]
    _measure(peft_call, peft_conditions, options.rounds, options.block_seconds)
    tables[f"PeftModel.generate (adapter a1), {options.new_tokens} new tokens"] = _rows(peft_conditions)
    timer = InnerTimer(GenerationMixin)
    timer.install()
    try:
        for title, call in (("text-generation pipeline call", pipeline_call), ("PeftModel.generate", peft_call)):
            in_situ = [Condition(c.name, c.on, c.off) for c in conditions[:2]]
            clock = BackgroundClock()
            _measure(call, in_situ, options.rounds, options.block_seconds, inner=timer, background=clock)
            tables[f"in situ: {title}, time outside the model's generate"] = _rows(in_situ)
    finally:
        timer.remove()
    warm = _warm_table(peft_model, inputs, generate_kwargs, tracer_provider, meter_provider, peft_floor)
    tracer_provider.force_flush()
    return {"tables": tables, "warm": warm, "exported": exporter.count, "adapters": sorted(exporter.adapter_names)}


if __name__ == "__main__":
    main()
