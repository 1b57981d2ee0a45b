"""The store writer's decoding step alone: OTLP request bytes -> the store's frames, CPU µs per span.

    .venv/bin/python bench/bench_decode.py --spans 512 --requests 20 --repeats 7

``RowBuffer.add_traces_bytes`` over ``--requests`` serialized 512-span requests (25 attributes per span), then
``take()`` (the frames the segment writer gets), on the compiled decoder and on the Python reference path
(upb + Python), for plain generation spans and for spans carrying one evaluation-result event each (every
evaluated or replayed span). CPU time of the calling thread, so other load on the machine moves it less than
wall time; the median of ``--repeats`` runs, with the range.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from _common import template_request

from loratrace.collector import decode


def _run(payloads: list[bytes], spans: int, add: Callable[[decode.RowBuffer, bytes], object]) -> float:
    buffer = decode.RowBuffer()
    start = time.thread_time()
    for payload in payloads:
        add(buffer, payload)
    frames = buffer.take()
    elapsed = time.thread_time() - start
    assert frames["spans"].height == spans
    return elapsed / spans * 1e6


def _python(buffer: decode.RowBuffer, payload: bytes) -> object:
    return buffer.add_traces(decode.ExportTraceServiceRequest.FromString(payload))


def _compiled(buffer: decode.RowBuffer, payload: bytes) -> object:
    return buffer.add_traces_bytes(payload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=512, help="spans per request")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if not decode.fast_decoder_available():
        sys.exit("the compiled decoder is not built: pip install --no-deps -e .")
    print("| spans | path | CPU µs per span (median) | range |")
    print("|---|---|---|---|")
    for evaluations in (False, True):
        payloads = [
            template_request(args.spans, seed=seed, evaluations=evaluations).SerializeToString()
            for seed in range(args.requests)
        ]
        total = args.spans * args.requests
        for label, add in (("compiled", _compiled), ("Python (upb)", _python)):
            _run(payloads[:2], args.spans * 2, add)  # warm-up
            runs = [_run(payloads, total, add) for _ in range(args.repeats)]
            kind = "one evaluation event each" if evaluations else "plain"
            print(f"| {kind} | {label} | {statistics.median(runs):.1f} | {min(runs):.1f}–{max(runs):.1f} |")


if __name__ == "__main__":
    main()
