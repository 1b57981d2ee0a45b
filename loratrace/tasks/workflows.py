"""Workflows: what an agent trace on a route must do to have completed its task.

A workflows file (TOML, or JSON with the same shape) declares one workflow per route::

    [[workflow]]
    name = "refund"
    route = "refunds"
    steps = ["lookup_order", "issue_refund"]    # required, matched by tool name or span name
    ordered = true                              # the required steps in this order (default)

    [[workflow.forbidden]]                      # a shortcut: issue_refund with no escalation-policy check before it
    step = "issue_refund"
    unless_after = ["check_escalation_policy"]  # omit to forbid the step outright

    [workflow.final_answer]                     # checked on the trace's last generation
    eval = "answer_grounded"                    # an evaluation of that name must have passed
    finish_reasons = ["stop"]
    output_matches = "refund"                   # a regular expression; needs content capture

A step matches a span whose ``gen_ai.tool.name`` is the step, or whose name is the step or ``execute_tool <step>``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loratrace.errors import ConfigurationError


@dataclass(frozen=True)
class Forbidden:
    """``step`` must not run unless one of ``unless_after`` ran before it (never, when that is empty)."""

    step: str
    unless_after: tuple[str, ...] = ()


@dataclass(frozen=True)
class FinalAnswer:
    eval: str | None = None
    finish_reasons: tuple[str, ...] = ()
    output_matches: re.Pattern[str] | None = None


@dataclass(frozen=True)
class Workflow:
    name: str
    route: str
    steps: tuple[str, ...]
    ordered: bool = True
    forbidden: tuple[Forbidden, ...] = ()
    final_answer: FinalAnswer = field(default_factory=FinalAnswer)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        msg = f"{where} must be a list of non-empty strings, got {value!r}"
        raise ConfigurationError(msg)
    return tuple(value)


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        msg = f"{where} has unknown key(s) {unknown}; allowed: {', '.join(sorted(allowed))}"
        raise ConfigurationError(msg)


def _final_answer(table: Any, where: str) -> FinalAnswer:
    if table is None:
        return FinalAnswer()
    if not isinstance(table, dict):
        msg = f"{where} must be a table, got {table!r}"
        raise ConfigurationError(msg)
    _only(table, {"eval", "finish_reasons", "output_matches"}, where)
    pattern = table.get("output_matches")
    compiled = None
    if pattern is not None:
        try:
            compiled = re.compile(str(pattern))
        except re.error as exc:
            msg = f"{where}.output_matches is not a regular expression ({exc}): {pattern!r}"
            raise ConfigurationError(msg) from exc
    evaluation = table.get("eval")
    if evaluation is not None and (not isinstance(evaluation, str) or not evaluation):
        msg = f"{where}.eval must be an evaluation name, got {evaluation!r}"
        raise ConfigurationError(msg)
    reasons = _strings(table["finish_reasons"], f"{where}.finish_reasons") if "finish_reasons" in table else ()
    return FinalAnswer(eval=evaluation, finish_reasons=reasons, output_matches=compiled)


def _workflow(table: Any, index: int) -> Workflow:
    where = f"workflow[{index}]"
    if not isinstance(table, dict):
        msg = f"{where} must be a table, got {table!r}"
        raise ConfigurationError(msg)
    _only(table, {"name", "route", "steps", "ordered", "forbidden", "final_answer"}, where)
    for key in ("route", "steps"):
        if key not in table:
            msg = f"{where} needs {key!r}"
            raise ConfigurationError(msg)
    route = table["route"]
    if not isinstance(route, str) or not route:
        msg = f"{where}.route must be a route name, got {route!r}"
        raise ConfigurationError(msg)
    ordered = table.get("ordered", True)
    if not isinstance(ordered, bool):
        msg = f"{where}.ordered must be true or false, got {ordered!r}"
        raise ConfigurationError(msg)
    forbidden = []
    for number, rule in enumerate(table.get("forbidden", [])):
        rule_where = f"{where}.forbidden[{number}]"
        if not isinstance(rule, dict) or not isinstance(rule.get("step"), str) or not rule["step"]:
            msg = f"{rule_where} must be a table with a 'step', got {rule!r}"
            raise ConfigurationError(msg)
        _only(rule, {"step", "unless_after"}, rule_where)
        unless = _strings(rule["unless_after"], f"{rule_where}.unless_after") if "unless_after" in rule else ()
        forbidden.append(Forbidden(rule["step"], unless))
    return Workflow(
        name=str(table.get("name", route)),
        route=route,
        steps=_strings(table["steps"], f"{where}.steps"),
        ordered=ordered,
        forbidden=tuple(forbidden),
        final_answer=_final_answer(table.get("final_answer"), f"{where}.final_answer"),
    )


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"{path} is not valid JSON: {exc}"
            raise ConfigurationError(msg) from exc
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path} is not valid TOML: {exc}"
        raise ConfigurationError(msg) from exc


def load_workflows(path: str | os.PathLike[str]) -> list[Workflow]:
    """The workflows of a TOML (or ``.json``) file; one per route."""
    source = Path(path)
    if not source.is_file():
        msg = f"--workflows {str(source)!r} does not exist or is not a file"
        raise ConfigurationError(msg)
    data = _read(source)
    tables = data.get("workflow") if isinstance(data, dict) else None
    if not isinstance(tables, list) or not tables:
        msg = f"{source} declares no workflow: add [[workflow]] tables with a route and steps"
        raise ConfigurationError(msg)
    workflows = [_workflow(table, index) for index, table in enumerate(tables)]
    routes: dict[str, str] = {}
    for workflow in workflows:
        if workflow.route in routes:
            msg = (
                f"{source}: route {workflow.route!r} has two workflows ({routes[workflow.route]!r}, {workflow.name!r})"
            )
            raise ConfigurationError(msg)
        routes[workflow.route] = workflow.name
    return workflows


def step_names(workflows: Sequence[Workflow]) -> set[str]:
    """Every step a workflow mentions (required, forbidden or allowing)."""
    names: set[str] = set()
    for workflow in workflows:
        names.update(workflow.steps)
        for rule in workflow.forbidden:
            names.add(rule.step)
            names.update(rule.unless_after)
    return names
