"""Length and format limits: characters, words, lines, and a required or forbidden pattern.

Declared per example as ``limits``: ``{"max_chars": 400, "min_chars": 1, "max_words": 80, "max_lines": 5,
"format": "^[A-Z]", "forbid": "(?i)lorem ipsum"}``; any subset. Characters are Unicode code points.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from loratrace._values import known_keys
from loratrace.evaluators.protocol import EvaluationResult

NAME = "length_format"
LIMIT_KEYS = ("max_chars", "min_chars", "max_words", "max_lines", "format", "forbid")


def check_limits(limits: Any) -> None:
    """``ValueError`` naming the key when ``limits`` is malformed (checked when the dataset is read)."""
    known_keys(
        limits,
        LIMIT_KEYS,
        error=ValueError,
        not_a_table="limits must be an object with any of {known}, got {type}",
        unknown_keys="limits has unknown keys {unknown}; known: {known}",
    )
    for key in ("max_chars", "min_chars", "max_words", "max_lines"):
        value = limits.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            msg = f"limits.{key} must be a non-negative integer, got {value!r}"
            raise ValueError(msg)
    for key in ("format", "forbid"):
        pattern = limits.get(key)
        if pattern is not None:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                msg = f"limits.{key} must be a regular expression, got {pattern!r} ({exc})"
                raise ValueError(msg) from None


def evaluate_limits(response: str, limits: Mapping[str, Any]) -> EvaluationResult:
    """``length_format``: passed when every declared limit holds; the explanation lists those broken."""
    broken = []
    chars, words, lines = len(response), len(response.split()), len(response.splitlines()) or 1
    if limits.get("max_chars") is not None and chars > limits["max_chars"]:
        broken.append(f"{chars} chars > max_chars {limits['max_chars']}")
    if limits.get("min_chars") is not None and chars < limits["min_chars"]:
        broken.append(f"{chars} chars < min_chars {limits['min_chars']}")
    if limits.get("max_words") is not None and words > limits["max_words"]:
        broken.append(f"{words} words > max_words {limits['max_words']}")
    if limits.get("max_lines") is not None and lines > limits["max_lines"]:
        broken.append(f"{lines} lines > max_lines {limits['max_lines']}")
    if limits.get("format") is not None and re.search(limits["format"], response) is None:
        broken.append(f"does not match format {limits['format']!r}")
    if limits.get("forbid") is not None and re.search(limits["forbid"], response) is not None:
        broken.append(f"matches forbidden {limits['forbid']!r}")
    if broken:
        return EvaluationResult(NAME, score=0.0, label="broken", passed=False, explanation="; ".join(broken))
    return EvaluationResult(NAME, score=1.0, label="within", passed=True)
