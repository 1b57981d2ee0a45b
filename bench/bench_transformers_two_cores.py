"""Time loratrace adds to one generate call, measured in two processes running at the same time, one per core.

\b
    .venv/bin/python bench/bench_transformers_two_cores.py                      # pipeline, then PeftModel (~40 min)
    .venv/bin/python bench/bench_transformers_two_cores.py --workload pipeline --seconds 600
    .venv/bin/python bench/bench_transformers_two_cores.py --aa --seconds 360   # both plain: the method's own error

Why: on this shared 2-vCPU host a call's time drifts by 2-5 % within seconds, and adjacent one-second blocks of
the same process differ by ~400 µs (sd), so interleaving blocks in one process cannot resolve tens of
microseconds (see ``bench_transformers_overhead.py``). The drift is mostly shared by both cores, though: the
medians of two processes over the same second differ by only ~110 µs (sd). So two processes run the same calls at
the same time, each pinned to its own core (every thread, loratrace's background thread included: it competes
with its serving thread for that core, as on a busy server), one with loratrace and one without, and the figure
is the difference of their medians in each second. Two processes and two cores are not alike (one core was
~150-300 µs per call faster; one process ran ~64 µs slower than an identical one for minutes), so every
``--period`` seconds, on a common clock, the workers swap cores, and every other period they swap which one has
loratrace (``instrument()`` / ``uninstrument()``; the one-second window holding a swap is left out). Each cycle
of four periods covers every placement once and gives one estimate in which those differences cancel; the
result is the mean over the cycles with a 95 % bootstrap interval over them. ``--aa`` runs the same schedule
without loratrace, to show the method reads ~0 when there is nothing to find. An in-situ timer beneath the
wrappers splits the figure into the time around the model and the model's own ``generate``.

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
# one call as a worker records it: start (epoch s), duration µs, the model's own generate µs, background CPU µs,
# 1.0 if loratrace was on
Call = list[float]


def _pin(core: int) -> None:
    """Every thread of this process onto one core (``sched_setaffinity`` on Linux moves one thread at a time)."""
    for thread_id in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            os.sched_setaffinity(int(thread_id), {core})


def _call(workload: str, new_tokens: int) -> Callable[[], Any]:
    from _common import make_peft_call, make_pipeline_call

    return make_pipeline_call(new_tokens) if workload == "pipeline" else make_peft_call(new_tokens)[0]


def placement(role: int, period: int, aa: bool) -> tuple[int, bool]:
    """(core, with loratrace) of worker ``role`` (0 or 1) in ``period``. Over a cycle of four periods each worker
    runs on both cores, with and without loratrace: two processes differ by up to ~1 % in speed (the A/A run
    of the first version of this bench, which only swapped cores, read +64 µs), and so do the two cores."""
    core = role ^ (period % 2)
    traced = not aa and (role == (period // 2) % 2)
    return core, traced


def _worker(options: argparse.Namespace) -> None:
    from _common import BackgroundClock, counting_providers
    from _inner_timer import InnerTimer
    from transformers.generation.utils import GenerationMixin

    import loratrace

    if options.hold_background:  # bench-only experiment knob on loratrace's internal finisher
        from loratrace.runtime import finisher as _finisher

        _finisher.finisher.gather_seconds = 3600.0
    _pin(options.role)
    call = _call(options.workload, options.new_tokens)
    inner = InnerTimer(GenerationMixin)  # beneath loratrace's wrappers: the model's own generate
    inner.install()
    tracer_provider, meter_provider, exporter = counting_providers(options.export_delay_ms)
    background = BackgroundClock()
    for traced in (True, False):  # warm both ways; the background thread exists from here on
        if traced:
            loratrace.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        for _ in range(WARM_UP_CALLS):
            call()
        if traced:
            loratrace.uninstrument()
    period, traced = -1, False
    while time.time() < options.start_at:
        time.sleep(0.001)
    calls: list[tuple[float, float, float, float, float]] = []  # see Call
    end_at = options.start_at + options.seconds
    while (now := time.time()) < end_at:
        current = int((now - options.start_at) // options.period)
        if current != period:
            period = current
            core, wanted = placement(options.role, period, options.aa)
            if wanted != traced:  # in the window left out of the figures: uninstrument() drains the work held
                if wanted:
                    loratrace.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
                else:
                    loratrace.uninstrument()
                traced = wanted
            _pin(core)  # every thread, loratrace's background thread and the SDK's exporter included
        cpu_before = background.read()
        started = time.perf_counter_ns()
        call()
        elapsed = time.perf_counter_ns() - started
        cpu_after = background.read()
        cpu_us = (cpu_after - cpu_before) / 1000 if cpu_before is not None and cpu_after is not None else 0.0
        calls.append((now, elapsed / 1000, inner.last_ns / 1000, cpu_us, float(traced)))
    if traced:
        loratrace.uninstrument()
    result = {"calls": calls, "spans_exported": exporter.count}
    options.worker_output.write_text(json.dumps(result))


def _window_medians(calls: list[Call], start_at: float, value: Callable[[Call], float]) -> dict[int, float]:
    windows: dict[int, list[float]] = {}
    for call in calls:
        windows.setdefault(int((call[0] - start_at) // WINDOW_SECONDS), []).append(value(call))
    return {index: statistics.median(v) for index, v in windows.items() if len(v) >= MIN_CALLS_PER_WINDOW}


def analyse(
    calls: list[list[Call]],
    start_at: float,
    period: float,
    aa: bool,
    value: Callable[[Call], float] = lambda call: call[1],
) -> dict[str, Any]:
    """Per one-second window, the median of ``value`` (a call's duration by default) in the worker with loratrace
    minus the other's (in an A/A run: worker 0 minus worker 1, signs flipped as if worker 0 were traced in the
    periods ``placement`` gives it loratrace); per period, their mean; per cycle of four periods, the mean of the
    four: the independent samples, in which the processes' and the cores' own differences cancel."""
    medians = [_window_medians(worker, start_at, value) for worker in calls]
    windows_per_period = int(period / WINDOW_SECONDS)
    by_period: dict[int, list[float]] = {}
    for window in sorted(medians[0].keys() & medians[1].keys()):
        if window % windows_per_period == 0:  # this window holds the swap
            continue
        index = window // windows_per_period
        first_traced = placement(0, index, aa=False)[1]
        difference = medians[0][window] - medians[1][window]
        by_period.setdefault(index, []).append(difference if first_traced else -difference)
    period_means = {index: statistics.mean(values) for index, values in by_period.items()}
    cycles = [
        statistics.mean(period_means[index + offset] for offset in range(4))
        for index in range(0, max(period_means, default=0) + 1, 4)
        if all(index + offset in period_means for offset in range(4))
    ]
    if len(cycles) < 2:
        raise SystemExit("too few cycles of four periods: give more --seconds or a shorter --period")
    rng = random.Random(20261129)
    means = sorted(statistics.mean(rng.choices(cycles, k=len(cycles))) for _ in range(4000))
    return {
        "windows": sum(len(v) for v in by_period.values()),
        "period_means_us": [round(period_means[i], 1) for i in sorted(period_means)],
        "cycles": len(cycles),
        "added_us": statistics.mean(cycles),
        "interval_us": (means[100], means[3899]),
    }


def _run(options: argparse.Namespace, workload: str) -> dict[str, Any]:
    """One measurement: two workers at once, swapping cores and taking loratrace in turns (see ``placement``)."""
    start_at = time.time() + options.start_delay
    outputs = [Path(tempfile.mkstemp(suffix=".json")[1]) for _ in range(2)]

    def command(role: int, output: Path) -> list[str]:
        command = [sys.executable, __file__, "--worker-output", str(output), "--start-at", str(start_at)]
        command += ["--seconds", str(options.seconds), "--period", str(options.period), "--workload", workload]
        command += ["--new-tokens", str(options.new_tokens), "--role", str(role)]
        command += ["--hold-background"] if options.hold_background else []
        command += ["--export-delay-ms", str(options.export_delay_ms)]
        return command + (["--aa"] if options.aa else [])

    processes = [subprocess.Popen(command(role, output)) for role, output in enumerate(outputs)]
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"a worker failed with exit code {process.returncode}")
    workers = [json.loads(output.read_text()) for output in outputs]
    for output in outputs:
        output.unlink()
    calls = [worker["calls"] for worker in workers]
    if options.keep_calls is not None:  # every call of both workers, for analyses this script does not make
        kept = {"workload": workload, "start_at": start_at, "period": options.period, "calls": calls}
        options.keep_calls.with_suffix(f".{workload}.json").write_text(json.dumps(kept))
    figures = analyse(calls, start_at, options.period, options.aa)
    figures["calls"] = sum(len(worker) for worker in calls)
    figures["spans_exported"] = sum(worker["spans_exported"] for worker in workers)
    # where the difference is: around the model (pipeline / PEFT code and loratrace's wrappers) or inside it
    figures["outside_model"] = analyse(calls, start_at, options.period, options.aa, _outside_model)
    figures["model"] = analyse(calls, start_at, options.period, options.aa, lambda call: call[2])
    from _common import BackgroundClock

    traced = [call for worker in calls for call in worker if call[4]] or [[0.0] * 5]
    figures["background_cpu_us_per_traced_call"] = statistics.mean(call[3] for call in traced)
    overlapped = sum(call[3] * 1000 > BackgroundClock.BURST_NS for call in traced)
    figures["traced_calls_overlapped_by_bursts"] = overlapped / len(traced)
    return figures


def _outside_model(call: Call) -> float:
    return call[1] - call[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("pipeline", "peft", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=1200.0, help="measured seconds per workload")
    parser.add_argument("--period", type=float, default=10.0, help="seconds between swaps")
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--aa", action="store_true", help="both processes without loratrace (the method's error)")
    parser.add_argument(
        "--hold-background",
        action="store_true",
        help="experiment: loratrace's background thread bursts when 512 spans wait (or at a swap), not every 4 s",
    )
    parser.add_argument(
        "--export-delay-ms",
        type=float,
        default=5000.0,
        help="the BatchSpanProcessor's schedule delay (default 5000, the SDK's)",
    )
    parser.add_argument(
        "--keep-calls",
        type=Path,
        help="also write every call of both workers to PATH.<workload>.json, for further analyses",
    )
    parser.add_argument("--start-delay", type=float, default=40.0, help="seconds allowed for the workers' set-up")
    parser.add_argument("--worker-output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--role", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker_output is not None:
        _worker(options)
        return
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("this benchmark needs two cores: it runs one process on each")
    workloads = ("pipeline", "peft") if options.workload == "both" else (options.workload,)
    for workload in workloads:
        figures = _run(options, workload)
        print(json.dumps({"workload": workload, "aa": options.aa, **figures}), flush=True)
        label = "A/A (both uninstrumented)" if options.aa else "loratrace minus uninstrumented"
        low, high = figures["interval_us"]
        print(
            f"{workload}: {label}: {figures['added_us']:+.1f} µs per call (95 % interval {low:+.1f} .. {high:+.1f}; "
            f"{figures['cycles']} cycles of 4 x {options.period:g} s, {figures['windows']} one-second windows, "
            f"{figures['calls']} calls)",
            flush=True,
        )
        for part, title in (("outside_model", "around the model"), ("model", "the model's own generate")):
            low, high = figures[part]["interval_us"]
            print(f"  of which {title}: {figures[part]['added_us']:+.1f} µs ({low:+.1f} .. {high:+.1f})", flush=True)
        print(
            f"  background thread: {figures['background_cpu_us_per_traced_call']:.1f} µs CPU per traced call; "
            f"bursts overlapped {figures['traced_calls_overlapped_by_bursts']:.2%} of those calls",
            flush=True,
        )


if __name__ == "__main__":
    main()
