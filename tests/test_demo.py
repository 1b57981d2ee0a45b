"""The README's main job: ``loratrace demo`` end to end, as a user runs it (a real subprocess, real models)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loratrace.demo import planted
from loratrace.demo.walkthrough import PROMPTS
from loratrace.instrumentation._adapter_identity import identity_from_directory
from loratrace.store import query

ADAPTERS = ("a1", "a2")
REAL = "service_name = 'loratrace-demo'"  # the tiny model's spans, not the simulated traffic beside them


def run_demo(workdir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "loratrace"), "demo", "--workdir", str(workdir), *flags],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"},
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.vllm
def test_demo_serves_base_and_adapters_through_both_stacks_into_the_store(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = run_demo(workdir)
    store = workdir / "store"
    ids = {name: identity_from_directory(workdir / "models" / "adapters" / name, name).id for name in ADAPTERS}
    for adapter_id in ids.values():
        assert adapter_id[:19] in result.stdout  # the printed table shows each adapter's id
    generations = query(
        store,
        "SELECT provider_name, coalesce(adapter_name, 'base') AS served, adapter_id, variant, count(*) AS n "
        f"FROM generations WHERE {REAL} GROUP BY ALL ORDER BY ALL",
    ).rows()
    prompts = sum(len(p) for p in PROMPTS.values())
    # transformers: every cohort's prompts in one batched generate (a span per prompt row) through base, a1, a2;
    # then the extract route: a2 twice, then the base fallback. vLLM: every prompt through base, a1 and a2 in one batch
    assert generations == [
        ("huggingface", "a1", ids["a1"], "adapter", prompts),
        ("huggingface", "a2", ids["a2"], "adapter", prompts + 2),
        ("huggingface", "base", None, "base", prompts + 1),
        ("vllm", "a1", ids["a1"], "adapter", prompts),
        ("vllm", "a2", ids["a2"], "adapter", prompts),
        ("vllm", "base", None, "base", prompts),
    ]
    # one fallback (a2's abandoned answer), answered once by the base model
    fallbacks = query(store, f"SELECT adapter_name, fallback_reason FROM generations WHERE fallback AND {REAL}").rows()
    assert fallbacks == [("a2", "schema_invalid")]
    answers = query(
        store, f"SELECT adapter_name, variant FROM generations WHERE served_after_fallback AND {REAL}"
    ).rows()
    assert answers == [(None, "base")]
    evals = query(store, f"SELECT coalesce(adapter_name, 'base'), passed FROM evals WHERE {REAL} ORDER BY 1, 2").rows()
    assert [name for name, _ in evals] == ["a2", "a2", "base"]
    assert "Which adapter served how much" in result.stdout


def test_demo_plants_a_regression_and_a_spike_that_the_analyses_find(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = run_demo(workdir, "--no-vllm")
    store = workdir / "store"
    simulated = query(
        store,
        "SELECT service_name, route_name, coalesce(adapter_name, '(base)') AS arm, count(*) AS n FROM generations "
        f"WHERE NOT {REAL} GROUP BY ALL ORDER BY ALL",
    ).rows()
    per_arm = planted.HOURS * planted.planted_traffic().requests_per_hour * len(planted.COHORTS)
    assert simulated == [
        ("loratrace-traffic", planted.ROUTE, "(base)", per_arm),
        ("loratrace-traffic", planted.ROUTE, "sim-a1", per_arm),
        ("loratrace-traffic", planted.ROUTE, "sim-a2", per_arm),
    ]
    assert "SIMULATED traffic" in result.stdout
    # drift finds the planted regression, and only what was planted regresses
    drift = result.stdout.split("$ loratrace drift", 1)[1].split("$ loratrace spikes", 1)[0]
    regressed = {tuple(line.split()[:3]) for line in drift.splitlines() if line.startswith("sim-")}
    planted_drop = (planted.REGRESSED_ADAPTER, planted.REGRESSED_COHORT, "eval_pass:quality")
    assert planted_drop in regressed
    assert all(
        row in {planted_drop, (planted.REGRESSED_ADAPTER, "(all)", "eval_pass:quality")}
        or (row[0], row[2]) == (planted.SPIKED_ADAPTER, "fallback_rate")
        for row in regressed
    ), regressed
    # the spike check finds the planted fallback spike of sim-a2, and nothing else
    spikes = result.stdout.split("$ loratrace spikes", 1)[1].split("$ loratrace alert check", 1)[0]
    episodes = [line.split() for line in spikes.splitlines() if line.startswith(("sim-", "a1 ", "a2 ", "(base)"))]
    assert [(cells[0], cells[1]) for cells in episodes] == [(planted.SPIKED_ADAPTER, "fallback_rate")]
    # the scheduled alert check fires for the planted drop, and for nothing else
    alerts = result.stdout.split("$ loratrace alert check", 1)[1].split("$ loratrace report", 1)[0]
    firing = [line for line in alerts.splitlines() if line.strip().startswith("FIRING")]
    assert len(firing) == 1, alerts
    assert f"of {planted.REGRESSED_ADAPTER} on {planted.REGRESSED_COHORT}" in firing[0]
    assert json.loads((workdir / "alerts.jsonl").read_text().splitlines()[0])["status"] == "firing"
    page = workdir / "report.html"
    text = page.read_text("utf-8")
    assert 'data-plot="spikes:sim-a2:fallback_rate"' in text
    assert 'data-plot="latency"' in text


def test_a_second_demo_run_says_it_adds_to_the_store_and_fresh_starts_over(tmp_path: Path) -> None:
    """A second ``make demo`` silently doubled every count."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from loratrace.collector.embedded import StoreSpanExporter

    workdir = tmp_path / "demo"
    earlier = TracerProvider()  # what an earlier run left: a real store with a span in it
    earlier.add_span_processor(SimpleSpanProcessor(StoreSpanExporter(workdir / "store")))
    earlier.get_tracer("earlier-run").start_span("from an earlier run").end()
    earlier.shutdown()
    demo = [str(Path(sys.executable).parent / "loratrace"), "demo", "--no-vllm", "--workdir", str(workdir)]

    def run(*extra: str) -> str:
        result = subprocess.run([*demo, *extra], capture_output=True, text=True, timeout=600, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    added = run()
    assert f"{workdir / 'store'} already holds 1 spans from earlier runs: this run adds to them" in added
    assert "loratrace demo --fresh starts over" in added
    names = query(workdir / "store", "SELECT name FROM spans")["name"].to_list()
    assert "from an earlier run" in names
    fresh = run("--fresh")
    assert "starting fresh: removed the earlier runs' store" in fresh
    assert "already holds" not in fresh
    after = query(workdir / "store", "SELECT name FROM spans")["name"].to_list()
    assert "from an earlier run" not in after
    assert len(after) == len(names) - 1  # this run's spans only
