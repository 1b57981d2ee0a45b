"""A golden set for the replay tests: several cohorts, schemas, tools, expected answers, and broken lines."""

from __future__ import annotations

import json
from pathlib import Path

GOOD = [
    {
        "id": "capital",
        "cohort": "consumer",
        "prompt": "What is the capital of France?",
        "expected": "Paris",
        "match": "contains",
    },
    {
        "id": "invoice",
        "cohort": "enterprise",
        "context": "Invoices are due within thirty days of the billing date.",
        "prompt": "When are invoices due?",
        "expected": ["thirty days", "30 days"],
        "match": "contains",
    },
    {
        "id": "account",
        "cohort": "enterprise",
        "prompt": "Return a JSON object with the fields name, plan and seats.",
        "schema": {
            "type": "object",
            "required": ["name", "plan", "seats"],
            "properties": {"customer": {"type": "object", "properties": {"name": {"type": "string"}}}},
        },
    },
    {
        "id": "reset",
        "cohort": "smb",
        "messages": [{"role": "user", "content": "Please reset my password and confirm my account email."}],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "reset_password",
                    "parameters": {
                        "type": "object",
                        "required": ["email"],
                        "properties": {"email": {"type": "string"}},
                    },
                },
            }
        ],
    },
    {
        "id": "fox",
        "cohort": "smb",
        "prompt": "The quick brown fox",
        "expected": "(?i)jumps? over",
        "match": "regex",
        "limits": {"max_words": 30},
    },
    {
        "id": 7,
        "cohort": "consumer",
        "prompt": "Translate the following sentence into French: good morning.",
        "expected": "bonjour",
        "match": "normalised",
    },
]
BROKEN = {
    3: '{"id": "broken-json", "prompt": "unterminated',
    5: '{"id": "no-prompt", "cohort": "smb"}',
    8: '{"id": "bad-draft", "prompt": "x", "schema": {"$schema": "http://json-schema.org/draft-02/schema#"}}',
    9: '{"id": "capital", "prompt": "a duplicate id"}',
}
"""line number -> a malformed line, placed among the good ones."""
GOOD_IDS = [str(row["id"]) for row in GOOD]


def write_golden(path: Path, good: list[dict] | None = None, *, broken: bool = True) -> Path:
    rows = [json.dumps(row) for row in (good if good is not None else GOOD)]
    lines: list[str] = []
    bad = dict(BROKEN) if broken else {}
    while rows or bad:
        number = len(lines) + 1
        lines.append(bad.pop(number) if number in bad else (rows.pop(0) if rows else ""))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
