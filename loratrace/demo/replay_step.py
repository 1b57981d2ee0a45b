"""The demo's last step: a small golden-set replay, and the paired drift table it yields.

The golden answers are the approved base model's own greedy answers (recorded here with plain transformers, no
loratrace), the way a team pins what users get today before an adapter replaces it. The replay then sends every
example through the base model and both adapters, and ``drift`` compares them paired on the same examples.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from loratrace.demo.tiny_model import TinyModels

EXAMPLES = 32  # above drift's 30-pair floor, so the paired rows get a verdict
MAX_NEW_TOKENS = 6
_SUBJECTS = ("invoice", "password", "refund policy", "enterprise plan")


def _prompts() -> list[str]:
    return [f"Question {n}: when is the {_SUBJECTS[n % len(_SUBJECTS)]} due?" for n in range(EXAMPLES)]


def _base_answers(models: TinyModels, prompts: list[str]) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(models.base)
    model = AutoModelForCausalLM.from_pretrained(models.base, dtype=torch.float32).eval()
    answers: list[str] = []
    with torch.no_grad():
        for prompt in prompts:
            inputs = tokenizer(prompt, return_tensors="pt")
            output = model.generate(
                **inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
            answers.append(str(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)))
    return answers


def write_golden(models: TinyModels, path: Path) -> Path:
    """A golden set over two cohorts whose expected answers are the base model's."""
    prompts = _prompts()
    rows = [
        {
            "id": f"demo-{n:02d}",
            "cohort": ("enterprise", "smb")[n % 2],
            "prompt": prompt,
            "expected": answer,
            "match": "exact",
            "limits": {"max_words": 40},
        }
        for n, (prompt, answer) in enumerate(zip(prompts, _base_answers(models, prompts), strict=True))
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


GATED_METRIC = "eval_pass:expected_match"


def replay_and_compare(models: TinyModels, workdir: Path) -> tuple[Path, pl.DataFrame]:
    """Replay the demo golden set into ``workdir/replay-store``; return the store and its paired drift rows."""
    from loratrace.analysis import drift_for_store
    from loratrace.replay import GenerationSettings, run_replay

    golden = write_golden(models, workdir / "golden.jsonl")
    store = workdir / "replay-store"
    run_replay(
        golden,
        base=str(models.base),
        adapters={name: str(path) for name, path in models.adapters.items()},
        engine="transformers",
        store=store,
        generation=GenerationSettings(max_new_tokens=MAX_NEW_TOKENS),
        dataset_version="demo-golden-v1",
        threads=1,  # the tiny model runs fastest on one thread, the more so on a busy machine
        progress=False,
    )
    rows = drift_for_store(store, metric_names=["eval_pass:expected_match", "eval_pass:refusal"], window=None)
    return store, rows


def gate_decisions(store: Path, adapters: list[str]) -> list[tuple[str, str, list[str]]]:
    """(adapter, PASS or FAIL, reasons) of the release gate on the replay, for each adapter."""
    from loratrace.analysis.gate import gate

    decisions: list[tuple[str, str, list[str]]] = []
    for adapter in adapters:
        result = gate(store, adapter=adapter, traffic="replay", metric_names=[GATED_METRIC])
        decisions.append((adapter, result.decision, result.reasons))
    return decisions
