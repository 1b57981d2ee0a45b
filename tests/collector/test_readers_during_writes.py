"""Readers in other processes while a collector subprocess ingests under load and compacts.

A load thread exports through the real SDK OTLP/HTTP exporter without pause; a separate reader process runs the
real ``loratrace sql`` command and a Polars scan over and over; probe spans measure acknowledgement-to-visible
latency. The run lasts until the store writer has compacted (its first pass is 30 s after start) and the
merged segments have turned active, so readers cross that switch too.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from loratrace import semconv
from loratrace.store import query

from .conftest import start_collector

VISIBLE_WITHIN_S = 5.0

READER = textwrap.dedent(
    """
    import json, subprocess, sys, time
    from pathlib import Path
    import polars as pl
    from loratrace.store import scan_spans

    store, out, stop = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    cli = str(Path(sys.executable).with_name("loratrace"))
    sql = "SELECT count(*) AS n, count(DISTINCT (trace_id, span_id)) AS d FROM spans"
    with out.open("w") as log:
        while not stop.exists():
            record = {"t": time.monotonic()}
            done = subprocess.run(
                [cli, "sql", "--store", store, "--format", "json", sql], capture_output=True, text=True
            )
            if done.returncode != 0:
                record["sql_error"] = done.stdout + done.stderr
            else:
                row = json.loads(done.stdout)[0]
                record["sql"] = [row["n"], row["d"]]
            try:
                frame = scan_spans(store).select("trace_id", "span_id").collect()
                record["polars"] = [frame.height, frame.unique().height]
            except Exception as exc:
                record["polars_error"] = repr(exc)
            log.write(json.dumps(record) + "\\n")
            log.flush()
    """
)


class Load(threading.Thread):
    """Exports batches of GenAI spans through the SDK exporter until stopped; counts what was acknowledged."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(name="load", daemon=True)
        self.exporter = OTLPSpanExporter(endpoint=endpoint)
        self.stop = threading.Event()
        self.acknowledged = 0
        self.failed = 0
        self.batches = itertools.count()

    def run(self) -> None:
        while not self.stop.is_set():
            batch = _spans(f"load-{next(self.batches)}", 200)
            if self.exporter.export(batch) == SpanExportResult.SUCCESS:
                self.acknowledged += len(batch)
            else:
                self.failed += 1
            self.stop.wait(0.05)  # pacing: ~2-4k spans/s leaves CPU for the readers on 2 cores


def _spans(prefix: str, n: int) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "readers-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("load")
    for i in range(n):
        with tracer.start_as_current_span(
            f"{prefix}-{i}",
            attributes={
                semconv.GEN_AI_OPERATION_NAME: "text_completion",
                semconv.GEN_AI_RESPONSE_MODEL: "a1" if i % 2 else "a2",
                semconv.GEN_AI_USAGE_INPUT_TOKENS: i,
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 1,
            },
        ):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def _probe(exporter: OTLPSpanExporter, store: Path, label: str) -> float:
    """Export one span; seconds from its acknowledgement until ``loratrace.store.query`` returns it."""
    (span,) = _spans(label, 1)
    span_id = format(span.get_span_context().span_id, "016x")
    assert exporter.export([span]) == SpanExportResult.SUCCESS
    acknowledged = time.monotonic()
    deadline = acknowledged + VISIBLE_WITHIN_S
    while True:
        found = query(store, "SELECT name FROM spans WHERE span_id = ?", [span_id])["name"].to_list()
        if found:
            assert found == [f"{label}-0"]
            return time.monotonic() - acknowledged
        assert time.monotonic() < deadline, f"probe {label} not visible {VISIBLE_WITHIN_S}s after its ack"
        time.sleep(0.02)


def test_readers_in_other_processes_never_fail_never_go_back_and_see_spans_within_5s(tmp_path: Path) -> None:
    running = start_collector(tmp_path / "store")
    out, stop = tmp_path / "reader.jsonl", tmp_path / "reader.stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(running.store), str(out), str(stop)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    load = Load(f"{running.http}/v1/traces")
    probe_exporter = OTLPSpanExporter(endpoint=f"{running.http}/v1/traces")
    latencies: list[float] = []
    try:
        load.start()
        # until the store writer's first compaction pass has merged something, and its merges turned active
        deadline = time.monotonic() + 90
        probes = itertools.count()
        while running.health()["compactions"] < 1:
            assert time.monotonic() < deadline, "no compaction within 90 s"
            latencies.append(_probe(probe_exporter, running.store, f"probe-{next(probes)}"))
        switch_over = time.monotonic() + 7  # activation delay (5 s) and some margin
        while time.monotonic() < switch_over:
            latencies.append(_probe(probe_exporter, running.store, f"probe-{next(probes)}"))
        load.stop.set()
        load.join(timeout=30)
        expected = load.acknowledged + len(latencies)
        running.wait_until(
            lambda: query(running.store, "SELECT count(*) AS n FROM spans")["n"][0] == expected,
            timeout=VISIBLE_WITHIN_S,
            what=f"all {expected} acknowledged spans",
        )
        # the reader's last observation must come after everything was visible
        marker = time.monotonic()
        running.wait_until(lambda: any(r["t"] > marker for r in _records(out)), timeout=30, what="a final reader pass")
    finally:
        stop.touch()
        load.stop.set()
        probe_exporter.shutdown()
        load.exporter.shutdown()
        reader.wait(timeout=60)
        assert running.terminate() == 0
    records = _records(out)
    errors = [r for r in records if "sql_error" in r or "polars_error" in r]
    assert errors == []
    assert load.failed == 0
    health_after = query(running.store, "SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans").row(0)
    assert health_after == (expected, expected)
    for kind in ("sql", "polars"):
        counts = [r[kind] for r in records]
        assert all(n == d for n, d in counts), f"{kind} saw a span twice"
        assert all(b[0] >= a[0] for a, b in itertools.pairwise(counts)), f"{kind} count went backwards"
        assert counts[-1] == [expected, expected]
        assert len({n for n, _ in counts}) >= 5, f"{kind} did not read while the store grew"
    assert len(latencies) >= 5
    assert max(latencies) < VISIBLE_WITHIN_S
    # the figures, for the record (pytest -s); flush interval 1 s bounds the typical latency
    print(
        f"\nprobes={len(latencies)} visible after: median {sorted(latencies)[len(latencies) // 2]:.3f}s "
        f"max {max(latencies):.3f}s; reader passes={len(records)}; spans={expected}"
    )


def _records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
