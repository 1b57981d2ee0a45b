"""loratrace's background thread when its OTLP endpoint does not answer: now vs exporting on the finisher thread.

\b
    .venv/bin/python bench/bench_unreachable_endpoint.py              # 2 conditions x 60 s (~3 min)
    .venv/bin/python bench/bench_unreachable_endpoint.py --refused    # nothing listening (the default endpoint
                                                                      # on a machine without a collector)

Each condition runs in its own process: ``loratrace.instrument(endpoint=...)`` (its own OTLP/HTTP pipeline, the
SDK's default timeouts) and ``PeftModel.generate`` (adapter a1, one new token) in a loop for ``--seconds``,
against an endpoint that accepts connections and never answers (or, with ``--refused``, one where nothing
listens: the exporter retries a refused connection until its timeout too). Every 5 s it prints the calls made, the
generations waiting on loratrace's background thread and the process's peak RSS; at the end, how long
``loratrace.force_flush(timeout_millis=5000)`` took. Conditions: ``current`` (the burst's export runs on
loratrace's export thread; the finisher waits for it 2 s at most) and the baseline ``export-on-finisher`` (session
5's code: the finisher thread itself ran the export after each burst, however long it took).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time

from _common import REPO, make_peft_call

CONDITIONS = ("current", "export-on-finisher")


def _endpoint(refused: bool) -> tuple[str, socket.socket | None]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if refused:
        sock.close()
        return f"http://127.0.0.1:{port}", None
    sock.listen(1024)  # the kernel completes connections; nothing ever reads or answers them
    return f"http://127.0.0.1:{port}", sock


def _worker(condition: str, seconds: float, refused: bool) -> dict[str, object]:
    import logging

    import loratrace
    from loratrace.runtime.finisher import finisher

    logging.disable(logging.WARNING)  # the exporter logs every failed attempt
    endpoint, listening = _endpoint(refused)
    call, _model, _inputs = make_peft_call(1)
    state = loratrace.instrument(endpoint=endpoint, libraries=["transformers"])
    if condition == "export-on-finisher":
        recorder = state.instrumentors["transformers"]._settings.recorder  # bench-only: put session 5's behaviour back
        recorder.request_export = recorder.tracer.span_processor.force_flush
    samples = []
    start = time.monotonic()
    calls = 0
    next_sample = start + 5
    while time.monotonic() - start < seconds:
        call()
        calls += 1
        if time.monotonic() >= next_sample:
            next_sample += 5
            samples.append(
                {
                    "t": round(time.monotonic() - start),
                    "calls": calls,
                    "waiting": finisher._queue.qsize(),
                    "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                }
            )
    flush_started = time.monotonic()
    flushed = loratrace.force_flush(timeout_millis=5000)
    result = {
        "condition": condition,
        "samples": samples,
        "calls_per_s": calls / seconds,
        "dropped": finisher.dropped,
        "force_flush_s": time.monotonic() - flush_started,
        "force_flush": flushed,
    }
    del listening
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--refused", action="store_true", help="nothing listens at the endpoint")
    parser.add_argument("--worker", choices=CONDITIONS, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        print(json.dumps(_worker(options.worker, options.seconds, options.refused)), flush=True)
        os._exit(0)  # the exporter threads may still be waiting on the endpoint
    results = []
    for condition in CONDITIONS:
        command = [sys.executable, __file__, "--worker", condition, "--seconds", str(options.seconds)]
        if options.refused:
            command.append("--refused")
        output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    print(f"endpoint: {'nothing listening' if options.refused else 'accepts, never answers'}; {options.seconds:.0f} s")
    for result in results:
        print(
            f"\n{result['condition']}: {result['calls_per_s']:.0f} calls/s, dropped {result['dropped']}, "
            f"force_flush(5000) {result['force_flush_s']:.1f} s -> {result['force_flush']}"
        )
        print("   t   calls  waiting  peak RSS MB")
        for sample in result["samples"]:
            print(f"{sample['t']:4d} {sample['calls']:7d} {sample['waiting']:8d} {sample['rss_mb']:12d}")


if __name__ == "__main__":
    main()
