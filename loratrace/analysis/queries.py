"""The incident queries shipped in ``loratrace/queries/*.sql``: parse their headers, list them, run them bound.

Each file holds one query and opens with a header (aiosql's convention)::

    -- name: adapter_for_trace
    -- answers: Which adapter served trace X: ...
    -- params: trace_id (text), since (timestamp, optional), limit (integer, default 50)

Parameters are DuckDB named parameters (``$trace_id``), always bound by the engine, never formatted into the
SQL. Types: ``text``, ``integer``, ``number``, ``boolean`` and ``timestamp`` (a duration before now such as
``24h``, or an ISO time; see :mod:`loratrace.analysis.timespec`). An ``optional`` parameter left out is NULL,
which the query reads as "no filter"; a ``default`` fills one left out.

This module imports neither Polars nor the instrumentation: ``loratrace query`` answers in a fraction of a
second on a large store because its path is DuckDB alone.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Final, Literal, get_args

from loratrace.analysis.timespec import parse_time, to_store_time
from loratrace.errors import ConfigurationError

ParameterType = Literal["text", "integer", "number", "boolean", "timestamp"]

_HEADER: Final = re.compile(r"^--\s*(name|answers|params):\s*(.*)$")
# the type words a header may use: this module's names and the SQL types other query files write
_TYPE_WORDS: Final[dict[str, ParameterType]] = {
    "text": "text",
    "varchar": "text",
    "string": "text",
    "integer": "integer",
    "int": "integer",
    "bigint": "integer",
    "number": "number",
    "double": "number",
    "float": "number",
    "boolean": "boolean",
    "bool": "boolean",
    "timestamp": "timestamp",
}
_PARAMETER: Final = re.compile(r"\s*(\w+)\s*\(([^)]*)\)\s*(?:,|$)")
_PLACEHOLDER: Final = re.compile(r"\$(\w+)")
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class QueryParameter:
    """One named parameter of an incident query."""

    name: str
    type: ParameterType
    optional: bool = False
    default: str | None = None

    @property
    def required(self) -> bool:
        return not self.optional and self.default is None

    def describe(self) -> str:
        """``name (type)`` plus ``optional`` or ``default X``: how ``--list`` shows it."""
        extra = ", optional" if self.optional else f", default {self.default}" if self.default is not None else ""
        return f"{self.name} ({self.type}{extra})"

    def convert(self, value: Any, *, now: datetime | None = None) -> Any:
        """``value`` (a string from the command line, or a Python value) as what DuckDB binds."""
        if value is None:
            return None
        if not isinstance(value, str):
            return to_store_time(value) if isinstance(value, datetime) else value
        text = value.strip()
        try:
            if self.type == "integer":
                return int(text)
            if self.type == "number":
                return float(text)
            if self.type == "boolean":
                if text.lower() in _TRUE | _FALSE:
                    return text.lower() in _TRUE
                msg = "use true or false"
                raise ValueError(msg)
            if self.type == "timestamp":
                return to_store_time(parse_time(text, now=now))
        except ValueError as exc:
            detail = str(exc) if self.type == "timestamp" else f"{_TYPE_HELP[self.type]}, got {value!r}"
            msg = (
                f"parameter {self.name}: {detail}"
                if self.type == "timestamp"
                else f"parameter {self.name} takes {detail}"
            )
            raise ConfigurationError(msg) from None
        return value


_TYPE_HELP: Final[dict[str, str]] = {
    "text": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
}


@dataclass(frozen=True)
class IncidentQuery:
    """One ``.sql`` file: its name, what it answers, its parameters and the statement."""

    name: str
    answers: str
    parameters: tuple[QueryParameter, ...]
    sql: str

    def bind(self, values: Mapping[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
        """Every declared parameter with a value (defaults and NULLs filled in), checked and converted.

        Raises
        ------
        ConfigurationError
            For a parameter the query does not take (the nearest names suggested) or a required one missing.
        """
        declared = {p.name: p for p in self.parameters}
        for key in values:
            if key not in declared:
                msg = (
                    f"query {self.name} has no parameter {key!r}{_suggest(key, declared)}; it takes {self.signature()}"
                )
                raise ConfigurationError(msg)
        missing = [p.name for p in self.parameters if p.required and values.get(p.name) is None]
        if missing:
            flags = " ".join(f"--param {name}=..." for name in missing)
            msg = f"query {self.name} needs {', '.join(missing)}: pass {flags} (it takes {self.signature()})"
            raise ConfigurationError(msg)
        bound = {}
        for parameter in self.parameters:
            value = values.get(parameter.name)
            if value is None:
                value = parameter.default
            bound[parameter.name] = parameter.convert(value, now=now)
        return bound

    def signature(self) -> str:
        return ", ".join(p.describe() for p in self.parameters) or "no parameters"


def _suggest(name: str, candidates: Sequence[str] | Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def parse_query(text: str, *, source: str) -> IncidentQuery:
    """An incident query from the text of its file; ``source`` names the file in errors."""
    header: dict[str, list[str]] = {"name": [], "answers": [], "params": []}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("--"):
            break
        match = _HEADER.match(stripped)
        if match:  # one line per field; other comment lines are the query's own notes
            header[match.group(1)].append(match.group(2).strip())
    name, answers = " ".join(header["name"]).strip(), " ".join(header["answers"]).strip()
    if not name or not answers:
        msg = f"{source}: an incident query opens with '-- name: <name>' and '-- answers: <what it answers>'"
        raise ConfigurationError(msg)
    parameters = _parse_parameters(", ".join(p for p in header["params"] if p), source=source)
    used = set(_PLACEHOLDER.findall(_without_comments(text)))
    declared = {p.name for p in parameters}
    if used != declared:
        msg = (
            f"{source}: its '-- params:' line declares {sorted(declared)} but the SQL uses {sorted(used)}; "
            "declare exactly the $names the statement binds"
        )
        raise ConfigurationError(msg)
    return IncidentQuery(name=name, answers=answers, parameters=parameters, sql=text)


def _without_comments(text: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


def _parse_parameters(text: str, *, source: str) -> tuple[QueryParameter, ...]:
    parameters = []
    position = 0
    text = text.strip().strip(",")
    while position < len(text):
        match = _PARAMETER.match(text, position)
        if match is None:
            msg = f"{source}: cannot read parameters {text[position:]!r}; write 'name (type[, optional | default X])'"
            raise ConfigurationError(msg)
        position = match.end()
        name, spec = match.group(1), match.group(2).strip()
        word = re.match(r"[A-Za-z]+", spec)
        kind = _TYPE_WORDS.get(word.group(0).lower()) if word else None
        if word is None or kind is None:
            msg = f"{source}: parameter {name} has type {spec!r}; use one of {', '.join(get_args(ParameterType))}"
            raise ConfigurationError(msg)
        rest = spec[word.end() :].strip()
        optional, default = False, None
        if rest.startswith(","):  # this module's options: "type, optional" or "type, default X"
            for option in (part.strip() for part in rest[1:].split(",")):
                if option == "optional":
                    optional = True
                elif option.startswith("default "):
                    default = option.removeprefix("default ").strip()
                else:
                    msg = f"{source}: parameter {name} has option {option!r}; use 'optional' or 'default X'"
                    raise ConfigurationError(msg)
        else:  # a SQL type and a description, as the hygiene queries write them: "TIMESTAMP UTC or NULL for all"
            optional = re.search(r"\bor null\b", rest, re.IGNORECASE) is not None
        parameters.append(QueryParameter(name=name, type=kind, optional=optional, default=default))
    return tuple(parameters)


@cache
def available_queries() -> dict[str, IncidentQuery]:
    """Every shipped incident query by name, in name order."""
    folder = resources.files("loratrace") / "queries"
    found = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            incident = parse_query(entry.read_text(encoding="utf-8"), source=f"loratrace/queries/{entry.name}")
            if incident.name != entry.name.removesuffix(".sql"):
                msg = f"loratrace/queries/{entry.name} is named {incident.name!r}; a query's name is its file name"
                raise ConfigurationError(msg)
            found[incident.name] = incident
    return found


def get_query(name: str) -> IncidentQuery:
    """The incident query called ``name``; an unknown name suggests the nearest ones."""
    queries = available_queries()
    if name not in queries:
        hint = _suggest(name, queries) or f"; `loratrace query --list` shows all {len(queries)}"
        msg = f"there is no incident query {name!r}{hint}"
        raise ConfigurationError(msg)
    return queries[name]


def fetch(
    store: str | os.PathLike[str], name: str, params: Mapping[str, Any] | None = None, *, now: datetime | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run the incident query ``name`` on ``store`` with bound parameters: column names and rows."""
    from loratrace.store.rows import fetch_rows

    incident = get_query(name)
    bound = incident.bind(params or {}, now=now)
    return fetch_rows(store, incident.sql, bound)


# parameters whose values name something in the store: an empty answer for an unknown one is most likely a typo
_NAMED_VALUES: Final = {"adapter": "adapter_name", "cohort": "cohort", "route": "route_name"}


def check_known_values(store: str | os.PathLike[str], name: str, params: Mapping[str, Any]) -> None:
    """Raise when a query came back empty because an adapter, cohort or route it names is not in the store.

    The nearest names the store knows are suggested. Called only after an empty result, so a lookup that
    finds rows never pays for the extra scan.
    """
    from loratrace.store.rows import fetch_rows

    incident = get_query(name)
    for parameter in incident.parameters:
        column = _NAMED_VALUES.get(parameter.name)
        value = params.get(parameter.name)
        if column is None or value is None:
            continue
        # the column name comes from the fixed table above, never from the caller
        _, rows = fetch_rows(store, f"SELECT DISTINCT {column} FROM generations WHERE {column} IS NOT NULL")
        known = sorted(str(row[0]) for row in rows)
        if str(value) not in known:
            hint = _suggest(str(value), known) or f"; the store knows {', '.join(known[:20]) or 'none'}"
            msg = f"no {parameter.name} {value!r} in the store{hint}"
            raise ConfigurationError(msg)


def run_query(
    store: str | os.PathLike[str], name: str, params: Mapping[str, Any] | None = None, *, now: datetime | None = None
) -> Any:
    """:func:`fetch` as a Polars DataFrame.

    Examples
    --------
    >>> sorted(available_queries())[:2]
    ['adapter_for_trace', 'adapter_hourly']
    """
    from loratrace.store.readers import rows_to_frame

    names, rows = fetch(store, name, params, now=now)
    return rows_to_frame(names, rows)
