"""The hygiene checks' SQL, read from the query files shipped in ``loratrace/queries/``.

Every finding names the file and the parameters it came from, so the evidence can be re-run as it is:
``loratrace sql`` with the file's text, or the plain ``duckdb`` shell inside the store with the same values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

_HEADER = re.compile(r"^--\s*(name|answers|params):\s*(.*)$")
_PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class QueryFile:
    """One ``queries/*.sql`` file: its header and its text."""

    file: str
    name: str
    answers: str
    params: str
    sql: str

    @property
    def parameter_names(self) -> frozenset[str]:
        return frozenset(_PARAMETER.findall(self.sql))

    def bind(self, values: dict[str, Any]) -> dict[str, Any]:
        """Exactly the parameters the query names (DuckDB refuses unused ones); a missing one is a bug here."""
        missing = self.parameter_names - values.keys()
        if missing:
            msg = f"{self.file} needs parameters {sorted(missing)}"
            raise KeyError(msg)
        return {name: values[name] for name in sorted(self.parameter_names)}


@cache
def load(file: str) -> QueryFile:
    """``load("hygiene_silent_swaps.sql")``: the file shipped in ``loratrace/queries/``."""
    text = resources.files("loratrace").joinpath("queries").joinpath(file).read_text(encoding="utf-8")
    header: dict[str, str] = {}
    for line in text.splitlines():
        match = _HEADER.match(line)
        if match:
            header[match.group(1)] = match.group(2).strip()
    return QueryFile(file, header.get("name", file), header.get("answers", ""), header.get("params", ""), text)
