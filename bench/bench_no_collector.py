"""The quick start with no collector running: how long a short script takes, and what it prints.

\b
    .venv/bin/python bench/bench_no_collector.py            # 3 runs per condition (~1-2 min)

Each run is a fresh process doing what the README's quick start does in a short script: ``instrument()`` with
an endpoint where nothing listens (a free loopback port: the default endpoint on a machine where no
``loratrace collect`` runs), 20 generation-sized spans and a histogram record, ``force_flush()``, then the
interpreter's exit (which shuts the providers down). Conditions, side by side in one run:

- ``current``: ``loratrace.instrument(endpoint=...)``;
- ``sdk-pipeline``: the baseline, the pipeline ``instrument()`` built before: the SDK's OTLP/HTTP span exporter
  behind a BatchSpanProcessor and its OTLP metric exporter behind a PeriodicExportingMetricReader, with the
  SDK's default timeouts and retries.

Printed per condition: the median wall time of the process, the lines it wrote to stderr, and what
``force_flush()`` returned.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import free_port

REPO = Path(__file__).resolve().parent.parent
RUNS = 3

SCRIPT = r"""
import json, sys
condition, endpoint = sys.argv[1:3]
if condition == "current":
    import loratrace
    state = loratrace.instrument(endpoint=endpoint, libraries=[])
    tracer, meter = state.tracer_provider.get_tracer("q"), state.meter_provider.get_meter("q")
    flush = loratrace.force_flush
else:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint + "/v1/traces")))
    meter_provider = MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint + "/v1/metrics"))]
    )
    tracer, meter = tracer_provider.get_tracer("q"), meter_provider.get_meter("q")
    flush = lambda timeout_millis: tracer_provider.force_flush(timeout_millis)
histogram = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
for index in range(20):
    tracer.start_span(f"text_completion a{index % 2}", attributes={"loratrace.adapter.name": "a1"}).end()
    histogram.record(0.02, {"loratrace.adapter.name": "a1"})
print(json.dumps({"flushed": flush(timeout_millis=30_000)}))
"""


def _refused_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"  # closed again: nothing listens there


def _run(condition: str) -> tuple[float, int, bool]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, condition, _refused_endpoint()],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=REPO,
    )
    elapsed = time.monotonic() - started
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return elapsed, len(result.stderr.strip().splitlines()), bool(json.loads(line)["flushed"])


def main() -> None:
    print(f"{'condition':<14} {'median s':>9} {'runs s':<22} {'stderr lines':>12}  force_flush()")
    for condition in ("current", "sdk-pipeline"):
        runs = [_run(condition) for _ in range(RUNS)]
        seconds = [elapsed for elapsed, _, _ in runs]
        lines = sorted({count for _, count, _ in runs})
        flushed = sorted({flag for _, _, flag in runs})
        shown = ", ".join(f"{s:.1f}" for s in seconds)
        print(f"{condition:<14} {statistics.median(seconds):>9.2f} {shown:<22} {lines!s:>12}  {flushed}")


if __name__ == "__main__":
    main()
