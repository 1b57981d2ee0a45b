"""The alert rules file: YAML, validated against a JSON Schema, every error naming its key and line.

The full example with every key is ``docs/alerts.example.yaml``; docs/alerts.md describes each rule type. A rule
set has ``defaults`` (knobs every rule inherits), ``sinks`` (where notifications go) and ``rules``; a rule may
carry ``overrides`` for an adapter, a cohort, or both, the most specific winning.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import jsonschema
import yaml

from loratrace.errors import ConfigurationError

RuleType = Literal["drift", "spike", "slo", "fallback"]
Direction = Literal["regression", "improvement", "both"]

_DURATION = r"^[0-9]+(\.[0-9]+)?(s|m|h|d)$"
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}

DEFAULTS: Final[Mapping[str, Any]] = {
    "alpha": 0.05,
    "min_n": 30,
    "min_effect": 0.02,
    "tuned_effect": 0.05,
    "direction": "regression",
    "window": "5m",
    "for": "10m",
    "keep_firing_for": "30m",
    "min_volume": 100,
    "severity": "warning",
    "min_completeness": 0.9,
}
"""What every rule inherits unless the file's ``defaults`` or the rule say otherwise."""

TYPE_DEFAULTS: Final[Mapping[str, Mapping[str, Any]]] = {
    # the sequential test already bounds false alarms over time; persistence would only delay it
    "drift": {"for": "0s"},
    # a per-window test level: the file's `alpha` is the drift family's; `window` in defaults is the cell grid
    "spike": {"alpha": 0.001, "window": "15m", "baseline": "24h", "factor": 3.0, "min_delta": 0.02},
    "fallback": {"window": "1h"},
}
"""Knobs a rule of a type gets unless the rule itself sets them (they override the file's ``defaults``)."""

BURN_WINDOWS: Final = (("1h", "5m", 14.4), ("6h", "30m", 6.0))
"""Multi-window burn-rate alerting of the SRE workbook (ch. 5): long window, short window, burn-rate factor."""

_KNOBS: Final[dict[str, Any]] = {
    "alpha": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "min_n": {"type": "integer", "minimum": 2},
    "min_effect": {"type": "number", "minimum": 0},
    "tuned_effect": {"type": "number", "exclusiveMinimum": 0},
    "direction": {"enum": ["regression", "improvement", "both"]},
    "window": {"type": "string", "pattern": _DURATION},
    "for": {"type": "string", "pattern": _DURATION},
    "keep_firing_for": {"type": "string", "pattern": _DURATION},
    "min_volume": {"type": "integer", "minimum": 1},
    "severity": {"enum": ["info", "warning", "critical"]},
    "baseline": {"type": "string", "pattern": _DURATION},
    "factor": {"type": "number", "exclusiveMinimum": 0},
    "min_delta": {"type": "number", "minimum": 0},
    "objective": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "threshold_ms": {"type": "number", "exclusiveMinimum": 0},
    "max_rate": {"type": "number", "minimum": 0, "maximum": 1},
    # a feedback:<kind> condition's windows count as incomplete below this expected share of feedback in
    "min_completeness": {"type": "number", "minimum": 0, "maximum": 1},
}
_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}
# windows and the latency threshold shape the rule's cells, shared by every adapter: not overridable
_PER_RULE_ONLY: Final = ("window", "baseline", "threshold_ms")
_OVERRIDE = {
    "type": "object",
    "properties": {
        "adapter": {"type": "string"},
        "cohort": {"type": "string"},
        **{k: v for k, v in _KNOBS.items() if k not in _PER_RULE_ONLY},
    },
    "additionalProperties": False,
    "anyOf": [{"required": ["adapter"]}, {"required": ["cohort"]}],
}
_COMMON = {
    "name": {"type": "string", "pattern": r"^[A-Za-z0-9_.:-]+$"},
    "type": {"enum": ["drift", "spike", "slo", "fallback"]},
    "adapters": _NAMES,
    "cohorts": _NAMES,
    "overrides": {"type": "array", "items": _OVERRIDE},
    "description": {"type": "string"},
    **_KNOBS,
}


def _rule(kind: str, extra: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
        "then": {
            "properties": {**_COMMON, **extra},
            "required": ["name", "type", *required],
            "additionalProperties": False,
        },
    }


_URL_CHOICE: Final = [{"required": ["url"]}, {"required": ["url_env"]}]
_SINK_URL = {
    "url": {"type": "string", "pattern": r"^https?://"},
    "url_env": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
    "timeout": {"type": "string", "pattern": _DURATION},
    "retries": {"type": "integer", "minimum": 0, "maximum": 10},
    "name": {"type": "string"},
}
SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "version": {"const": 1},
        "source": {
            "type": "object",
            "properties": {
                "url": {"type": "string", "pattern": r"^(clickhouses?|chdb)://"},
                "url_env": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
                "state_dir": {"type": "string", "minLength": 1},
            },
            "oneOf": _URL_CHOICE,
            "required": ["state_dir"],
            "additionalProperties": False,
        },
        "defaults": {"type": "object", "properties": _KNOBS, "additionalProperties": False},
        "sinks": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": ["stdout", "file", "webhook", "slack", "alertmanager", "pagerduty"]}},
                "allOf": [
                    {
                        "if": {"properties": {"type": {"const": "stdout"}}},
                        "then": {"properties": {"type": {}, "name": {"type": "string"}}, "additionalProperties": False},
                    },
                    {
                        "if": {"properties": {"type": {"const": "file"}}},
                        "then": {
                            "properties": {"type": {}, "name": {"type": "string"}, "path": {"type": "string"}},
                            "required": ["path"],
                            "additionalProperties": False,
                        },
                    },
                    {
                        "if": {"properties": {"type": {"enum": ["webhook", "slack", "alertmanager"]}}},
                        "then": {
                            "properties": {"type": {}, **_SINK_URL},
                            "oneOf": _URL_CHOICE,
                            "additionalProperties": False,
                        },
                    },
                    {
                        "if": {"properties": {"type": {"const": "pagerduty"}}},
                        "then": {
                            "properties": {
                                "type": {},
                                **_SINK_URL,
                                "routing_key_env": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
                            },
                            "required": ["routing_key_env"],
                            "additionalProperties": False,
                        },
                    },
                ],
            },
        },
        "rules": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "type"],
                "properties": {"type": {"enum": ["drift", "spike", "slo", "fallback"]}},
                "allOf": [
                    _rule("drift", {"metrics": _NAMES}, ["metrics"]),
                    _rule("spike", {"metric": {"type": "string"}}, ["metric"]),
                    _rule("slo", {"bad": {"enum": ["latency", "errors"]}}, ["bad", "objective"]),
                    {
                        "if": {"properties": {"type": {"const": "slo"}, "bad": {"const": "latency"}}},
                        "then": {"required": ["threshold_ms"]},
                    },
                    _rule("fallback", {}, ["max_rate"]),
                ],
            },
        },
    },
    "required": ["rules"],
    "additionalProperties": False,
}
"""The JSON Schema every rules file is validated against (draft 2020-12)."""


class RulesError(ConfigurationError):
    """A rules file that cannot be used; the message names the file, the key and its line."""


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``90s``, ``5m``, ``1.5h`` or ``7d``.

    Examples
    --------
    >>> parse_duration("5m"), parse_duration("1.5h")
    (300.0, 5400.0)
    """
    match = re.fullmatch(_DURATION, text)
    if not match:
        msg = f"a duration is a number and a unit (s, m, h, d), e.g. 5m or 24h; got {text!r}"
        raise ValueError(msg)
    return float(text[:-1]) * _UNITS[text[-1]]


@dataclass(frozen=True)
class Sink:
    """Where notifications go; a URL is resolved from the environment at send time when given as ``url_env``."""

    type: str
    name: str
    path: str | None = None
    url: str | None = None
    url_env: str | None = None
    routing_key_env: str | None = None
    timeout: float = 5.0
    retries: int = 3


@dataclass(frozen=True)
class SourceSpec:
    """The rules file's ``source:``: where a check reads spans when the command names no ``--store`` or
    ``--source`` (ClickHouse), and where it keeps the alert state. ``url_env`` names an environment variable
    holding the URL, so that a password stays out of the file; the URL is read at check time."""

    url: str | None = None
    url_env: str | None = None
    state_dir: str = ""

    def __repr__(self) -> str:
        shown = f"url_env={self.url_env!r}" if self.url_env else "url=<set>"
        return f"SourceSpec({shown}, state_dir={self.state_dir!r})"

    def resolve(self) -> str:
        """The URL (from the environment for ``url_env``); the variable's value never appears in an error."""
        if self.url is not None:
            return self.url
        value = os.environ.get(self.url_env or "")
        if not value:
            msg = f"the rules' source: url_env names {self.url_env}, which is not set in the environment"
            raise RulesError(msg)
        return value


@dataclass(frozen=True)
class Rule:
    """One rule as written, with its inherited knobs and overrides; :meth:`knobs` gives the effective values."""

    name: str
    type: RuleType
    settings: Mapping[str, Any]
    overrides: tuple[Mapping[str, Any], ...] = ()
    metrics: tuple[str, ...] = ()
    adapters: tuple[str, ...] | None = None
    cohorts: tuple[str, ...] | None = None
    bad: str | None = None
    line: int = 0

    def knobs(self, *, adapter: str | None = None, cohort: str | None = None) -> dict[str, Any]:
        """The effective knobs for an adapter and cohort: rule, then cohort, adapter, adapter+cohort overrides."""
        out = dict(self.settings)

        def specificity(o: Mapping[str, Any]) -> int:
            return ("adapter" in o) * 2 + ("cohort" in o)

        for override in sorted(self.overrides, key=specificity):
            if override.get("adapter", adapter) == adapter and override.get("cohort", cohort) == cohort:
                out.update({k: v for k, v in override.items() if k not in ("adapter", "cohort")})
        return out


@dataclass(frozen=True)
class RuleSet:
    """A validated rules file."""

    rules: tuple[Rule, ...]
    sinks: tuple[Sink, ...]
    defaults: Mapping[str, Any]
    source: str = "<rules>"
    lines: Mapping[tuple[Any, ...], int] = field(default_factory=dict)
    spans_source: SourceSpec | None = None
    """The file's ``source:`` section, if any."""

    @property
    def window(self) -> float:
        """Seconds per cell window: the grid every rule's windows are counted on."""
        return parse_duration(str(self.defaults["window"]))

    def line_of(self, *path: Any) -> int:
        """The line (1-based) of a key path in the file, or of its nearest parent."""
        keys = tuple(path)
        while keys and keys not in self.lines:
            keys = keys[:-1]
        return self.lines.get(keys, 1)

    def error(self, path: Sequence[Any], message: str) -> RulesError:
        """A :class:`RulesError` for a key path, naming the key and its line."""
        where = "/".join(str(p) for p in path) or "(top level)"
        return RulesError(f"{self.source}:{self.line_of(*path)}: {where}: {message}")


def _lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            _lines(value, child, out)
            out[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*path, index), out)


def _unexpected(error: jsonschema.ValidationError) -> list[str]:
    allowed = set(error.schema.get("properties", {}))
    return sorted(str(k) for k in error.instance if k not in allowed)


def _message(error: jsonschema.ValidationError) -> str:
    if list(error.absolute_path) == ["source", "url"]:  # the value may hold a password: never echoed
        return "a source url starts with clickhouse://, clickhouses:// or chdb:// (the value is not shown)"
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"unknown key {_unexpected(error)[0]!r} (keys allowed here: {allowed})"
    if error.validator == "oneOf" and error.schema.get("oneOf") == _URL_CHOICE:
        return "give exactly one of `url` or `url_env` (the name of an environment variable holding the URL)"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required here")
    if error.validator == "pattern" and "s|m|h|d" in str(error.validator_value):
        return f"{error.instance!r} is not a duration (a number and a unit: s, m, h or d, e.g. 5m)"
    return error.message


def _deepest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    # if/then and anyOf wrap the useful error: report the one deepest in the file
    while error.context and error.schema.get("oneOf") != _URL_CHOICE:
        error = max(error.context, key=lambda e: len(e.absolute_path))
    return error


def load_rules(source: str | os.PathLike[str] | Mapping[str, Any]) -> RuleSet:
    """Read and validate a rules file (or an already parsed mapping).

    Raises
    ------
    RulesError
        For unreadable YAML, a schema violation, or a duplicate rule name; the message gives
        ``FILE:LINE: key/path: what is wrong``.
    """
    lines: dict[tuple[Any, ...], int] = {}
    if isinstance(source, Mapping):
        data: Any = dict(source)
        label = "<rules>"
    else:
        label = str(source)
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"--rules: cannot read {label}: {exc.strerror or exc}"
            raise RulesError(msg) from exc
        try:
            node = yaml.compose(text)
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            msg = f"{label}:{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}"
            raise RulesError(msg) from exc
        if node is not None:
            _lines(node, (), lines)
    empty = RuleSet((), (), {}, label, lines)
    if not isinstance(data, Mapping):
        raise empty.error((), "a rules file is a mapping with a `rules:` list (see docs/alerts.example.yaml)")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: (empty.line_of(*e.absolute_path), str(e.path)))
    if errors:
        first = _deepest(errors[0])
        path = list(first.absolute_path)
        if first.validator == "additionalProperties":
            path.append(_unexpected(first)[0])
        raise empty.error(path, _message(first))
    defaults = {**DEFAULTS, **data.get("defaults", {})}
    rules = []
    seen: set[str] = set()
    for index, raw in enumerate(data["rules"]):
        if raw["name"] in seen:
            raise empty.error(["rules", index, "name"], f"rule name {raw['name']!r} is used twice; names must differ")
        seen.add(raw["name"])
        own = {k: v for k, v in raw.items() if k in _KNOBS}
        settings = {**defaults, **TYPE_DEFAULTS.get(raw["type"], {}), **own}
        metrics = tuple(raw.get("metrics") or ([raw["metric"]] if "metric" in raw else ()))
        rules.append(
            Rule(
                name=raw["name"],
                type=raw["type"],
                settings=settings,
                overrides=tuple(raw.get("overrides", ())),
                metrics=metrics,
                adapters=tuple(raw["adapters"]) if "adapters" in raw else None,
                cohorts=tuple(raw["cohorts"]) if "cohorts" in raw else None,
                bad=raw.get("bad"),
                line=lines.get(("rules", index), 0),
            )
        )
    sinks = []
    for index, raw in enumerate(data.get("sinks", [{"type": "stdout"}])):
        timeout = parse_duration(raw.get("timeout", "5s"))
        sinks.append(
            Sink(
                type=raw["type"],
                name=raw.get("name", f"{raw['type']}-{index}"),
                path=raw.get("path"),
                url=raw.get("url"),
                url_env=raw.get("url_env"),
                routing_key_env=raw.get("routing_key_env"),
                timeout=timeout,
                retries=int(raw.get("retries", 3)),
            )
        )
    spans = data.get("source")
    spec = SourceSpec(spans.get("url"), spans.get("url_env"), spans["state_dir"]) if spans else None
    ruleset = RuleSet(tuple(rules), tuple(sinks), defaults, label, lines, spec)
    _check_windows(ruleset)
    return ruleset


def _check_windows(ruleset: RuleSet) -> None:
    """Every rolling window must be a whole number of cell windows (they are summed from them)."""
    grid = ruleset.window
    for index, rule in enumerate(ruleset.rules):
        for key in ("window", "baseline", "for", "keep_firing_for"):
            if key == "window" and rule.type == "drift":
                continue
            value = rule.settings.get(key)
            if value is None or key in ("for", "keep_firing_for"):
                continue
            seconds = parse_duration(str(value))
            if seconds % grid or seconds < grid:
                path = ["rules", index, key] if (("rules", index, key) in ruleset.lines) else ["defaults", key]
                raise ruleset.error(
                    path, f"{value} is not a whole number of the cell window {ruleset.defaults['window']}"
                )
        if rule.type == "slo":
            for long, short, _ in BURN_WINDOWS:
                for value in (long, short):
                    if parse_duration(value) % grid:
                        raise ruleset.error(
                            ["defaults", "window"],
                            f"the SLO burn-rate windows ({long}/{short}) need a cell window dividing {value}",
                        )
