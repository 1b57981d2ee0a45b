"""Time loratrace adds to one generate call on the tiny model, next to OpenLLMetry's instrumentor.

\b
    .venv/bin/python bench/bench_transformers_overhead.py            # 300 calls per condition
    .venv/bin/python bench/bench_transformers_overhead.py --calls 500

Conditions on the same text-generation pipeline call (greedy, 8 new tokens), in one process:
uninstrumented; loratrace (SDK TracerProvider + BatchSpanProcessor with an in-memory exporter, SDK
MeterProvider); the SDK floor (a bare wrapper that starts and ends one span carrying the same attributes as
loratrace's span and records the same three histograms, with no loratrace logic: what any instrumentation
emitting this much pays); and ``opentelemetry-instrumentation-transformers`` (same tracer provider). They are
interleaved in short blocks, toggling instrumentation between blocks, so machine drift hits every condition
alike. A second table times ``PeftModel.generate`` directly (adapter a1 active), where the peer emits nothing.
"Added" is the median of a condition minus the uninstrumented median. A third table times the wrappers alone
around a precomputed result (no model run: warm caches), the figure to compare with SDK microbenchmarks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def _providers() -> tuple[TracerProvider, MeterProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=512))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return tracer_provider, meter_provider, exporter


class Condition:
    def __init__(self, name: str, on: Callable[[], None], off: Callable[[], None]) -> None:
        self.name, self.on, self.off = name, on, off
        self.samples: list[float] = []
        # process CPU time (every thread) of the timed blocks, including switching the condition off: for
        # loratrace that drains the spans completed off the calling thread, so their cost is counted here
        self.cpu_ns = 0


def _measure(call: Callable[[], Any], conditions: list[Condition], calls: int, block: int) -> None:
    for condition in conditions:  # warm-up: first-call caches (adapter id, model info), lazy imports
        condition.on()
        for _ in range(3):
            call()
        condition.off()
    rounds = max(1, calls // block)
    for _ in range(rounds):
        for condition in conditions:
            condition.on()
            cpu_started = time.process_time_ns()
            for _ in range(block):
                started = time.perf_counter_ns()
                call()
                condition.samples.append((time.perf_counter_ns() - started) / 1000)
            condition.off()
            condition.cpu_ns += time.process_time_ns() - cpu_started


def _table(title: str, conditions: list[Condition]) -> str:
    baseline = statistics.median(conditions[0].samples)
    lines = [
        f"### {title}",
        "",
        "| condition | calls | median µs | added µs (median) | p10 µs | p90 µs | CPU µs per call (all threads) |",
        "|---|---|---|---|---|---|---|",
    ]
    baseline_cpu = conditions[0].cpu_ns / 1000 / len(conditions[0].samples)
    for condition in conditions:
        samples = sorted(condition.samples)
        median = statistics.median(samples)
        p10 = samples[len(samples) // 10]
        p90 = samples[(len(samples) * 9) // 10]
        cpu = condition.cpu_ns / 1000 / len(samples)
        first = condition is conditions[0]
        added = "—" if first else f"{median - baseline:+.1f}"
        cpu_text = f"{cpu:.1f}" if first else f"{cpu:.1f} ({cpu - baseline_cpu:+.1f})"
        lines.append(
            f"| {condition.name} | {len(samples)} | {median:.1f} | {added} | {p10:.1f} | {p90:.1f} | {cpu_text} |"
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
    parser.add_argument("--calls", type=int, default=300, help="calls per condition (>= 200)")
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument(
        "--block",
        type=int,
        default=50,
        help="calls per block between condition switches: long enough that the first calls after a switch "
        "(re-warming caches) do not weigh on the median, and that loratrace's background completion runs "
        "during timed calls as in steady serving",
    )
    parser.add_argument("--skip-peer", action="store_true", help="leave out OpenLLMetry (it is slow per call)")
    options = parser.parse_args()

    import torch
    import transformers
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    # the pipeline logs a max_length notice on every call, with or without instrumentation
    transformers.logging.set_verbosity_error()

    import loratrace
    from loratrace.demo.tiny_model import ensure_tiny_models

    root = Path(os.environ.get("LORATRACE_FIXTURES", Path(tempfile.gettempdir()) / "loratrace-bench-fixtures"))
    models = ensure_tiny_models(root)
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(models.base)
    base = AutoModelForCausalLM.from_pretrained(models.base, dtype=torch.float32)
    generator = pipeline("text-generation", model=base, tokenizer=tokenizer)
    prompt = "Invoices are due within"
    generate_kwargs = {"max_new_tokens": options.new_tokens, "do_sample": False}

    tracer_provider, meter_provider, exporter = _providers()

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

    conditions = [
        Condition("uninstrumented", nothing, nothing),
        Condition("loratrace", loratrace_on, loratrace.uninstrument),
    ]
    if not options.skip_peer:
        from opentelemetry.instrumentation.transformers import TransformersInstrumentor as PeerInstrumentor

        peer = PeerInstrumentor()
        conditions.append(
            Condition(
                "opentelemetry-instrumentation-transformers 0.62.4",
                lambda: peer.instrument(tracer_provider=tracer_provider),
                peer.uninstrument,
            )
        )

    def pipeline_call() -> Any:
        return generator(prompt, return_full_text=False, **generate_kwargs)

    from transformers.generation.utils import GenerationMixin

    conditions.insert(2, _floor(GenerationMixin, tracer_provider, meter_provider, _sample_attributes(pipeline_call)))
    _measure(pipeline_call, conditions, options.calls, options.block)
    print(_table(f"text-generation pipeline call, {options.new_tokens} new tokens", conditions))
    print()

    peft_model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(models.base, dtype=torch.float32),
        models.adapters["a1"],
        adapter_name="a1",
    )
    inputs = tokenizer([prompt], return_tensors="pt")

    def peft_call() -> Any:
        return peft_model.generate(**inputs, **generate_kwargs)

    from peft.peft_model import PeftModelForCausalLM

    peft_floor = _floor(PeftModelForCausalLM, tracer_provider, meter_provider, _sample_attributes(peft_call))
    peft_conditions = [Condition(c.name, c.on, c.off) for c in conditions[:2]] + [peft_floor]
    _measure(peft_call, peft_conditions, options.calls, options.block)
    print(_table(f"PeftModel.generate (adapter a1), {options.new_tokens} new tokens", peft_conditions))
    print()
    print(_warm_table(peft_model, inputs, generate_kwargs, tracer_provider, meter_provider, peft_floor))
    tracer_provider.force_flush()
    spans = exporter.get_finished_spans()
    adapters = {span.attributes.get("loratrace.adapter.name") for span in spans}
    print(f"\nexported spans: {len(spans)}; adapter names seen: {sorted(a for a in adapters if a)}")


if __name__ == "__main__":
    main()
