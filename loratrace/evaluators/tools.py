"""Tool-call arguments valid against the tool's JSON Schema.

The answer is a tool call as JSON: ``{"name": ..., "arguments": {...}}`` (``arguments`` may be a JSON string, as
the OpenAI API sends it), or a list of such calls. Tools are declared the OpenAI way,
``{"type": "function", "function": {"name", "parameters"}}``, or plainly as ``{"name", "parameters"}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from jsonschema.protocols import Validator

from loratrace.evaluators.json_schema import SchemaError, compile_schema, first_error, parse_json_answer
from loratrace.evaluators.protocol import EvaluationResult

NAME = "tool_arguments"


def compile_tools(tools: Any) -> dict[str, Validator]:
    """Tool name -> validator of its parameters; :class:`SchemaError` for a malformed declaration."""
    if not isinstance(tools, Sequence) or isinstance(tools, str | bytes):
        msg = f"tools must be a list of tool declarations, got {type(tools).__name__}"
        raise SchemaError(msg)
    validators: dict[str, Validator] = {}
    for position, tool in enumerate(tools):
        declaration = tool.get("function", tool) if isinstance(tool, Mapping) else None
        name = declaration.get("name") if isinstance(declaration, Mapping) else None
        if not isinstance(declaration, Mapping) or not isinstance(name, str) or not name:
            msg = f"tools[{position}] has no name: declare {{'name': ..., 'parameters': {{...}}}}"
            raise SchemaError(msg)
        parameters = declaration.get("parameters", {"type": "object"})
        try:
            validators[name] = compile_schema(parameters)
        except SchemaError as exc:
            msg = f"tools[{position}] ({name}) parameters: {exc}"
            raise SchemaError(msg) from None
    return validators


def _calls(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _call_error(call: Any, validators: Mapping[str, Validator]) -> str | None:
    if not isinstance(call, Mapping) or "name" not in call:
        return 'a tool call is an object {"name": ..., "arguments": {...}}'
    name = call["name"]
    validator = validators.get(name) if isinstance(name, str) else None
    if validator is None:
        return f"unknown tool {name!r}; declared: {', '.join(sorted(validators))}"
    arguments = call.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            return f"{name}: arguments are not JSON ({exc.msg})"
    error = first_error(validator, arguments)
    return f"{name}: {error}" if error is not None else None


def evaluate_tool_arguments(response: str, validators: Mapping[str, Validator]) -> EvaluationResult:
    """``tool_arguments``: passed when every tool call in the answer names a declared tool with valid arguments;
    the score is the share of valid calls."""
    try:
        calls = _calls(parse_json_answer(response))
    except json.JSONDecodeError as exc:
        return EvaluationResult(NAME, score=0.0, label="not_json", passed=False, explanation=f"not JSON: {exc.msg}")
    if not calls:
        return EvaluationResult(NAME, score=0.0, label="no_call", passed=False, explanation="no tool call")
    errors = [error for error in (_call_error(call, validators) for call in calls) if error is not None]
    score = 1.0 - len(errors) / len(calls)
    if errors:
        return EvaluationResult(NAME, score=score, label="invalid", passed=False, explanation="; ".join(errors))
    return EvaluationResult(NAME, score=score, label="valid", passed=True)
