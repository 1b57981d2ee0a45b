"""External evaluators for the replay tests, loaded with ``--evaluator judges:NAME``."""

from __future__ import annotations

import threading

_NEVER = threading.Event()


def mentions_paris(*, response: str, context: str | None, expected: object) -> dict[str, object]:
    return {"passed": "paris" in response.lower(), "explanation": "looks for Paris"}


def raises(*, response: str, context: str | None, expected: object) -> bool:
    msg = "the judge's backend is down"
    raise ConnectionError(msg)


def hangs(*, response: str, context: str | None, expected: object) -> bool:
    _NEVER.wait(120)  # far past the test's --evaluator-timeout
    return True


def slow(*, response: str, context: str | None, expected: object) -> bool:
    """A judge that takes a while per answer (as a remote LLM judge does), so a run can be killed mid-way."""
    _NEVER.wait(0.2)
    return True
