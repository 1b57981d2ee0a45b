"""The README's main job: ``loratrace demo`` end to end, as a user runs it (a real subprocess, real models)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loratrace.demo.walkthrough import PROMPTS
from loratrace.instrumentation._adapter_identity import identity_from_directory
from loratrace.store import query

ADAPTERS = ("a1", "a2")


@pytest.mark.vllm
def test_demo_serves_base_and_adapters_through_both_stacks_into_the_store(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "loratrace"), "demo", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"},
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    store = workdir / "store"
    ids = {name: identity_from_directory(workdir / "models" / "adapters" / name, name).id for name in ADAPTERS}
    for adapter_id in ids.values():
        assert adapter_id[:19] in result.stdout  # the printed table shows each adapter's id
    generations = query(
        store,
        "SELECT provider_name, coalesce(adapter_name, 'base') AS served, adapter_id, variant, count(*) AS n "
        "FROM generations GROUP BY ALL ORDER BY ALL",
    ).rows()
    prompts = sum(len(p) for p in PROMPTS.values())
    cohorts = len(PROMPTS)
    # transformers: every cohort through base, a1, a2; then the extract route: a2 twice, then the base fallback
    # vLLM: every prompt through base, a1 and a2 in one batch
    assert generations == [
        ("huggingface", "a1", ids["a1"], "adapter", cohorts),
        ("huggingface", "a2", ids["a2"], "adapter", cohorts + 2),
        ("huggingface", "base", None, "base", cohorts + 1),
        ("vllm", "a1", ids["a1"], "adapter", prompts),
        ("vllm", "a2", ids["a2"], "adapter", prompts),
        ("vllm", "base", None, "base", prompts),
    ]
    # one fallback (a2's abandoned answer), answered once by the base model
    fallbacks = query(store, "SELECT adapter_name, fallback_reason FROM generations WHERE fallback").rows()
    assert fallbacks == [("a2", "schema_invalid")]
    answers = query(store, "SELECT adapter_name, variant FROM generations WHERE served_after_fallback").rows()
    assert answers == [(None, "base")]
    evals = query(store, "SELECT coalesce(adapter_name, 'base'), passed FROM evals ORDER BY 1, 2").rows()
    assert [name for name, _ in evals] == ["a2", "a2", "base"]
    assert "Which adapter served how much" in result.stdout


def test_a_second_demo_run_says_it_adds_to_the_store_and_fresh_starts_over(tmp_path: Path) -> None:
    """A second ``make demo`` silently doubled every count."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from loratrace.store.embedded import StoreSpanExporter

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
