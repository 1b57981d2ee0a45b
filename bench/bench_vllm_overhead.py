"""vLLM with loratrace vs without, side by side in one run.

\b
    .venv/bin/python bench/bench_vllm_overhead.py                 # offline + server
    .venv/bin/python bench/bench_vllm_overhead.py --skip-server   # offline only (~5 min)

Offline: one engine; a batch of prompts spread evenly over the base model, a1 and a2 goes through
``LLM.generate`` uninstrumented and instrumented (``instrument()`` / ``uninstrument()`` around the traced run) in
pairs, back to back, the order flipped every other pair. Three measures, because loratrace completes spans on a
background thread: **call** (the batch call as its caller sees it), **drained** (the batch plus draining that
thread: all the work in series) and **sustained** (batches back to back, then the drain). Each figure is the
median of the per-pair throughput ratios, with a 95 % bootstrap interval over the pairs. Goal: >= 98 %. Then
loratrace's own work per request, apart from the engine's (``_per_request_costs``), and the OpenTelemetry SDK's
own floor for the same telemetry (``_sdk_floor``). ``--metrics off`` runs it all with spans only (a no-op meter
provider, as ``loratrace.instrument(store=...)`` does).

Server: two servers from the same model and adapters, one launched through
``loratrace.instrumentation.vllm.serve`` exporting over OTLP/HTTP to a receiver in this process, one plain
``vllm.entrypoints.openai.api_server``; sequential non-streamed completions alternate between them (base, a1,
a2 in turn); the figure is the relative difference of median latencies. Goal: <= 1 %.

Spans in the offline part go to a BatchSpanProcessor with an exporter that drops them (the SDK's full cost
without a network); metrics to an in-memory reader.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from _common import ENGINE_ENV, REPO, fixture_models, free_port, wait_ready

PROMPTS = [
    "The quick brown fox",
    "Invoices are due within",
    "Please reset my password",
    "Translate the following sentence",
    "Return a JSON object with",
    "Our enterprise customers need",
    "What is the capital of France?",
]


SUSTAINED_BATCHES = 4
# measure: (batches per run, whether the traced run's time includes draining loratrace's background work)
MEASURES = {
    "call": (1, False),  # the batch call as its caller sees it
    "drained": (1, True),  # the batch, then all of loratrace's work on it: everything in series
    "sustained": (SUSTAINED_BATCHES, True),  # batches back to back, the background thread competing, then drained
}


def bench_offline(*, prompts: int, repeats: int, max_tokens: int, engine: str, metrics: str) -> dict[str, float]:
    # vLLM's default runs the engine core in its own process; "in-process" (VLLM_ENABLE_V1_MULTIPROCESSING=0) puts
    # the engine's Python loop in this process, where loratrace's background thread competes with it for the GIL
    os.environ.update(ENGINE_ENV, VLLM_ENABLE_V1_MULTIPROCESSING="0" if engine == "in-process" else "1")
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    import loratrace

    class DropExporter(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    models = fixture_models()
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    llm = LLM(
        model=str(models.base), served_model_name="tiny-llama", dtype="float32", enforce_eager=True,
        enable_lora=True, max_lora_rank=8, max_loras=3, max_model_len=256,
    )  # fmt: skip
    loras = [
        None,
        LoRARequest("a1", 1, str(models.adapters["a1"])),
        LoRARequest("a2", 2, str(models.adapters["a2"])),
    ]
    batch = [PROMPTS[i % len(PROMPTS)] + f" #{i}" for i in range(prompts)]
    batch_loras = [loras[i % 3] for i in range(prompts)]
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    # "off": spans only, as with loratrace.instrument(store=...) (the store derives every figure from the spans)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()]) if metrics == "sdk" else NoOpMeterProvider()

    def run(*, drained: bool = False, batches: int = 1) -> float:
        start = time.perf_counter()
        for _ in range(batches):
            outputs = llm.generate(batch, params, lora_request=batch_loras, use_tqdm=False)
            assert len(outputs) == prompts
        if drained:  # count the spans' completion (done off the calling thread) in the time too
            loratrace.force_flush()
        elapsed = time.perf_counter() - start
        return batches * prompts / elapsed

    run()  # warm-up: loads both adapters, fills caches

    def instrument() -> None:
        loratrace.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, libraries=["vllm"])

    # Each repetition runs every measure as a pair, plain and traced back to back (order flipped every other
    # time): this host's throughput drifts by several percent over seconds, and a pair's two runs share the drift.
    rates: dict[str, dict[bool, list[float]]] = {measure: {False: [], True: []} for measure in MEASURES}
    for repetition in range(repeats):
        for index, (measure, (batches, drained)) in enumerate(MEASURES.items()):
            for traced in (False, True) if (repetition + index) % 2 == 0 else (True, False):
                if traced:
                    instrument()
                    rates[measure][True].append(run(batches=batches, drained=drained))
                    loratrace.uninstrument()  # drains what is left (the "call" measure's spans) untimed
                else:
                    rates[measure][False].append(run(batches=batches))

    costs = _per_request_costs(run, instrument, loratrace.uninstrument, repeats=min(repeats, 5), prompts=prompts)
    costs["sdk_floor_us_per_request"] = _sdk_floor(
        run, tracer_provider, meter_provider, repeats=min(repeats, 5), prompts=prompts
    )
    tracer_provider.shutdown()
    result: dict[str, Any] = {**costs, "prompts": prompts, "max_tokens": max_tokens, "engine": engine}
    result["metrics"] = metrics
    result["repeats"] = repeats
    for measure, by_traced in rates.items():
        ratios = [traced / plain for plain, traced in zip(by_traced[False], by_traced[True], strict=True)]
        result[measure] = {
            "plain_median_req_s": statistics.median(by_traced[False]),
            "traced_median_req_s": statistics.median(by_traced[True]),
            "ratio": statistics.median(ratios),
            "ratio_interval": _median_interval(ratios),
        }
    return result


def _per_request_costs(run: Any, instrument: Any, uninstrument: Any, *, repeats: int, prompts: int) -> dict[str, float]:
    """loratrace's own work per request, measured apart from the engine's, whose run-to-run variation on this
    host is larger than that work: on the calling thread, a batch call's duration minus the time inside vLLM's
    ``LLM.generate`` (timed beneath loratrace's wrapper); on the background thread, the time to complete the
    batch's spans with the engine idle (the background thread held during the call, then drained: bench-only
    use of loratrace's internal finisher). Both are CPU-bound and short, so their medians are steady."""
    from _inner_timer import InnerTimer
    from vllm import LLM

    from loratrace.runtime import finisher as _finisher

    timer = InnerTimer(LLM)
    gather = _finisher.finisher.gather_seconds
    timer.install()
    _finisher.finisher.gather_seconds = 3600.0  # one batch (259 spans) stays below the early-burst threshold of 512
    calling: dict[bool, list[float]] = {False: [], True: []}
    background: list[float] = []
    try:
        for _ in range(repeats):
            for traced in (False, True):
                if traced:
                    instrument()
                started = time.perf_counter_ns()
                run()
                calling[traced].append((time.perf_counter_ns() - started - timer.last_ns) / prompts / 1000)
                if traced:
                    started = time.perf_counter_ns()
                    _finisher.finisher.drain()
                    background.append((time.perf_counter_ns() - started) / prompts / 1000)
                    uninstrument()
    finally:
        _finisher.finisher.gather_seconds = gather
        timer.remove()
    return {
        "calling_thread_us_per_request": statistics.median(calling[True]) - statistics.median(calling[False]),
        "background_us_per_request": statistics.median(background),
    }


def _sdk_floor(run: Any, tracer_provider: Any, meter_provider: Any, *, repeats: int, prompts: int) -> float:
    """What the OpenTelemetry SDK alone costs per request for the telemetry loratrace emits: one traced batch's
    request spans are captured, then the same SDK calls are replayed for each (start the span with its name and
    start time, set the same attributes, end it; record the same four histograms with the same labels), with no
    loratrace logic, into the same span processor and meter provider. Any instrumentation emitting this much
    through the SDK pays it; median µs per request over ``repeats`` replays of the batch."""
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import loratrace
    from loratrace import semconv
    from loratrace.runtime.recorder import GenerationMetrics

    captured = InMemorySpanExporter()
    capture_provider = TracerProvider()
    capture_provider.add_span_processor(SimpleSpanProcessor(captured))
    loratrace.instrument(tracer_provider=capture_provider, meter_provider=NoOpMeterProvider(), libraries=["vllm"])
    run()
    loratrace.uninstrument()
    spans = [span for span in captured.get_finished_spans() if semconv.GEN_AI_OPERATION_NAME in span.attributes]
    assert len(spans) == prompts, len(spans)
    label_keys = (
        semconv.GEN_AI_OPERATION_NAME, semconv.GEN_AI_PROVIDER_NAME, semconv.VARIANT, semconv.ADAPTER_NAME,
        semconv.BASE_MODEL_NAME, semconv.ROUTE_NAME,
    )  # fmt: skip
    replay = []
    for span in spans:
        attributes = dict(span.attributes)
        labels = {key: attributes[key] for key in label_keys if key in attributes}
        facts = (
            attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS],
            attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS],
            attributes.get(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK),
        )
        replay.append((span.name, span.start_time, span.end_time, attributes, labels, facts))
    tracer = tracer_provider.get_tracer("sdk-floor")
    histograms = GenerationMetrics(meter_provider.get_meter("sdk-floor"))
    token_type = semconv.GEN_AI_TOKEN_TYPE
    per_request: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        for name, start, end, attributes, labels, (input_tokens, output_tokens, ttft) in replay:
            span = tracer.start_span(name, start_time=start)
            span.set_attributes(attributes)
            span.end(end_time=end)
            histograms.duration.record((end - start) / 1e9, labels)
            histograms.tokens.record(input_tokens, {**labels, token_type: "input"})
            histograms.tokens.record(output_tokens, {**labels, token_type: "output"})
            if ttft is not None:
                histograms.ttft.record(ttft, labels)
        per_request.append((time.perf_counter_ns() - started) / len(replay) / 1000)
        tracer_provider.force_flush()  # untimed: the export, as loratrace's happens off its bursts
    return statistics.median(per_request)


def _median_interval(ratios: list[float], resamples: int = 2000) -> tuple[float, float]:
    """95 % bootstrap interval of the median of the per-pair ratios (pairs are the independent samples)."""
    rng = random.Random(20261129)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return medians[int(resamples * 0.025)], medians[int(resamples * 0.975) - 1]


def _percent_interval(interval: Sequence[float]) -> str:
    return f"95 % interval {interval[0]:.1%} .. {interval[1]:.1%}"


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def _start_server(models: Any, *, traced: bool, sink: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    module = "loratrace.instrumentation.vllm.serve" if traced else "vllm.entrypoints.openai.api_server"
    env = {**os.environ, **ENGINE_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": sink}
    command = [
        sys.executable, "-m", module, "--model", str(models.base), "--served-model-name", "tiny-llama",
        "--dtype", "float32", "--enforce-eager", "--max-model-len", "256", "--enable-lora",
        "--max-lora-rank", "8", "--max-loras", "3", "--lora-modules", f"a1={models.adapters['a1']}",
        f"a2={models.adapters['a2']}", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    return process, f"http://127.0.0.1:{port}"


def _complete(url: str, model: str, prompt: str, max_tokens: int) -> float:
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": True}).encode()  # fmt: skip
    request = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
    return time.perf_counter() - start


def bench_server(*, requests: int, max_tokens: int) -> dict[str, float]:
    models = fixture_models()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}"
    servers = {traced: _start_server(models, traced=traced, sink=sink_url) for traced in (False, True)}
    try:
        deadline = time.monotonic() + 300
        for process, url in servers.values():
            wait_ready(process, url, deadline)
        names = ["tiny-llama", "a1", "a2"]
        for i in range(9):  # warm-up both
            for _, url in servers.values():
                _complete(url, names[i % 3], PROMPTS[i % len(PROMPTS)], max_tokens)
        latencies: dict[bool, list[float]] = {False: [], True: []}
        for i in range(requests):
            order = (False, True) if i % 2 == 0 else (True, False)
            for traced in order:
                url = servers[traced][1]
                latencies[traced].append(_complete(url, names[i % 3], PROMPTS[i % len(PROMPTS)], max_tokens))
    finally:
        for process, _ in servers.values():
            process.terminate()
        for process, _ in servers.values():
            process.wait(timeout=60)
        sink.shutdown()
    plain, traced = statistics.median(latencies[False]), statistics.median(latencies[True])
    return {
        "requests_each": requests,
        "max_tokens": max_tokens,
        "plain_median_ms": plain * 1e3,
        "traced_median_ms": traced * 1e3,
        "overhead": traced / plain - 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=258, help="offline batch size (spread over base, a1, a2)")
    parser.add_argument("--repeats", type=int, default=30, help="offline pairs (plain, traced) of each measure")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--server-requests", type=int, default=150, help="requests to each server")
    parser.add_argument("--skip-server", action="store_true")
    parser.add_argument("--skip-offline", action="store_true")
    parser.add_argument(
        "--engine",
        choices=("separate-process", "in-process"),
        default="separate-process",
        help="offline engine layout: vLLM's default (engine core in its own process) or in this process",
    )
    parser.add_argument(
        "--metrics",
        choices=("sdk", "off"),
        default="sdk",
        help="offline: spans and the SDK's metrics (an in-memory reader), or spans only (a no-op meter provider, "
        "as with loratrace.instrument(store=...))",
    )
    args = parser.parse_args()
    if not args.skip_server:
        # First, before this process holds an engine: the two servers need the memory and the cores.
        server = bench_server(requests=args.server_requests, max_tokens=args.max_tokens)
        print(json.dumps({"server": server}), flush=True)
        print(
            f"server: median latency {server['plain_median_ms']:.1f} ms plain vs "
            f"{server['traced_median_ms']:.1f} ms with loratrace ({server['overhead']:+.2%}, goal <= +1%)",
            flush=True,
        )
    if not args.skip_offline:
        offline = bench_offline(
            prompts=args.prompts, repeats=args.repeats, max_tokens=args.max_tokens, engine=args.engine,
            metrics=args.metrics,
        )  # fmt: skip
        print(json.dumps({"offline": offline}), flush=True)
        print(
            f"offline ({args.engine} engine, metrics {args.metrics}, {args.repeats} pairs per measure; "
            "goal >= 98% of plain):",
            flush=True,
        )
        for measure in MEASURES:
            figures = offline[measure]
            print(
                f"  {measure:9s}: {figures['plain_median_req_s']:.1f} req/s plain, "
                f"{figures['traced_median_req_s']:.1f} with loratrace; median of paired ratios "
                f"{figures['ratio']:.2%} ({_percent_interval(figures['ratio_interval'])})",
                flush=True,
            )
        engine_us = 1e6 / offline["call"]["plain_median_req_s"]
        own_us = offline["calling_thread_us_per_request"] + offline["background_us_per_request"]
        print(
            f"loratrace's own work per request: {offline['calling_thread_us_per_request']:.1f} µs on the calling "
            f"thread + {offline['background_us_per_request']:.1f} µs on the background thread, against "
            f"{engine_us:.0f} µs of engine time per request: throughput if none of it overlapped the engine "
            f"{engine_us / (engine_us + own_us):.2%}",
            flush=True,
        )
        floor_us = offline["sdk_floor_us_per_request"]
        print(
            f"the SDK's own floor for the same spans and histogram records, no loratrace logic: {floor_us:.1f} µs "
            f"per request: throughput if none of it overlapped the engine {engine_us / (engine_us + floor_us):.2%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
