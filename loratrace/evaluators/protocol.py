"""What an evaluator is, what it returns, and how an external one (an LLM judge, a vendor's scorer) plugs in.

An evaluator is a callable ``evaluator(*, response, context, expected)`` or an object with a method
``evaluate(*, response, context, expected)``. It returns an :class:`EvaluationResult`, a mapping with any of
``score`` / ``label`` / ``passed`` / ``explanation``, a bool (passed) or a number (score). Its name is its ``name``
attribute, else its ``__name__``, else its class name. An evaluator that raises, returns something else or runs
past its timeout becomes an *evaluation error* on that example (label ``error``), never a stopped replay.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from loratrace._values import evaluation_error, wrong_evaluation_value
from loratrace.errors import ConfigurationError

ERROR_LABEL = "error"
"""The label of an evaluation that could not be made (the evaluator raised or timed out)."""


@dataclass(frozen=True, kw_only=True)
class EvaluationResult:
    """One ``gen_ai.evaluation.result``: ``passed`` is None when the evaluator does not decide pass/fail.

    Built as ``loratrace.record_eval`` is called: the name, then the rest by name. A ``score`` that is not a
    number or a ``passed`` that is not True or False raises ``TypeError`` here, inside the evaluator that built
    it, so it becomes that example's evaluation error rather than a failure when the result is recorded.
    """

    name: str = field(kw_only=False)
    score: float | None = None
    label: str | None = None
    passed: bool | None = None
    explanation: str | None = None

    def __post_init__(self) -> None:
        problem = evaluation_error(self.name, self.score, self.passed, called="EvaluationResult")
        if problem is not None:
            raise TypeError(problem)


@runtime_checkable
class Evaluator(Protocol):
    """An object-style external evaluator."""

    def evaluate(self, *, response: str, context: str | None, expected: Any) -> Any: ...


def evaluator_name(evaluator: Any) -> str:
    name = getattr(evaluator, "name", None)
    if isinstance(name, str) and name:
        return name
    name = getattr(evaluator, "__name__", None)
    if isinstance(name, str) and name and name != "<lambda>":
        return name
    return type(evaluator).__name__


def load_evaluator(reference: str) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted); a class is instantiated with no arguments.

    Raises ``ConfigurationError`` naming the reference when it cannot be imported or is not an evaluator.
    """
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        msg = f"--evaluator takes module:attr (e.g. mypackage.judges:politeness), got {reference!r}"
        raise ConfigurationError(msg)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"--evaluator {reference!r}: cannot import module {module_name!r} ({exc})"
        raise ConfigurationError(msg) from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            msg = f"--evaluator {reference!r}: module {module_name!r} has no attribute {attribute!r}"
            raise ConfigurationError(msg) from None
    if inspect.isclass(target):
        target = target()
    if not (isinstance(target, Evaluator) or callable(target)):
        msg = f"--evaluator {reference!r} is neither callable nor an object with evaluate(response=..., ...)"
        raise ConfigurationError(msg)
    return target


def as_result(name: str, value: Any) -> EvaluationResult:
    """Read what an evaluator returned; ``TypeError`` when it is none of the accepted shapes."""
    if isinstance(value, EvaluationResult):
        return value if value.name == name else replace(value, name=name)
    if isinstance(value, bool):
        return EvaluationResult(name, passed=value)
    if isinstance(value, int | float):
        return EvaluationResult(name, score=float(value))
    if isinstance(value, Mapping):
        unknown = set(value) - {"score", "label", "passed", "explanation"}
        if unknown:
            msg = f"evaluator {name!r} returned unknown keys {sorted(unknown)}"
            raise TypeError(msg)
        score, passed = value.get("score"), value.get("passed")
        wrong = wrong_evaluation_value(score, passed)
        if wrong is not None:
            needed = "a number" if wrong == "score" else "True or False"
            msg = f"evaluator {name!r} returned {wrong}={value.get(wrong)!r}; {needed} is needed"
            raise TypeError(msg)
        label, explanation = value.get("label"), value.get("explanation")
        return EvaluationResult(
            name,
            score=float(score) if score is not None else None,
            label=str(label) if label is not None else None,
            passed=passed,
            explanation=str(explanation) if explanation is not None else None,
        )
    msg = (
        f"evaluator {name!r} returned {type(value).__name__}; return an EvaluationResult, a mapping of "
        "score/label/passed/explanation, a bool or a number"
    )
    raise TypeError(msg)


def run_external(
    evaluator: Any, *, response: str, context: str | None, expected: Any, timeout_s: float
) -> EvaluationResult:
    """Run one external evaluator with a timeout; any failure is returned as an evaluation error, never raised.

    The call runs on a daemon thread: Python cannot stop a thread, so a judge that hangs is abandoned (it keeps
    its thread until it returns) and the replay moves on.
    """
    name = evaluator_name(evaluator)
    call = evaluator.evaluate if isinstance(evaluator, Evaluator) else evaluator
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(("ok", call(response=response, context=context, expected=expected)))
        except BaseException as exc:  # a judge's failure of any kind is data about that example
            outcome.append(("raised", exc))

    thread = threading.Thread(target=run, name=f"loratrace-evaluator-{name}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not outcome:
        return EvaluationResult(name, label=ERROR_LABEL, explanation=f"evaluator timed out after {timeout_s:g} s")
    kind, value = outcome[0]
    if kind == "raised":
        explanation = f"evaluator raised {type(value).__name__}: {value}"
        return EvaluationResult(name, label=ERROR_LABEL, explanation=explanation)
    try:
        return as_result(name, value)
    except TypeError as exc:
        return EvaluationResult(name, label=ERROR_LABEL, explanation=str(exc))
