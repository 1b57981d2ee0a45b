"""Time loratrace adds to one generate call, measured in two processes running at the same time, one per core.

\b
    .venv/bin/python bench/bench_transformers_two_cores.py                      # pipeline, then PeftModel (~40 min)
    .venv/bin/python bench/bench_transformers_two_cores.py --workload pipeline --seconds 600
    .venv/bin/python bench/bench_transformers_two_cores.py --aa --seconds 360   # both plain: the method's own error

Why: on this shared 2-vCPU host a call's time drifts by 2-5 % within seconds, and adjacent one-second blocks of
the same process differ by ~400 µs (sd), so interleaving blocks in one process cannot resolve tens of
microseconds (see ``bench_transformers_overhead.py``). The drift is mostly shared by both cores, though: the
medians of two processes over the same second differ by only ~110 µs (sd). So one process runs the calls with
loratrace and the other without, concurrently, each pinned to its own core (every thread, loratrace's background
thread included: it competes with its serving thread for that core, as on a busy server), and the figure is the
difference of their medians in each second. The cores are not alike (one was ~150-300 µs per call faster), so the
processes swap cores every ``--period`` seconds on a common clock, and each pair of periods (one in either
placement) gives one estimate in which the cores' difference cancels. The result is the mean over those pairs
with a 95 % bootstrap interval over them. ``--aa`` runs both processes without loratrace, to show the method reads
~0 when there is nothing to find.

Each call is the same as in ``bench_transformers_overhead.py``: the tiny Llama (built locally), greedy, 8 new
tokens, ``torch.set_num_threads(1)``; the text-generation pipeline call, or ``PeftModel.generate`` with adapter a1.
loratrace exports through an SDK TracerProvider + BatchSpanProcessor into an exporter that drops the spans and an
SDK MeterProvider. The one-second windows that hold a core swap are left out.
"""

from __future__ import annotations

import argparse
import contextlib
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

WINDOW_SECONDS = 1.0
WARM_UP_CALLS = 30
MIN_CALLS_PER_WINDOW = 5


def _pin(core: int) -> None:
    """Every thread of this process onto one core (``sched_setaffinity`` on Linux moves one thread at a time)."""
    for thread_id in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            os.sched_setaffinity(int(thread_id), {core})


def _call(workload: str, new_tokens: int) -> Callable[[], Any]:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    from loratrace.demo.tiny_model import ensure_tiny_models

    transformers.logging.set_verbosity_error()  # the pipeline logs a max_length notice on every call
    root = Path(os.environ.get("LORATRACE_FIXTURES", Path(tempfile.gettempdir()) / "loratrace-bench-fixtures"))
    models = ensure_tiny_models(root)
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(models.base)
    base = AutoModelForCausalLM.from_pretrained(models.base, dtype=torch.float32)
    prompt = "Invoices are due within"
    if workload == "pipeline":
        generator = pipeline("text-generation", model=base, tokenizer=tokenizer)
        return lambda: generator(prompt, return_full_text=False, max_new_tokens=new_tokens, do_sample=False)
    from peft import PeftModel

    model = PeftModel.from_pretrained(base, models.adapters["a1"], adapter_name="a1")
    inputs = tokenizer([prompt], return_tensors="pt")
    return lambda: model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False)


def _worker(options: argparse.Namespace) -> None:
    _pin(options.core)
    call = _call(options.workload, options.new_tokens)
    if options.traced:
        from bench_transformers_overhead import _providers

        import loratrace

        tracer_provider, meter_provider, exporter = _providers()
        loratrace.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    for _ in range(WARM_UP_CALLS):
        call()
    _pin(options.core)  # again: the threads started since (loratrace's, the SDK's exporter) inherit nothing later
    while time.time() < options.start_at:
        time.sleep(0.001)
    calls: list[tuple[float, float]] = []
    period = 0
    end_at = options.start_at + options.seconds
    while (now := time.time()) < end_at:
        current = int((now - options.start_at) // options.period)
        if current != period:
            period = current
            _pin(options.core ^ (period % 2))
        started = time.perf_counter_ns()
        call()
        calls.append((now, (time.perf_counter_ns() - started) / 1000))
    result: dict[str, Any] = {"calls": calls}
    if options.traced:
        loratrace.force_flush()
        result["spans_exported"] = exporter.count
    options.worker_output.write_text(json.dumps(result))


def _window_medians(calls: list[tuple[float, float]], start_at: float) -> dict[int, float]:
    windows: dict[int, list[float]] = {}
    for at, micros in calls:
        windows.setdefault(int((at - start_at) // WINDOW_SECONDS), []).append(micros)
    return {index: statistics.median(v) for index, v in windows.items() if len(v) >= MIN_CALLS_PER_WINDOW}


def analyse(a: list[tuple[float, float]], b: list[tuple[float, float]], start_at: float, period: float) -> dict:
    """Per one-second window, median(a) - median(b); per period, their mean; per pair of periods (one in either
    placement), the mean of the two: the independent samples of the figure."""
    medians_a, medians_b = _window_medians(a, start_at), _window_medians(b, start_at)
    windows_per_period = int(period / WINDOW_SECONDS)
    by_period: dict[int, list[float]] = {}
    for window in sorted(medians_a.keys() & medians_b.keys()):
        if window % windows_per_period == 0:  # this window holds the core swap
            continue
        by_period.setdefault(window // windows_per_period, []).append(medians_a[window] - medians_b[window])
    period_means = {index: statistics.mean(values) for index, values in by_period.items()}
    pairs = [
        (period_means[index] + period_means[index + 1]) / 2
        for index in range(0, max(period_means, default=0) + 1, 2)
        if index in period_means and index + 1 in period_means
    ]
    if len(pairs) < 2:
        raise SystemExit("too few pairs of periods to estimate anything: give more --seconds or a shorter --period")
    rng = random.Random(20261129)
    means = sorted(statistics.mean(rng.choices(pairs, k=len(pairs))) for _ in range(4000))
    return {
        "calls": [len(a), len(b)],
        "median_us": [statistics.median(m for _, m in a), statistics.median(m for _, m in b)],
        "windows": sum(len(v) for v in by_period.values()),
        "period_means_us": [round(period_means[i], 1) for i in sorted(period_means)],
        "pairs": len(pairs),
        "added_us": statistics.mean(pairs),
        "interval_us": (means[100], means[3899]),
    }


def _run(options: argparse.Namespace, workload: str, traced: bool) -> dict[str, Any]:
    """One measurement: two workers, one per core, the first with loratrace unless ``traced`` is false."""
    start_at = time.time() + options.start_delay
    outputs = [Path(tempfile.mkstemp(suffix=".json")[1]) for _ in range(2)]

    def command(core: int, output: Path) -> list[str]:
        command = [sys.executable, __file__, "--worker-output", str(output), "--start-at", str(start_at)]
        command += ["--seconds", str(options.seconds), "--period", str(options.period), "--workload", workload]
        command += ["--new-tokens", str(options.new_tokens), "--core", str(core)]
        return command + (["--traced"] if traced and core == 0 else [])

    processes = [subprocess.Popen(command(core, output)) for core, output in enumerate(outputs)]
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"a worker failed with exit code {process.returncode}")
    first, second = (json.loads(output.read_text()) for output in outputs)
    for output in outputs:
        output.unlink()
    figures = analyse(first["calls"], second["calls"], start_at, options.period)
    figures["spans_exported"] = first.get("spans_exported")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("pipeline", "peft", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=1200.0, help="measured seconds per workload")
    parser.add_argument("--period", type=float, default=20.0, help="seconds between core swaps")
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--aa", action="store_true", help="both processes without loratrace (the method's error)")
    parser.add_argument("--start-delay", type=float, default=40.0, help="seconds allowed for the workers' set-up")
    parser.add_argument("--worker-output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker_output is not None:
        _worker(options)
        return
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("this benchmark needs two cores: it runs one process on each")
    workloads = ("pipeline", "peft") if options.workload == "both" else (options.workload,)
    for workload in workloads:
        figures = _run(options, workload, traced=not options.aa)
        print(json.dumps({"workload": workload, "aa": options.aa, **figures}), flush=True)
        label = "A/A (both uninstrumented)" if options.aa else "loratrace minus uninstrumented"
        low, high = figures["interval_us"]
        print(
            f"{workload}: {label}: {figures['added_us']:+.1f} µs per call (95 % interval {low:+.1f} .. {high:+.1f}; "
            f"{figures['pairs']} pairs of {options.period:g} s periods, {figures['windows']} one-second windows, "
            f"{sum(figures['calls'])} calls; medians {figures['median_us'][0]:.1f} / {figures['median_us'][1]:.1f} µs)",
            flush=True,
        )


if __name__ == "__main__":
    main()
