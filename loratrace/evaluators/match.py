"""Expected-answer match: ``exact``, ``normalised``, ``contains`` or ``regex``.

- ``exact``: the answer equals an expected string, ignoring only leading and trailing whitespace.
- ``normalised``: equal after Unicode NFKC folding, case folding, dropping punctuation and collapsing whitespace.
- ``contains``: the normalised expected string appears in the normalised answer, on word boundaries.
- ``regex``: ``re.search`` of the expected pattern in the answer (as written; use ``(?i)`` for case).

``expected`` may be a list: the answer passes when it matches any of them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Literal

from loratrace.evaluators.protocol import EvaluationResult

NAME = "expected_match"
MatchMode = Literal["exact", "normalised", "contains", "regex"]
MATCH_MODES: tuple[MatchMode, ...] = ("exact", "normalised", "contains", "regex")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC, case-folded, punctuation and symbols removed, whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in folded)
    return _SPACES.sub(" ", kept).strip()


def _matches(response: str, expected: str, mode: MatchMode) -> bool:
    if mode == "exact":
        return response.strip() == expected.strip()
    if mode == "regex":
        return re.search(expected, response) is not None
    answer, wanted = normalise(response), normalise(expected)
    if mode == "normalised":
        return answer == wanted
    if not wanted:
        return not answer
    return f" {wanted} " in f" {answer} "


def evaluate_match(response: str, expected: str | Sequence[str], mode: MatchMode) -> EvaluationResult:
    """``expected_match``: passed when the answer matches (any of) the expected answer(s) under ``mode``."""
    if mode not in MATCH_MODES:
        msg = f"match must be one of {', '.join(MATCH_MODES)}, got {mode!r}"
        raise ValueError(msg)
    candidates = [expected] if isinstance(expected, str) else list(expected)
    passed = any(_matches(response, candidate, mode) for candidate in candidates)
    explanation = (
        None
        if passed
        else f"no {mode} match for {candidates[0]!r}"
        + (f" (or {len(candidates) - 1} other)" if len(candidates) > 1 else "")
    )
    return EvaluationResult(
        NAME,
        score=1.0 if passed else 0.0,
        label=mode if passed else "mismatch",
        passed=passed,
        explanation=explanation,
    )
