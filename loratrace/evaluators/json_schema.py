"""JSON validity of an answer against a JSON Schema, with the ``jsonschema`` library.

The draft is the schema's ``$schema`` (draft 3, 4, 6, 7, 2019-09 and 2020-12 are supported); a schema without
one is read as draft 2020-12. A schema naming another draft, or a schema that is itself invalid, is a
:class:`SchemaError` when the dataset is read, so no example is replayed against a schema that cannot be applied.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError as JsonSchemaError
from jsonschema.protocols import Validator

from loratrace.evaluators.protocol import EvaluationResult

NAME = "json_schema"
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```$", re.DOTALL)
_DRAFTS = (
    jsonschema.Draft3Validator,
    jsonschema.Draft4Validator,
    jsonschema.Draft6Validator,
    jsonschema.Draft7Validator,
    jsonschema.Draft201909Validator,
    jsonschema.Draft202012Validator,
)
_SUPPORTED = ", ".join(cls.META_SCHEMA["$schema"] for cls in _DRAFTS)


class SchemaError(ValueError):
    """A schema that cannot be applied: an unsupported draft, or not a valid schema of its draft."""


def compile_schema(schema: Any) -> Validator:
    """A validator for ``schema``; :class:`SchemaError` when its draft is unsupported or it is invalid."""
    if not isinstance(schema, Mapping | bool):
        msg = f"a JSON Schema is an object (or true/false), got {type(schema).__name__}"
        raise SchemaError(msg)
    if isinstance(schema, Mapping) and "$schema" in schema:
        cls = jsonschema.validators.validator_for(schema, default=None)
        if cls is None:
            msg = f"unsupported JSON Schema draft {schema['$schema']!r}; use one of: {_SUPPORTED}"
            raise SchemaError(msg)
    else:
        cls = jsonschema.Draft202012Validator
    try:
        cls.check_schema(schema)
    except JsonSchemaError as exc:
        path = "/".join(str(part) for part in exc.path) or "(root)"
        msg = f"invalid JSON Schema at {path}: {exc.message}"
        raise SchemaError(msg) from None
    return cls(schema)


def parse_json_answer(response: str) -> Any:
    """The JSON value of an answer, allowing surrounding whitespace and one Markdown code fence."""
    text = response.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    return json.loads(text)


def first_error(validator: Validator, instance: Any) -> str | None:
    """The most relevant validation error as ``path: message``, or None when ``instance`` is valid."""
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is None:
        return None
    path = "/".join(str(part) for part in error.absolute_path) or "(root)"
    return f"{path}: {error.message}"


def check_json(response: str, validator: Validator) -> str | None:
    """None when ``response`` is JSON valid against the schema, else why not (parse or validation error)."""
    try:
        instance = parse_json_answer(response)
    except json.JSONDecodeError as exc:
        return f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    return first_error(validator, instance)


def evaluate_json_schema(response: str, validator: Validator) -> EvaluationResult:
    """``json_schema``: passed when the answer parses as JSON and validates; the explanation says where not."""
    error = check_json(response, validator)
    if error is None:
        return EvaluationResult(NAME, score=1.0, label="valid", passed=True)
    label = "not_json" if error.startswith("not JSON") else "invalid"
    return EvaluationResult(NAME, score=0.0, label=label, passed=False, explanation=error)
