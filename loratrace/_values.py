"""Checks of the values loratrace reads from users and libraries, written once: numbers (a bool is not one), and
tables whose keys are a known set."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeGuard


def is_number(value: Any) -> TypeGuard[int | float]:
    """An int or a float, and not a bool (which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def number_or_none(value: Any, kind: type[int] | type[float]) -> Any:
    """``kind(value)`` for a number (see ``is_number``), else None: for fields a library may leave unset or odd."""
    return kind(value) if is_number(value) else None


def wrong_evaluation_value(score: Any, passed: Any) -> str | None:
    """``"score"`` or ``"passed"`` when that value of an evaluation has the wrong type (a number, True or False;
    None for either means unset), else None."""
    if score is not None and not is_number(score):
        return "score"
    if passed is not None and not isinstance(passed, bool):
        return "passed"
    return None


def evaluation_error(name: Any, score: Any, passed: Any, *, called: str) -> str | None:
    """What is wrong with an evaluation's name (a non-empty string), ``score`` or ``passed`` (see
    ``wrong_evaluation_value``), said of the call ``called`` (``loratrace.record_eval``); None when nothing is."""
    if not isinstance(name, str) or not name:
        return f"{called}() needs the evaluation's name as a non-empty string, got {name!r}"
    wrong = wrong_evaluation_value(score, passed)
    if wrong is None:
        return None
    needed, got = ("a number", score) if wrong == "score" else ("True or False", passed)
    return f"{called}({wrong}=...) takes {needed}, got {got!r}"


def known_keys(
    raw: Any,
    known: Collection[str],
    *,
    error: Callable[[str], Exception],
    not_a_table: str,
    unknown_keys: str,
) -> Mapping[str, Any]:
    """``raw`` as a mapping whose keys are all in ``known``, else ``error(message)``.

    The messages are ``str.format`` templates that may name ``value`` (``raw``), ``type`` (its type's name),
    ``known`` (``known`` joined with commas) and, in ``unknown_keys``, ``unknown`` (the sorted keys not known).
    """
    fields = {"value": raw, "type": type(raw).__name__, "known": ", ".join(known)}
    if not isinstance(raw, Mapping):
        raise error(not_a_table.format(**fields))
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise error(unknown_keys.format(unknown=unknown, **fields))
    return raw
