"""Reading a golden set: one JSON object per line, checked line by line.

A malformed line (bad JSON, a missing or duplicated id, an unknown field, an invalid schema or pattern) is
reported with its line number and skipped; the rest of the file is replayed. The format is documented in
``docs/replay.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema.protocols import Validator

from loratrace._values import known_keys
from loratrace.evaluators.json_schema import SchemaError, compile_schema
from loratrace.evaluators.limits import check_limits
from loratrace.evaluators.match import MATCH_MODES, MatchMode
from loratrace.evaluators.tools import compile_tools

FIELDS = ("id", "prompt", "messages", "context", "expected", "match", "schema", "tools", "cohort", "limits")
_ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Example:
    """One golden-set example, validated; ``line`` is its 1-based line in the file."""

    id: str
    line: int
    prompt: str | None = None
    messages: tuple[Mapping[str, str], ...] | None = None
    context: str | None = None
    expected: str | tuple[str, ...] | None = None
    match: MatchMode = "normalised"
    schema: Validator | None = None
    tools: Mapping[str, Validator] | None = None
    cohort: str | None = None
    limits: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Problem:
    """A line that was skipped, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class Dataset:
    examples: list[Example]
    problems: list[Problem]
    version: str
    """``sha256:`` of the file's bytes (first 16 hex digits), unless a version was given."""


class _Invalid(ValueError):
    pass


def _text(row: Mapping[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"{key!r} must be a string, got {type(value).__name__}"
        raise _Invalid(msg)
    return value


def _messages(value: Any) -> tuple[Mapping[str, str], ...]:
    if not isinstance(value, list) or not value:
        msg = '\'messages\' must be a non-empty list of {"role": ..., "content": ...} objects'
        raise _Invalid(msg)
    for position, message in enumerate(value):
        if not isinstance(message, Mapping) or not isinstance(message.get("content"), str):
            msg = f"messages[{position}] needs a string 'content'"
            raise _Invalid(msg)
        if message.get("role") not in _ROLES:
            msg = f"messages[{position}].role must be one of {', '.join(_ROLES)}, got {message.get('role')!r}"
            raise _Invalid(msg)
    return tuple(value)


def _expected(value: Any) -> str | tuple[str, ...] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return tuple(value)
    msg = f"'expected' must be a string or a non-empty list of strings, got {value!r}"
    raise _Invalid(msg)


def parse_example(row: Any, line: int) -> Example:
    """An :class:`Example` from one decoded line; ``ValueError`` saying what is wrong."""
    known_keys(
        row,
        FIELDS,
        error=_Invalid,
        not_a_table="each line must be a JSON object, got {type}",
        unknown_keys="unknown field(s) {unknown}; known: {known}",
    )
    example_id = row.get("id")
    if isinstance(example_id, int) and not isinstance(example_id, bool):
        example_id = str(example_id)
    if not isinstance(example_id, str) or not example_id.strip():
        msg = "'id' is required: a non-empty string (or integer) naming the example"
        raise _Invalid(msg)
    prompt = _text(row, "prompt")
    messages = _messages(row["messages"]) if row.get("messages") is not None else None
    if (prompt is None) == (messages is None):
        msg = "give exactly one of 'prompt' (a string) or 'messages' (chat messages)"
        raise _Invalid(msg)
    match = row.get("match", "normalised")
    if match not in MATCH_MODES:
        msg = f"'match' must be one of {', '.join(MATCH_MODES)}, got {match!r}"
        raise _Invalid(msg)
    expected = _expected(row.get("expected"))
    if match == "regex" and expected is not None:
        for pattern in [expected] if isinstance(expected, str) else expected:
            try:
                re.compile(pattern)
            except re.error as exc:
                msg = f"'expected' is not a valid regular expression for match=regex: {pattern!r} ({exc})"
                raise _Invalid(msg) from None
    try:
        schema = compile_schema(row["schema"]) if row.get("schema") is not None else None
    except SchemaError as exc:
        raise _Invalid(f"'schema': {exc}") from None
    try:
        tools = compile_tools(row["tools"]) if row.get("tools") is not None else None
    except SchemaError as exc:
        raise _Invalid(f"'tools': {exc}") from None
    limits = row.get("limits")
    if limits is not None:
        try:
            check_limits(limits)
        except ValueError as exc:
            raise _Invalid(str(exc)) from None
    return Example(
        id=example_id,
        line=line,
        prompt=prompt,
        messages=messages,
        context=_text(row, "context"),
        expected=expected,
        match=match,
        schema=schema,
        tools=tools,
        cohort=_text(row, "cohort"),
        limits=limits,
        raw=row,
    )


def read_dataset(path: str | os.PathLike[str], *, limit: int | None = None, version: str | None = None) -> Dataset:
    """Read and check every line of a JSONL golden set (blank lines are ignored; ``limit`` keeps the first N
    valid examples). Raises ``OSError`` when the file cannot be read."""
    data = Path(path).read_bytes()
    examples: list[Example] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for number, raw_bytes in enumerate(data.splitlines(), 1):
        if not raw_bytes.strip():
            continue
        try:
            try:
                raw_line = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _Invalid(f"not UTF-8 text (byte {exc.start + 1} of the line)") from None
            try:
                row = json.loads(raw_line)
            except json.JSONDecodeError as exc:
                raise _Invalid(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
            example = parse_example(row, number)
            if example.id in seen:
                raise _Invalid(f"duplicate id {example.id!r} (first on line {seen[example.id]})")
        except _Invalid as exc:
            problems.append(Problem(number, str(exc)))
            continue
        seen[example.id] = number
        if limit is None or len(examples) < limit:
            examples.append(example)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()[:16]
    return Dataset(examples=examples, problems=problems, version=version or digest)


def render_prompt(example: Example, tokenizer: Any) -> str:
    """The text the model is given: the chat template applied to the messages, or the prompt; the context, when
    present, comes first (as a system message for chat examples)."""
    if example.messages is not None:
        messages: Sequence[Mapping[str, str]] = list(example.messages)
        if example.context is not None:
            messages = [{"role": "system", "content": f"Context:\n{example.context}"}, *messages]
        return str(tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True))
    prompt = example.prompt or ""  # parse_example guarantees a prompt when there are no messages
    if example.context is not None:
        return f"Context:\n{example.context}\n\n{prompt}"
    return prompt
