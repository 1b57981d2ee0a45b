"""Reading golden sets: malformed lines are reported with their line numbers and skipped, the rest is kept."""

from __future__ import annotations

import json

import pytest

from loratrace.replay import read_dataset
from tests.support.golden import BROKEN, GOOD_IDS, write_golden


def test_malformed_lines_are_reported_by_line_and_skipped(tmp_path):
    dataset = read_dataset(write_golden(tmp_path / "golden.jsonl"))
    assert [example.id for example in dataset.examples] == GOOD_IDS
    assert [problem.line for problem in dataset.problems] == sorted(BROKEN)
    messages = {problem.line: problem.message for problem in dataset.problems}
    assert messages[3].startswith("not valid JSON")
    assert messages[5] == "give exactly one of 'prompt' (a string) or 'messages' (chat messages)"
    assert "unsupported JSON Schema draft 'http://json-schema.org/draft-02/schema#'" in messages[8]
    assert messages[9] == "duplicate id 'capital' (first on line 1)"
    assert str(dataset.problems[0]).startswith("line 3: ")


def test_examples_keep_their_own_line_numbers(tmp_path):
    dataset = read_dataset(write_golden(tmp_path / "golden.jsonl"))
    lines = {example.id: example.line for example in dataset.examples}
    assert lines["capital"] == 1
    assert lines["invoice"] == 2
    assert lines["account"] == 4


@pytest.mark.parametrize(
    ("row", "message"),
    [
        pytest.param({"prompt": "x"}, "'id' is required", id="no-id"),
        pytest.param({"id": "a", "prompt": "x", "answer": "y"}, "unknown field(s) ['answer']", id="unknown-field"),
        pytest.param(
            {"id": "a", "prompt": "x", "messages": [{"role": "user", "content": "y"}]},
            "exactly one",
            id="both-prompt-and-messages",
        ),
        pytest.param({"id": "a", "messages": [{"role": "robot", "content": "y"}]}, "messages[0].role", id="role"),
        pytest.param({"id": "a", "prompt": "x", "match": "fuzzy"}, "'match' must be one of", id="match"),
        pytest.param(
            {"id": "a", "prompt": "x", "expected": "(", "match": "regex"}, "not a valid regular", id="bad-regex"
        ),
        pytest.param({"id": "a", "prompt": "x", "expected": 3}, "'expected' must be a string", id="expected-type"),
        pytest.param(
            {"id": "a", "prompt": "x", "tools": [{"parameters": {}}]},
            "'tools': tools[0] has no name",
            id="tool-without-name",
        ),
        pytest.param({"id": "a", "prompt": "x", "limits": {"max_chars": "ten"}}, "limits.max_chars", id="limits"),
        pytest.param({"id": "a", "prompt": 5}, "'prompt' must be a string", id="prompt-type"),
        pytest.param(["not", "an", "object"], "must be a JSON object", id="array-line"),
    ],
)
def test_each_kind_of_malformed_example(tmp_path, row, message):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"id": "ok", "prompt": "fine"}) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    dataset = read_dataset(path)
    assert [example.id for example in dataset.examples] == ["ok"]
    (problem,) = dataset.problems
    assert problem.line == 2
    assert message in problem.message


def test_version_is_a_content_hash_unless_given(tmp_path):
    first = read_dataset(write_golden(tmp_path / "a.jsonl"))
    again = read_dataset(write_golden(tmp_path / "b.jsonl"))
    assert first.version == again.version
    assert first.version.startswith("sha256:")
    changed = read_dataset(write_golden(tmp_path / "c.jsonl", broken=False))
    assert changed.version != first.version
    assert read_dataset(tmp_path / "a.jsonl", version="golden-v3").version == "golden-v3"


def test_limit_keeps_the_first_valid_examples(tmp_path):
    dataset = read_dataset(write_golden(tmp_path / "golden.jsonl"), limit=3)
    assert [example.id for example in dataset.examples] == GOOD_IDS[:3]


def test_unicode_and_blank_lines(tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_text('\n{"id": "ü-1", "prompt": "Qu’est-ce que c’est ? 日本"}\n\n', encoding="utf-8")
    (example,) = read_dataset(path).examples
    assert (example.id, example.line, example.prompt) == ("ü-1", 2, "Qu’est-ce que c’est ? 日本")


def test_a_line_that_is_not_utf8_is_reported(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"id": "ok", "prompt": "fine"}\n{"id": "x", "prompt": "caf\xe9"}\n')
    dataset = read_dataset(path)
    assert [example.id for example in dataset.examples] == ["ok"]
    assert [str(problem) for problem in dataset.problems] == ["line 2: not UTF-8 text (byte 27 of the line)"]
