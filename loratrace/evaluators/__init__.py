"""Built-in evaluators that need no network, and the protocol external judges follow.

One module per family: :mod:`~loratrace.evaluators.json_schema`, :mod:`~loratrace.evaluators.tools`,
:mod:`~loratrace.evaluators.refusal`, :mod:`~loratrace.evaluators.match`,
:mod:`~loratrace.evaluators.groundedness`, :mod:`~loratrace.evaluators.limits`; :mod:`~loratrace.evaluators.protocol`
for external ones. Each returns :class:`EvaluationResult` values, which ``loratrace.record_eval`` emits as
``gen_ai.evaluation.result`` events. Needs the ``replay`` extra (``jsonschema``).
"""

from loratrace.evaluators.protocol import EvaluationResult, Evaluator, load_evaluator, run_external

__all__ = ["EvaluationResult", "Evaluator", "load_evaluator", "run_external"]
