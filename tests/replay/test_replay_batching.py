"""The transformers engine's padded batches: the same greedy answers as one prompt at a time, and still one
generation span per example and model, each with its own tokens and context. Real tiny Llama + PEFT adapters."""

from __future__ import annotations

import shutil

import polars as pl
import pytest

import loratrace
from loratrace.replay import run_replay
from loratrace.replay.dataset import read_dataset, render_prompt
from loratrace.replay.engines import GenerationSettings, Request, TransformersEngine, batches_per_model
from loratrace.store import query
from tests.support.golden import write_golden

CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# prompts of very different lengths, so a batch of them is padded
PROMPTS = [
    "Hi",
    "What is the capital of France?",
    "Invoices are due within thirty days of the billing date. When is an invoice due?",
    "The quick brown fox",
    "Reset my password",
    "Return a JSON object with the fields name, plan and seats, and nothing else at all please.",
    "7",
]


def _answers(engine: TransformersEngine, requests: list[Request], batch_size: int) -> list[str]:
    engine.batch_size = batch_size
    settings = GenerationSettings(max_new_tokens=8)
    with loratrace.request_scopes([{} for _ in requests]) as scopes:
        return engine.generate(requests, scopes, list(range(len(requests))), settings)


@pytest.fixture(scope="module")
def engine(tiny_models):
    return TransformersEngine(str(tiny_models.base), tiny_models.adapters, threads=1)


def test_padded_batches_give_the_unbatched_greedy_answers(engine):
    requests = [Request(adapter, prompt, 0) for prompt in PROMPTS for adapter in (None, "a1", "a2")]
    one_by_one = _answers(engine, requests, 1)
    assert len(set(one_by_one)) > 3  # real, different answers: base and adapters differ, prompts differ
    for batch_size in (3, 8):
        assert _answers(engine, requests, batch_size) == one_by_one
    widths = {len(engine.tokenizer(prompt)["input_ids"]) for prompt in PROMPTS}
    assert max(widths) - min(widths) > 10  # the batches really were padded


def test_a_tokenizer_without_a_pad_token_pads_with_end_of_sequence(tiny_models, tmp_path):
    from transformers import AutoTokenizer

    base = tmp_path / "no-pad"
    shutil.copytree(tiny_models.base, base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(base)
    assert AutoTokenizer.from_pretrained(base).pad_token is None
    no_pad = TransformersEngine(str(base), {}, threads=1)
    assert no_pad.tokenizer.pad_token == no_pad.tokenizer.eos_token
    assert no_pad.tokenizer.padding_side == "left"
    requests = [Request(None, prompt, 0) for prompt in PROMPTS]
    assert _answers(no_pad, requests, 4) == _answers(no_pad, requests, 1)


def test_batches_hold_one_model_and_at_most_the_batch_size():
    requests = [Request(adapter, "x" * length, 0) for length in (5, 1, 3) for adapter in (None, "a1")]
    batches = batches_per_model(requests, 2)
    assert [(adapter, [len(requests[p].prompt) for p in positions]) for adapter, positions in batches] == [
        (None, [1, 3]),
        (None, [5]),
        ("a1", [1, 3]),
        ("a1", [5]),
    ]
    assert sorted(p for _, positions in batches for p in positions) == list(range(len(requests)))


def _replay(tiny_models, golden, store, batch_size):
    return run_replay(
        golden,
        base=str(tiny_models.base),
        adapters=tiny_models.adapters,
        engine="transformers",
        store=store,
        generation=GenerationSettings(max_new_tokens=8),
        batch_size=batch_size,
        chunk_size=8,
        threads=1,
        schema_attempts=2,
        fallback_to_base=True,
        progress=False,
        on_problem=lambda problem: None,
    )


def _stored(store) -> pl.DataFrame:
    return query(
        store,
        "SELECT g.example_id, coalesce(g.adapter_name, 'base') AS served, g.cohort, g.variant, g.schema_attempts, "
        "g.served_after_fallback, g.input_tokens, g.output_tokens, g.finish_reason, g.evals, "
        "s.attributes['output.value'] AS answer, s.attributes['loratrace.batch.size'] AS batch_size "
        "FROM generations g JOIN spans s ON g.trace_id = s.trace_id AND g.span_id = s.span_id "
        "ORDER BY 1, 2, 5 NULLS FIRST, 6",
    )


def test_a_batched_replay_stores_what_an_unbatched_one_does(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv(CAPTURE, "true")  # the answers themselves, to compare
    golden = write_golden(tmp_path / "golden.jsonl")
    unbatched = _replay(tiny_models, golden, tmp_path / "one", 1)
    batched = _replay(tiny_models, golden, tmp_path / "batched", 8)
    assert batched.generated == unbatched.generated
    assert (batched.schema_retries, batched.fallbacks) == (unbatched.schema_retries, unbatched.fallbacks)
    one, many = _stored(tmp_path / "one"), _stored(tmp_path / "batched")
    compared = [column for column in one.columns if column != "batch_size"]
    assert one["answer"].null_count() == 0  # the answers themselves are compared
    assert one["answer"].n_unique() > 3
    assert many.select(compared).rows() == one.select(compared).rows()
    assert set(one["batch_size"]) <= {"1", None}
    sizes = many["batch_size"].cast(pl.Int64)
    assert sizes.max() > 1  # the examples of a chunk went through generate together
    # each first answer is its own span: one per example and model
    firsts = many.filter(pl.col("schema_attempts").fill_null(1) == 1)
    assert firsts.group_by("example_id", "served").len()["len"].to_list() == [1] * len(firsts)
    # and its prompt is its own, not the batch's
    examples = {example.id: example for example in read_dataset(golden).examples}
    from transformers import AutoTokenizer

    tokens = AutoTokenizer.from_pretrained(tiny_models.base)
    base_first = firsts.filter(pl.col("served") == "base")
    for example_id, input_tokens in zip(base_first["example_id"], base_first["input_tokens"], strict=True):
        prompt = render_prompt(examples[example_id], tokens)
        assert input_tokens == len(tokens(prompt)["input_ids"]), example_id
