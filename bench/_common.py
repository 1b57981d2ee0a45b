"""What several benchmarks share: the repository on ``sys.path``, loopback ports, the tiny models and the timed
calls on them, SDK providers that drop what they export, and the vLLM engine's environment.

Benchmarks run as scripts (``python bench/bench_x.py``), so Python puts only ``bench/`` on ``sys.path``; importing
this module first adds the repository root, so a benchmark measures this checkout's ``loratrace`` (not another
editable install) and reuses the request builders in ``tests/support/``.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402

from tests.support.otlp_requests import RequestFactory, template_request  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

__all__ = [
    "ENGINE_ENV",
    "PROMPT",
    "REPO",
    "BackgroundClock",
    "CountingExporter",
    "RequestFactory",
    "counting_providers",
    "fixture_models",
    "free_port",
    "make_peft_call",
    "make_pipeline_call",
    "template_request",
    "wait_ready",
]

# the vLLM CPU engine as every vLLM benchmark runs it: a small KV cache, nothing downloaded or reported
ENGINE_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "HF_HUB_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


class CountingExporter(SpanExporter):
    """Counts spans and the adapter names they carry, then drops them, as a network exporter lets them go
    (an in-memory exporter keeping thousands of spans alive would weigh on the garbage collector)."""

    def __init__(self) -> None:
        self.count = 0
        self.adapter_names: set[str] = set()

    def export(self, spans: Any) -> SpanExportResult:
        self.count += len(spans)
        for span in spans:
            name = span.attributes.get("loratrace.adapter.name")
            if name:
                self.adapter_names.add(name)
        return SpanExportResult.SUCCESS


def counting_providers(export_delay_ms: float = 5000.0) -> tuple[TracerProvider, MeterProvider, CountingExporter]:
    """SDK providers as an application sets them up (``export_delay_ms``: the BatchSpanProcessor's schedule delay,
    5 s by default as in the SDK), exporting into a counter."""
    exporter = CountingExporter()
    tracer_provider = TracerProvider()
    processor = BatchSpanProcessor(exporter, max_export_batch_size=512, schedule_delay_millis=export_delay_ms)
    tracer_provider.add_span_processor(processor)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return tracer_provider, meter_provider, exporter


class BackgroundClock:
    """CPU time of loratrace's background thread (bench-only use of its internal finisher), read around each
    call: how much work it does per call, and which calls its bursts overlapped."""

    # a burst completes ~100 spans; a thread merely waking to check its queue takes a few µs
    BURST_NS = 200_000

    def __init__(self) -> None:
        from loratrace.runtime.finisher import finisher

        self._finisher = finisher

    def read(self) -> int | None:
        thread = self._finisher._thread
        if thread is None or thread.ident is None:
            return None
        return time.clock_gettime_ns(time.pthread_getcpuclockid(thread.ident))


def fixture_models() -> Any:
    """The tiny Llama and its adapters, built locally once under ``.fixtures/`` (where the tests build them) or
    ``$LORATRACE_FIXTURES``."""
    from loratrace.demo.tiny_model import ensure_tiny_models

    return ensure_tiny_models(Path(os.environ.get("LORATRACE_FIXTURES", REPO / ".fixtures")))


PROMPT = "Invoices are due within"


def _tokenizer_and_models() -> tuple[Any, Any]:
    """Set-up shared by the timed calls: one torch thread, transformers quiet, the fixture models."""
    import torch
    import transformers
    from transformers import AutoTokenizer

    # the pipeline logs a max_length notice on every call, with or without instrumentation
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    models = fixture_models()
    return AutoTokenizer.from_pretrained(models.base), models


def _base_model(models: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(models.base, dtype=torch.float32)


def make_pipeline_call(new_tokens: int) -> Callable[[], Any]:
    """The text-generation pipeline call the benches time (greedy, ``new_tokens`` new tokens), on its own model."""
    from transformers import pipeline

    tokenizer, models = _tokenizer_and_models()
    generator = pipeline("text-generation", model=_base_model(models), tokenizer=tokenizer)
    return lambda: generator(PROMPT, return_full_text=False, max_new_tokens=new_tokens, do_sample=False)


def make_peft_call(new_tokens: int) -> tuple[Callable[[], Any], Any, Any]:
    """The ``PeftModel.generate`` call the benches time (adapter a1, greedy), on its own model: (call, the
    PeftModel, its inputs)."""
    from peft import PeftModel

    tokenizer, models = _tokenizer_and_models()
    model = PeftModel.from_pretrained(_base_model(models), models.adapters["a1"], adapter_name="a1")
    inputs = tokenizer([PROMPT], return_tensors="pt")
    return lambda: model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False), model, inputs


def wait_ready(process: Any, url: str, deadline: float, ready_path: str = "/v1/models") -> None:
    """Until ``GET url + ready_path`` answers (a vLLM server's model list, a collector's ``/health``)."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + ready_path, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"server for {url} not ready in time")
