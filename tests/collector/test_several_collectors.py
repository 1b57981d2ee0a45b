"""Three collector processes share one store under load; one is killed with -9 and restarted; at the end every
acknowledged span is counted exactly once (after the day's closing merge, which spans the writers)."""

from __future__ import annotations

import random
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from loratrace.store import layout, query
from loratrace.store.compaction import compact_store
from loratrace.store.segments import iter_segments
from tests.clickhouse.traffic import build_request
from tests.collector.conftest import RunningCollector, start_collector

BATCHES = 150
SPANS_PER_BATCH = 200
SENDERS = 3


def _post(collector: RunningCollector, body: bytes) -> bool:
    request = urllib.request.Request(
        f"{collector.http}/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            response.read()
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _ids(body) -> set[tuple[str, str]]:
    return {
        (span.trace_id.hex(), span.span_id.hex())
        for rs in body.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    }


def _store_writer_children(collector: RunningCollector) -> list[psutil.Process]:
    return psutil.Process(collector.process.pid).children(recursive=True)


def test_three_collectors_one_killed_every_acknowledged_span_once(tmp_path: Path) -> None:
    store = tmp_path / "store"
    collectors = [start_collector(store, "--writer-id", str(i)) for i in range(3)]
    lock = threading.Lock()
    acknowledged: set[tuple[str, str]] = set()
    failovers = []
    start_ns = (int(time.time()) - 3600) * 10**9
    requests = []
    rng = random.Random(19)
    for batch in range(BATCHES):
        request = build_request(rng, spans=SPANS_PER_BATCH, start_ns=start_ns, offset=batch * SPANS_PER_BATCH)
        requests.append((request.SerializeToString(), _ids(request)))

    def send(batch: int) -> None:
        body, ids = requests[batch]
        deadline = time.monotonic() + 120
        target = batch % 3  # the load-balancing exporter keys by trace id; a fixed route per batch here
        while time.monotonic() < deadline:
            with lock:
                collector = collectors[target]
            if _post(collector, body):
                with lock:
                    acknowledged.update(ids)
                return
            with lock:
                failovers.append(batch)
            target = (target + 1) % 3  # fail over, as the exporter's retry on another backend would
        pytest.fail(f"batch {batch} was never acknowledged")

    def sender(worker: int) -> None:
        for batch in range(worker, BATCHES, SENDERS):
            send(batch)

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(SENDERS)]
    for thread in threads:
        thread.start()
    # under load: once a third of the spans is acknowledged, kill collector 1 with -9, then restart it
    deadline = time.monotonic() + 120
    while len(acknowledged) < sum(len(ids) for _, ids in requests) // 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    victim = collectors[1]
    children = _store_writer_children(victim)
    victim.kill()
    psutil.wait_procs(children, timeout=60)  # its store writer follows it down before the same writer id restarts
    assert all(not c.is_running() for c in children)
    replacement = start_collector(store, "--writer-id", "1")
    with lock:
        collectors[1] = replacement
    for thread in threads:
        thread.join(timeout=300)
    # a client that lost a response re-sends the batch to another collector: the same spans in two writers
    body, resent = requests[0]
    assert _post(collectors[2], body)
    for collector in collectors:
        assert collector.terminate() == 0  # SIGTERM drains everything acknowledged into segments
    total = sum(len(ids) for _, ids in requests)  # mirrored requests add the base model's span to a batch
    assert len(acknowledged) == total
    before = query(store, "SELECT count(*) AS n, count(DISTINCT (trace_id, span_id)) AS d FROM spans").row(0)
    assert before[1] == total  # nothing acknowledged is lost, whatever the kill interrupted
    assert before[0] >= total + len(resent)  # the re-sent batch at least, in a second writer's segments
    assert {layout.segment_writer(p.name) for p in iter_segments(store, "spans")} == {"0", "1", "2"}
    # the day closes (here: compaction is told the day is over) and the merge across writers keeps each once
    today = query(store, "SELECT max(start_time) AS t FROM spans").item().date()
    assert compact_store(store, today=today + timedelta(days=1), close_after_s=0, activation_delay_s=0, wait=True)
    after = query(store, "SELECT count(*) AS n, count(DISTINCT (trace_id, span_id)) AS d FROM spans").row(0)
    assert after == (total, total)
    stored = set(query(store, "SELECT trace_id, span_id FROM spans").iter_rows())
    assert stored == acknowledged
