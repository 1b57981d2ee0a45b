"""Generation spans completed off the serving thread are never lost: not at exit, not by a drain's caller."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

from loratrace import _finisher
from loratrace._finisher import Finisher

SCRIPT = textwrap.dedent(
    """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
    from loratrace.instrumentation._generation import GenerationRecorder

    one_line = ConsoleSpanExporter(formatter=lambda s: s.to_json(indent=None) + "\\n")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(one_line))
    recorder = GenerationRecorder(provider.get_tracer("exit-test"), None, provider="test")
    generation = recorder.start(
        operation="text_completion", request_model="tiny-llama", response_model="a1",
        attributes={"loratrace.adapter.name": "a1"}, adapter_name="a1", base_model="tiny-llama",
    )
    generation.finish(input_tokens=3, output_tokens=5)
    # no flush, no shutdown: the process simply ends
    """
)


def test_spans_queued_at_interpreter_exit_are_completed():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60)
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("{")]
    span = json.loads(line)
    assert span["name"] == "text_completion tiny-llama"
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


def test_a_full_burst_starts_without_waiting_for_the_gather_interval(monkeypatch):
    """A burst is bounded, so the span processor's queue is never handed more than it holds at once."""
    monkeypatch.setattr(_finisher, "_GATHER_SECONDS", 3600.0)
    finisher = Finisher()
    done = threading.Event()
    seen: list[int] = []
    for number in range(_finisher._BURST_ITEMS):
        finisher.submit(seen.append, number)
    finisher.submit(done.set)  # the worker may have taken the first item already: one more fills the burst
    assert done.wait(timeout=30)  # long before the hour-long gather interval
    assert seen == list(range(_finisher._BURST_ITEMS))
