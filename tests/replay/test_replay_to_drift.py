"""End to end: a golden-set replay on the real tiny model, then ``drift`` (paired design) and ``gate`` decide on it.

The golden answers are the base model's own greedy answers (computed here with plain transformers, one prompt at a
time; the replay answers them in padded batches of 8), so the base arm matches them and each adapter, whose random
LoRA weights change its answers, does not: a regression the paired analysis (McNemar on the discordant pairs) must
report.
"""

from __future__ import annotations

import json

import polars as pl
import pytest
from click.testing import CliRunner

from loratrace.analysis import drift_for_store
from loratrace.cli import cli

EXAMPLES = 40
MAX_NEW_TOKENS = 6


def _base_answers(tiny_models, prompts):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)  # as the replay runs (--threads 1): far faster for the tiny model on a busy machine
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.base)
    model = AutoModelForCausalLM.from_pretrained(tiny_models.base, dtype=torch.float32).eval()
    answers = []
    with torch.no_grad():
        for prompt in prompts:
            inputs = tokenizer(prompt, return_tensors="pt")
            output = model.generate(
                **inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
            answers.append(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
    return answers


@pytest.fixture(scope="module")
def replay_store(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("replay-drift")
    prompts = [f"Invoice {n} for the enterprise plan is due" for n in range(EXAMPLES)]
    answers = _base_answers(tiny_models, prompts)
    golden = root / "golden.jsonl"
    rows = [
        {"id": f"e{n}", "cohort": ("smb", "enterprise")[n % 2], "prompt": prompt, "expected": answer, "match": "exact"}
        for n, (prompt, answer) in enumerate(zip(prompts, answers, strict=True))
    ]
    golden.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    store = root / "store"
    args = [
        "replay", "--dataset", str(golden), "--base", str(tiny_models.base),
        "--adapter", f"a1={tiny_models.adapters['a1']}", "--adapter", f"a2={tiny_models.adapters['a2']}",
        "--engine", "transformers", "--store", str(store), "--max-new-tokens", str(MAX_NEW_TOKENS),
        "--dataset-version", "golden-drift", "--threads", "1", "--batch-size", "8", "--no-progress",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return store


def test_the_batched_replay_has_one_generation_per_example_and_model(replay_store):
    from loratrace.store import query

    rows = query(
        replay_store,
        "SELECT example_id, coalesce(adapter_name, 'base') AS served, count(*) AS n, "
        "max(attributes['loratrace.batch.size']) AS batch FROM spans WHERE operation_name IS NOT NULL "
        "GROUP BY ALL",
    )
    assert len(rows) == EXAMPLES * 3
    assert set(rows["n"]) == {1}
    assert set(rows["batch"]) == {"8"}  # 40 examples per model: five padded batches of 8


def test_drift_reads_the_replay_as_paired_and_finds_the_regression(replay_store):
    rows = drift_for_store(replay_store, metric_names=["eval_pass:expected_match"], window=None)
    overall = rows.filter(pl.col("cohort") == "(all)").sort("adapter")
    assert overall["adapter"].to_list() == ["a1", "a2"]
    assert set(overall["design"]) == {"paired"}
    assert set(overall["n_base"]) == {EXAMPLES}
    assert overall["base_value"].to_list() == [1.0, 1.0]  # the golden answers are the base model's
    assert (overall["adapter_value"] < 0.5).all()
    assert set(overall["verdict"]) == {"regressed"}
    assert (overall["p_value"] < 1e-3).all()
    cohorts = rows.filter(pl.col("cohort") != "(all)")
    assert set(cohorts["cohort"]) == {"smb", "enterprise"}
    assert set(cohorts["design"]) == {"paired"}


def test_the_drift_command_shows_the_paired_rows(replay_store):
    result = CliRunner().invoke(
        cli, ["drift", "--store", str(replay_store), "--metric", "eval_pass:expected_match", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    overall = [row for row in rows if row["cohort"] == "(all)"]
    assert {(row["adapter"], row["design"], row["verdict"]) for row in overall} == {
        ("a1", "paired", "regressed"),
        ("a2", "paired", "regressed"),
    }


def test_the_gate_fails_the_regressed_adapters_on_the_replay(replay_store):
    args = ["gate", "--store", str(replay_store), "--traffic", "replay", "--metric", "eval_pass:expected_match",
            "--format", "json"]  # fmt: skip
    for adapter in ("a1", "a2"):
        result = CliRunner().invoke(cli, [*args, "--adapter", adapter])
        assert result.exit_code == 1, result.output
        decision = json.loads(result.output)
        assert (decision["decision"], decision["adapter"]) == ("FAIL", adapter)
        regressed = [reason for reason in decision["reasons"] if reason.startswith("regressed: ")]
        assert regressed, decision["reasons"]
        assert regressed[0].startswith("regressed: cohort (all), eval_pass:expected_match: adapter ")
        assert "(paired, " in regressed[0]
        assert {row["design"] for row in decision["rows"]} == {"paired"}


def test_the_gate_passes_a_metric_on_which_the_adapters_equal_the_base(replay_store):
    # no answer of the tiny models reads as a refusal, in either arm: nothing to block on, with enough pairs
    result = CliRunner().invoke(
        cli,
        ["gate", "--store", str(replay_store), "--traffic", "replay", "--adapter", "a1", "--metric",
         "eval_pass:refusal", "--min-n", str(EXAMPLES // 2)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("PASS: a1 (sha256:")


def test_the_gate_takes_the_drift_settings_whole_or_by_name(replay_store):
    from loratrace.analysis.gate import gate
    from loratrace.analysis.run import DriftSettings

    settings = DriftSettings(traffic="replay", metric_names=["eval_pass:expected_match"])
    whole = gate(replay_store, settings, adapter="a1")
    by_name = gate(replay_store, adapter="a1", traffic="replay", metric_names=["eval_pass:expected_match"])
    assert (whole.decision, whole.reasons) == (by_name.decision, by_name.reasons)
    assert whole.decision == "FAIL"
    # a change on top of the settings given: a volume floor above the 40 pairs leaves no verdict but "insufficient"
    floored = gate(replay_store, settings, adapter="a1", min_n=EXAMPLES + 1, allow_insufficient=True)
    assert set(floored.rows["verdict"]) == {"insufficient_data"}
