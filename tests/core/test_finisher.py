"""Generation spans completed off the serving thread are never lost: not at exit, not by a drain's caller; a
burst's spans are exported as soon as the burst is over, by a thread a hung endpoint cannot stop the bursts with;
and a blocked background thread costs serving no more than a bounded queue."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Sequence

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from loratrace.runtime import finisher as _finisher
from loratrace.runtime.finisher import Finisher
from loratrace.runtime.generation import Generation
from loratrace.runtime.recorder import GenerationRecorder

SCRIPT = textwrap.dedent(
    """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
    from loratrace.runtime.recorder import GenerationRecorder

    one_line = ConsoleSpanExporter(formatter=lambda s: s.to_json(indent=None) + "\\n")
    provider = TracerProvider()
    provider.add_span_processor(PROCESSOR(one_line))
    recorder = GenerationRecorder(provider.get_tracer("exit-test"), None, provider="test")
    generation = recorder.start(
        operation="text_completion", request_model="tiny-llama", response_model="a1",
        attributes={"loratrace.adapter.name": "a1"}, adapter_name="a1", base_model="tiny-llama",
    )
    generation.finish(input_tokens=3, output_tokens=5)
    # no flush, no shutdown: the process simply ends
    """
)


@pytest.mark.parametrize("processor", ["SimpleSpanProcessor", "BatchSpanProcessor"])
def test_spans_queued_at_interpreter_exit_are_completed_and_exported(processor):
    script = SCRIPT.replace("PROCESSOR", processor)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("{")]
    span = json.loads(line)
    assert span["name"] == "text_completion a1"  # the model that served names the span
    assert span["attributes"]["loratrace.adapter.name"] == "a1"
    assert span["attributes"]["gen_ai.usage.output_tokens"] == 5


def test_drain_waits_for_everything_submitted_before_it_in_order():
    finisher = Finisher()
    seen: list[int] = []
    release = threading.Event()
    finisher.submit(release.wait, 10)  # the worker is busy until released
    for number in range(100):
        finisher.submit(seen.append, number)
    assert seen == []
    release.set()
    assert finisher.drain(timeout=10)
    assert seen == list(range(100))


def test_a_failing_task_does_not_stop_the_worker():
    finisher = Finisher()
    seen: list[str] = []
    finisher.submit(lambda: 1 / 0)
    finisher.submit(seen.append, "after")
    assert finisher.drain(timeout=10)
    assert seen == ["after"]


def test_a_full_burst_starts_without_waiting_for_the_gather_interval():
    """A burst is bounded, so the span processor's queue is never handed more than it holds at once."""
    finisher = Finisher(gather_seconds=3600.0)
    done = threading.Event()
    seen: list[int] = []
    for number in range(_finisher._BURST_ITEMS):
        finisher.submit(seen.append, number)
    finisher.submit(done.set)  # the worker may have taken the first item already: one more fills the burst
    assert done.wait(timeout=30)  # long before the hour-long gather interval
    assert seen == list(range(_finisher._BURST_ITEMS))


def test_what_tasks_ask_for_after_their_burst_runs_once_after_them_and_before_a_drain_returns():
    finisher = Finisher()
    order: list[object] = []

    def task(number: int) -> None:
        order.append(number)
        finisher.after_burst(flushed)  # every task asks; the burst calls it once

    def flushed() -> None:
        order.append("after the burst")

    release = threading.Event()
    finisher.submit(release.wait, 10)  # the worker is busy until released: the tasks below form one burst
    for number in range(3):
        finisher.submit(task, number)
    release.set()
    assert finisher.drain(timeout=10)
    assert order == [0, 1, 2, "after the burst"]


def test_a_failing_after_burst_function_does_not_stop_the_worker():
    finisher = Finisher()
    seen: list[str] = []
    finisher.submit(lambda: finisher.after_burst(lambda: 1 / 0))
    assert finisher.drain(timeout=10)
    finisher.submit(seen.append, "next burst")
    assert finisher.drain(timeout=10)
    assert seen == ["next burst"]


def test_after_burst_outside_a_task_runs_at_once():
    seen: list[str] = []
    Finisher().after_burst(lambda: seen.append("now"))
    assert seen == ["now"]


class SignallingExporter(InMemorySpanExporter):
    """The SDK's in-memory exporter, which also says when an export happened."""

    def __init__(self) -> None:
        super().__init__()
        self.exported = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        self.exported.set()
        return result


def test_a_bursts_spans_are_exported_when_it_ends_not_at_the_span_processors_schedule(monkeypatch):
    """Finished spans waiting in a BatchSpanProcessor slowed the serving thread's model calls (docs/benchmarks.md,
    session 5); they are exported as soon as their burst is over."""
    monkeypatch.setattr(_finisher.finisher, "gather_seconds", 0.05)
    exporter = SignallingExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=3_600_000))
    try:
        recorder = GenerationRecorder(provider.get_tracer("burst-test"), None, provider="test")
        _a_generation(recorder, "a1").finish(input_tokens=3, output_tokens=5)
        assert exporter.exported.wait(timeout=30)  # long before the processor's hour-long schedule
        (span,) = exporter.get_finished_spans()
        assert span.attributes["loratrace.adapter.name"] == "a1"
        assert span.attributes["gen_ai.usage.output_tokens"] == 5
        recorder.close()
    finally:
        provider.shutdown()


def _a_generation(recorder: GenerationRecorder, adapter: str) -> Generation:
    return recorder.start(
        operation="text_completion",
        request_model="tiny-llama",
        response_model=adapter,
        attributes={"loratrace.adapter.name": adapter},
        adapter_name=adapter,
        base_model="tiny-llama",
    )


def test_an_endpoint_that_does_not_answer_holds_neither_the_next_burst_nor_a_drain(monkeypatch, otlp_receiver):
    """The burst's export goes over real OTLP/HTTP to a receiver that reads the request and does not answer until
    the test lets it: the background thread goes on completing generations meanwhile. (When it exported itself,
    a default endpoint with no collector behind it held it ~40 s per burst; docs/benchmarks.md.)"""
    monkeypatch.setattr(_finisher.finisher, "gather_seconds", 0.05)
    gate = threading.Event()
    otlp_receiver.answer_gate = gate
    otlp_receiver.request_arrived.clear()
    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=f"{otlp_receiver.endpoint}/v1/traces", timeout=300)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=3_600_000))
    try:
        recorder = GenerationRecorder(provider.get_tracer("hung-endpoint-test"), None, provider="test")
        _a_generation(recorder, "a1").finish(input_tokens=3, output_tokens=5)
        assert otlp_receiver.request_arrived.wait(timeout=30)  # the burst's export now waits for an answer
        second = _a_generation(recorder, "a2")
        second.finish(input_tokens=3, output_tokens=7)
        assert _finisher.finisher.drain(timeout=30)  # the export is held for up to 300 s
        assert not second.is_recording()  # its SDK span is built and ended
        recorder.close()
    finally:
        gate.set()
        otlp_receiver.answer_gate = None
        provider.shutdown()
    received = otlp_receiver.wait_for_spans(lambda span: span.scope == "hung-endpoint-test", count=2)
    assert sorted(span.attributes["loratrace.adapter.name"] for span in received) == ["a1", "a2"]
    assert [span.attributes["gen_ai.usage.output_tokens"] for span in received] == [5, 7]


def test_beyond_its_bound_the_queue_drops_new_work_says_so_once_and_keeps_what_it_accepted(monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="loratrace.runtime.finisher")
    finisher = Finisher(gather_seconds=0.01, max_queued=20)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:  # a task that blocks, as a span processor waiting on its exporter does
        holding.set()
        release.wait(30)

    finisher.submit(hold)
    assert holding.wait(timeout=30)
    seen: list[int] = []
    for number in range(25):
        finisher.submit(seen.append, number)
    release.set()
    assert finisher.drain(timeout=30)
    assert seen == list(range(20))
    assert finisher.dropped == 5
    finisher.submit(seen.append, 25)  # room again: accepted
    assert finisher.drain(timeout=30)  # a later burst than the one that caught up, so its message is logged
    assert seen[-1] == 25
    messages = [record.getMessage() for record in caplog.records]
    assert sum("dropping generation spans" in message for message in messages) == 1
    assert "loratrace is keeping up again, after dropping 5 generation spans" in messages


def test_a_large_group_waits_for_the_span_processor_after_every_burst_so_it_drops_nothing(otlp_receiver):
    """A group of 3,000 generations (a vLLM batch) into a BatchSpanProcessor whose queue holds 600 spans, exporting
    over real OTLP/HTTP: building spans is faster than sending them, so without a pause for the export every 512
    spans the processor would drop most of them."""
    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=f"{otlp_receiver.endpoint}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=600, schedule_delay_millis=3_600_000))
    try:
        recorder = GenerationRecorder(provider.get_tracer("large-group-test"), None, provider="test")
        tasks: list[tuple] = []
        for number in range(3000):
            _a_generation(recorder, "a1").finish(input_tokens=3, output_tokens=number, into=tasks)
        _finisher.finisher.submit_all(tasks)
        assert _finisher.finisher.drain(timeout=120)
        assert provider.force_flush()
        recorder.close()
    finally:
        provider.shutdown()
    received = otlp_receiver.wait_for_spans(lambda span: span.scope == "large-group-test", count=3000)
    assert sorted(span.attributes["gen_ai.usage.output_tokens"] for span in received) == list(range(3000))
