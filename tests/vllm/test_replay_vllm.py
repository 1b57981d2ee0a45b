"""Replay on vLLM's offline engine: one batch with a LoRARequest per row, each request in its own scope.

One engine for the module (its start-up is the slow part): the replay runs once, the tests read its store.
"""

from __future__ import annotations

import polars as pl
import pytest

from loratrace.replay import run_replay
from loratrace.store import query
from tests.support.golden import GOOD_IDS, write_golden

pytestmark = pytest.mark.vllm
MODELS = ["a1", "a2", "base"]


@pytest.fixture(scope="module")
def replayed(tiny_models, tmp_path_factory, vllm_env):
    monkeypatch = pytest.MonkeyPatch()
    for key, value in vllm_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    root = tmp_path_factory.mktemp("vllm-replay")
    problems = []
    summary = run_replay(
        write_golden(root / "golden.jsonl"),
        base=str(tiny_models.base),
        adapters={name: str(path) for name, path in tiny_models.adapters.items()},
        engine="vllm",
        store=root / "store",
        max_new_tokens=8,
        schema_attempts=2,
        fallback_to_base=True,
        dataset_version="golden-v1",
        progress=False,
        on_problem=problems.append,
    )
    monkeypatch.undo()
    return {"summary": summary, "store": root / "store", "problems": problems}


def test_every_request_of_the_batch_carries_its_own_example_and_cohort(replayed):
    rows = query(
        replayed["store"],
        "SELECT coalesce(adapter_name, 'base') AS served, variant, cohort, example_id, dataset_version, "
        "provider_name FROM generations WHERE example_id <> 'account'",
    )
    assert set(rows["provider_name"]) == {"vllm"}
    assert set(rows["dataset_version"]) == {"golden-v1"}
    assert len(rows) == (len(GOOD_IDS) - 1) * len(MODELS)
    assert set(rows.group_by("example_id", "served").len()["len"]) == {1}
    cohorts = dict(zip(rows["example_id"], rows["cohort"], strict=True))
    assert cohorts == {"capital": "consumer", "invoice": "enterprise", "reset": "smb", "fox": "smb", "7": "consumer"}
    assert dict(zip(rows["served"], rows["variant"], strict=True)) == {"a1": "adapter", "a2": "adapter", "base": "base"}


def test_evaluations_land_on_each_request_span(replayed):
    evals = query(
        replayed["store"],
        "SELECT g.span_id, g.example_id, coalesce(g.adapter_name, 'base') AS served, e.name FROM evals e "
        "JOIN generations g ON e.trace_id = g.trace_id AND e.span_id = g.span_id",
    )
    assert evals["span_id"].n_unique() == len(GOOD_IDS) * len(MODELS)
    names = evals.group_by("example_id", "served").agg(pl.col("name").unique().sort())
    found = {(row["example_id"], row["served"]): row["name"] for row in names.iter_rows(named=True)}
    assert found[("invoice", "a2")] == ["expected_match", "groundedness", "refusal", "unsupported_claim_rate"]
    assert found[("reset", "a1")] == ["refusal", "tool_arguments"]
    # nothing went on a separate "evaluation" span: every event is on its generation
    orphans = query(replayed["store"], "SELECT count(*) AS n FROM spans WHERE name LIKE 'evaluation %'")
    assert orphans["n"][0] == 0


def test_schema_attempts_are_counted_per_request_inside_the_batch(replayed):
    rows = query(
        replayed["store"],
        "SELECT coalesce(adapter_name, 'base') AS served, schema_attempts, schema_valid, fallback, fallback_reason, "
        "served_after_fallback "
        "FROM generations WHERE example_id = 'account' ORDER BY served, schema_attempts",
    )
    assert rows.filter(pl.col("served") == "a1")["schema_attempts"].to_list() == [1, 2]
    assert rows.filter(pl.col("served") == "a2")["schema_attempts"].to_list() == [1, 2]
    # the base model's own two attempts, then one fallback answer for each adapter
    assert rows.filter(pl.col("served") == "base")["schema_attempts"].to_list() == [1, 2, 3, 3]
    given_up = rows.filter(pl.col("fallback"))
    assert given_up.select("served", "schema_attempts", "fallback_reason").rows() == [
        ("a1", 2, "schema_invalid"),
        ("a2", 2, "schema_invalid"),
    ]
    answered = rows.filter(pl.col("served_after_fallback"))
    assert answered.select("served", "schema_attempts").rows() == [("base", 3), ("base", 3)]
    assert replayed["summary"].fallbacks == 2


def test_summary_counts(replayed):
    summary = replayed["summary"]
    assert summary.generated == {"base": len(GOOD_IDS), "a1": len(GOOD_IDS), "a2": len(GOOD_IDS)}
    assert len(replayed["problems"]) == 4
    assert summary.evaluator_seconds > 0
