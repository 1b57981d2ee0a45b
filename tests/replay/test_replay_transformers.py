"""``loratrace replay`` end to end on real transformers + PEFT: the tiny model, two adapters, a real store."""

from __future__ import annotations

import json

import polars as pl
import pytest
from click.testing import CliRunner

from loratrace.cli import cli
from loratrace.store import query
from tests.support.golden import BROKEN, GOOD_IDS, write_golden

MODELS = ["a1", "a2", "base"]


@pytest.fixture(scope="module")
def replayed(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("replay")
    golden = write_golden(root / "golden.jsonl")
    store = root / "store"
    args = [
        "replay", "--dataset", str(golden), "--base", str(tiny_models.base),
        "--adapter", f"a1={tiny_models.adapters['a1']}", "--adapter", f"a2={tiny_models.adapters['a2']}",
        "--engine", "transformers", "--store", str(store), "--max-new-tokens", "8", "--chunk-size", "4",
        "--threads", "1", "--schema-attempts", "2", "--fallback-to-base", "--dataset-version", "golden-t1",
        "--evaluator", "judges:mentions_paris", "--evaluator", "judges:raises", "--evaluator", "judges:hangs",
        "--evaluator-timeout", "0.5", "--no-progress",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return {"args": args, "result": result, "store": store}


def generations(store) -> pl.DataFrame:
    return query(
        store,
        "SELECT trace_id, span_id, coalesce(adapter_name, 'base') AS served, model, variant, cohort, example_id, "
        "dataset_version, schema_attempts, schema_valid, fallback, fallback_reason, served_after_fallback, evals "
        "FROM generations ORDER BY example_id, served, schema_attempts NULLS FIRST",
    )


def test_malformed_lines_are_reported_with_line_numbers_and_skipped(replayed):
    stderr = replayed["result"].stderr
    for line in BROKEN:
        assert f"golden.jsonl:{line}: skipped: " in stderr
    assert "skipped lines: 4" in replayed["result"].stdout


def test_every_example_answered_by_every_model_with_the_release_context(replayed):
    rows = generations(replayed["store"])
    assert set(rows["dataset_version"]) == {"golden-t1"}
    plain = rows.filter(pl.col("example_id") != "account")  # no schema: one generation per model and example
    counts = plain.group_by("example_id", "served").len()
    assert sorted(counts["example_id"].unique()) == sorted(set(GOOD_IDS) - {"account"})
    assert set(counts["len"]) == {1}
    assert len(counts) == (len(GOOD_IDS) - 1) * len(MODELS)
    variants = dict(zip(plain["served"], plain["variant"], strict=True))
    assert variants == {"a1": "adapter", "a2": "adapter", "base": "base"}
    cohorts = dict(zip(plain["example_id"], plain["cohort"], strict=True))
    assert cohorts == {"capital": "consumer", "invoice": "enterprise", "reset": "smb", "fox": "smb", "7": "consumer"}


def test_evaluations_are_events_on_each_generation_span(replayed):
    store = replayed["store"]
    evals = query(
        store,
        "SELECT g.span_id, g.example_id, coalesce(g.adapter_name, 'base') AS served, e.name, e.passed, e.label "
        "FROM evals e JOIN generations g ON e.trace_id = g.trace_id AND e.span_id = g.span_id",
    )
    per_answer = evals.group_by("example_id", "served").agg(pl.col("name"))
    names = {(row["example_id"], row["served"]): set(row["name"]) for row in per_answer.iter_rows(named=True)}
    external = {"mentions_paris", "raises", "hangs"}
    assert names[("capital", "a1")] == {"refusal", "expected_match", *external}
    assert names[("invoice", "base")] == {"refusal", "expected_match", "groundedness", "unsupported_claim_rate",
                                          *external}  # fmt: skip
    assert names[("reset", "a2")] == {"refusal", "tool_arguments", *external}
    assert names[("fox", "base")] == {"refusal", "expected_match", "length_format", *external}
    # one evaluated answer per model and example (an adapter's fallback answer is served by the base model)
    assert evals["span_id"].n_unique() == len(GOOD_IDS) * len(MODELS)


def test_judges_that_raise_or_time_out_are_evaluation_errors(replayed):
    evals = query(replayed["store"], "SELECT name, label, passed, explanation FROM evals WHERE name IN (?, ?)",
                  ["raises", "hangs"])  # fmt: skip
    assert len(evals) == 2 * len(GOOD_IDS) * len(MODELS)
    assert set(evals["label"]) == {"error"}
    assert evals["passed"].null_count() == len(evals)
    explanations = set(evals["explanation"])
    assert explanations == {"evaluator raised ConnectionError: the judge's backend is down",
                            "evaluator timed out after 0.5 s"}  # fmt: skip


def test_schema_retry_loop_and_fallback_to_base(replayed):
    rows = generations(replayed["store"]).filter(pl.col("example_id") == "account")
    # the tiny random model never writes JSON: two attempts each, then the adapters fall back to the base model
    base = rows.filter((pl.col("served") == "base") & ~pl.col("served_after_fallback").fill_null(False))
    assert base["schema_attempts"].to_list() == [1, 2]
    assert base["schema_valid"].to_list() == [False, False]
    for adapter in ("a1", "a2"):
        own = rows.filter(pl.col("served") == adapter)
        assert own["schema_attempts"].to_list() == [1, 2]
        assert own["variant"].to_list() == ["adapter", "adapter"]
        # mark_fallback flags the answer given up on, as it does in serving code
        assert own["fallback"].to_list() == [False, True]
        assert own["fallback_reason"].to_list() == [None, "schema_invalid"]
    fallbacks = rows.filter(pl.col("served_after_fallback"))
    assert len(fallbacks) == 2
    assert set(fallbacks["served"]) == {"base"}
    assert set(fallbacks["variant"]) == {"base"}
    assert sorted(fallbacks["schema_attempts"].to_list()) == [3, 3]
    # evaluations sit on the final answer only: the fallback's for the adapters, the last attempt's for the base
    assert sorted(rows.filter(pl.col("evals") > 0)["schema_attempts"].to_list()) == [2, 3, 3]
    assert "schema retries: 3; fallbacks to the base model: 2" in replayed["result"].stdout


def test_running_the_same_command_again_replays_nothing(replayed):
    before = len(generations(replayed["store"]))
    again = CliRunner().invoke(cli, replayed["args"])
    assert again.exit_code == 0, again.output
    assert f"answers generated: 0 (base 0, a1 0, a2 0); already done before this run: {len(GOOD_IDS) * 3}" in (
        again.stdout
    )
    assert len(generations(replayed["store"])) == before


def test_pairs_already_in_the_store_are_not_replayed_even_without_the_journal(replayed):
    # what a kill between a chunk's export and its journal entry leaves behind
    (journal,) = (replayed["store"] / "replay-journal").glob("*.jsonl")
    journal.unlink()
    before = len(generations(replayed["store"]))
    again = CliRunner().invoke(cli, replayed["args"])
    assert again.exit_code == 0, again.output
    assert "answers generated: 0 " in again.stdout
    assert len(generations(replayed["store"])) == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(["--adapter", "a1"], "--adapter takes NAME=PATH", id="adapter-without-path"),
        pytest.param(["--adapter", "base=/tmp"], "reserved", id="reserved-name"),
        pytest.param(["--adapter", "a9=/no/such/folder"], "no such adapter folder", id="missing-adapter"),
        pytest.param(["--evaluator", "judges"], "--evaluator takes module:attr", id="evaluator-reference"),
        pytest.param(["--endpoint", "http://127.0.0.1:9"], "exactly one", id="store-and-endpoint"),
    ],
)
def test_bad_flags_are_usage_errors(tiny_models, tmp_path, extra, message):
    golden = write_golden(tmp_path / "golden.jsonl")
    args = ["replay", "--dataset", str(golden), "--base", str(tiny_models.base), "--store", str(tmp_path / "s")]
    result = CliRunner().invoke(cli, [*args, *extra])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "s" / "replay-journal").exists()


def test_unreadable_dataset_names_the_flag(tiny_models, tmp_path):
    args = ["replay", "--dataset", str(tmp_path / "missing.jsonl"), "--base", str(tiny_models.base), "--store",
            str(tmp_path / "s")]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "--dataset" in result.output
    assert "cannot read" in result.output


def test_progress_bars_per_model_with_rate(tiny_models, tmp_path):
    golden = write_golden(tmp_path / "golden.jsonl", broken=False)
    args = ["replay", "--dataset", str(golden), "--base", str(tiny_models.base), "--adapter",
            f"a1={tiny_models.adapters['a1']}", "--store", str(tmp_path / "s"), "--limit", "2", "--max-new-tokens",
            "2", "--threads", "1", "--progress"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    for label in ("base", "a1"):
        assert f"replay {label}: 100%" in result.stderr
    assert "2/2" in result.stderr
    assert "ex/s" in result.stderr


def test_a_prompt_too_long_for_the_model_is_reported_and_skipped(tiny_models, tmp_path):
    golden = tmp_path / "golden.jsonl"
    rows = [{"id": "short", "prompt": "Invoices are due"}, {"id": "long", "prompt": "Invoices are due " * 40}]
    golden.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    store = tmp_path / "s"
    args = ["replay", "--dataset", str(golden), "--base", str(tiny_models.base), "--store", str(store),
            "--max-model-len", "32", "--max-new-tokens", "4", "--threads", "1", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "golden.jsonl:2: skipped: prompt of 'long' is longer than --max-model-len allows" in result.stderr
    assert query(store, "SELECT example_id FROM generations")["example_id"].to_list() == ["short"]
