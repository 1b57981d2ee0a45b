"""Which evaluators an example gets, from its fields, and running them on one answer.

- ``schema`` → ``json_schema``; ``tools`` → ``tool_arguments``; ``expected`` → ``expected_match`` (with ``match``);
  ``context`` → ``groundedness`` and ``unsupported_claim_rate``; ``limits`` → ``length_format``;
- every example → ``refusal``, and every external evaluator given with ``--evaluator``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from loratrace.evaluators.groundedness import evaluate_groundedness
from loratrace.evaluators.json_schema import evaluate_json_schema
from loratrace.evaluators.limits import evaluate_limits
from loratrace.evaluators.match import evaluate_match
from loratrace.evaluators.protocol import EvaluationResult, run_external
from loratrace.evaluators.refusal import evaluate_refusal
from loratrace.evaluators.tools import evaluate_tool_arguments
from loratrace.replay.dataset import Example


def builtin_results(example: Example, response: str) -> list[EvaluationResult]:
    results = [evaluate_refusal(response)]
    if example.schema is not None:
        results.append(evaluate_json_schema(response, example.schema))
    if example.tools is not None:
        results.append(evaluate_tool_arguments(response, example.tools))
    if example.expected is not None:
        results.append(evaluate_match(response, example.expected, example.match))
    if example.context is not None:
        results.extend(evaluate_groundedness(response, example.context))
    if example.limits is not None:
        results.append(evaluate_limits(response, example.limits))
    return results


def evaluate_answer(
    example: Example, response: str, *, external: Sequence[Any] = (), timeout_s: float = 30.0
) -> tuple[list[EvaluationResult], float]:
    """Every evaluation of one answer, and the seconds the evaluators took (reported apart from generation)."""
    started = time.perf_counter()
    results = builtin_results(example, response)
    for evaluator in external:
        results.append(
            run_external(
                evaluator, response=response, context=example.context, expected=example.expected, timeout_s=timeout_s
            )
        )
    return results, time.perf_counter() - started
