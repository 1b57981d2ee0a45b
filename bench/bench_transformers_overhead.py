"""Time loratrace adds to one generate call on the tiny model, next to OpenLLMetry's transformers instrumentor.

\b
    .venv/bin/python bench/bench_transformers_overhead.py            # 300 calls per condition
    .venv/bin/python bench/bench_transformers_overhead.py --calls 500

Three conditions on the same text-generation pipeline call (greedy, 8 new tokens), in one process:
uninstrumented, loratrace (SDK TracerProvider + BatchSpanProcessor with an in-memory exporter, SDK MeterProvider),
and ``opentelemetry-instrumentation-transformers`` (same tracer provider). They are interleaved in short blocks,
toggling instrumentation between blocks, so machine drift hits every condition alike. A second table times
``PeftModel.generate`` directly (adapter a1 active), where the peer emits nothing. "Added" is the median of a
condition minus the uninstrumented median.
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

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

BLOCK = 10


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


def _measure(call: Callable[[], Any], conditions: list[Condition], calls: int) -> None:
    for condition in conditions:  # warm-up: first-call caches (adapter id, model info), lazy imports
        condition.on()
        for _ in range(3):
            call()
        condition.off()
    rounds = max(1, calls // BLOCK)
    for _ in range(rounds):
        for condition in conditions:
            condition.on()
            for _ in range(BLOCK):
                started = time.perf_counter_ns()
                call()
                condition.samples.append((time.perf_counter_ns() - started) / 1000)
            condition.off()


def _table(title: str, conditions: list[Condition]) -> str:
    baseline = statistics.median(conditions[0].samples)
    lines = [
        f"### {title}",
        "",
        "| condition | calls | median µs | added µs (median) | p10 µs | p90 µs |",
        "|---|---|---|---|---|---|",
    ]
    for condition in conditions:
        samples = sorted(condition.samples)
        median = statistics.median(samples)
        p10 = samples[len(samples) // 10]
        p90 = samples[(len(samples) * 9) // 10]
        added = "—" if condition is conditions[0] else f"{median - baseline:+.1f}"
        lines.append(
            f"| {condition.name} | {len(samples)} | {median:.1f} | {added} | {p10:.1f} | {p90:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per condition (>= 200)")
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument(
        "--skip-peer", action="store_true", help="leave out OpenLLMetry (it is slow per call)"
    )
    options = parser.parse_args()

    import torch
    import transformers
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    # the pipeline logs a max_length notice on every call, with or without instrumentation
    transformers.logging.set_verbosity_error()

    import loratrace
    from loratrace.demo.tiny_model import ensure_tiny_models

    root = Path(
        os.environ.get("LORATRACE_FIXTURES", Path(tempfile.gettempdir()) / "loratrace-bench-fixtures")
    )
    models = ensure_tiny_models(root)
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(models.base)
    base = AutoModelForCausalLM.from_pretrained(models.base, dtype=torch.float32)
    generator = pipeline("text-generation", model=base, tokenizer=tokenizer)
    prompt = "Invoices are due within"
    generate_kwargs = {"max_new_tokens": options.new_tokens, "do_sample": False}

    tracer_provider, meter_provider, exporter = _providers()

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

    _measure(pipeline_call, conditions, options.calls)
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

    peft_conditions = [Condition(c.name, c.on, c.off) for c in conditions[:2]]
    _measure(peft_call, peft_conditions, options.calls)
    print(_table(f"PeftModel.generate (adapter a1), {options.new_tokens} new tokens", peft_conditions))
    tracer_provider.force_flush()
    spans = exporter.get_finished_spans()
    adapters = {span.attributes.get("loratrace.adapter.name") for span in spans}
    print(f"\nexported spans: {len(spans)}; adapter names seen: {sorted(a for a in adapters if a)}")


if __name__ == "__main__":
    main()
