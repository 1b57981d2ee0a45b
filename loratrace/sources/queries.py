"""The incident queries shipped in ``loratrace/queries/*.sql``: loading them, and translating them to ClickHouse.

The files are written for DuckDB over the store's views, with named parameters (``$adapter``). On ClickHouse,
sqlglot translates the dialect; the views become CTEs over ``otel_traces`` (``loratrace.sources.clickhouse_sql``)
and each parameter becomes a ClickHouse bound parameter ``{name:Type}``, typed from its Python value, so a
value is never formatted into the SQL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from loratrace.errors import QueryError

QUERIES: Final = Path(__file__).resolve().parents[1] / "queries"
_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_PREFIX: Final = "__loratrace_"


def query_names() -> list[str]:
    """The names of the shipped incident queries."""
    return sorted(p.stem for p in QUERIES.glob("*.sql")) if QUERIES.is_dir() else []


def load_query(name: str) -> str:
    """The SQL text of the incident query ``name``."""
    names = query_names()
    if not _NAME.match(name) or name not in names:
        msg = f"no incident query {name!r}; the shipped queries are: {', '.join(names) or 'none'}"
        raise QueryError(msg)
    return (QUERIES / f"{name}.sql").read_text()


def _clickhouse_type(value: Any) -> str:
    if isinstance(value, bool):
        return "Bool"
    if isinstance(value, int):
        return "Int64"
    if isinstance(value, float):
        return "Float64"
    if isinstance(value, datetime):
        return "DateTime64(6, 'UTC')"
    if isinstance(value, (list, tuple)):
        inner = {_clickhouse_type(v) for v in value} or {"String"}
        return f"Array({inner.pop() if len(inner) == 1 else 'String'})"
    return "Nullable(String)" if value is None else "String"


def _bound(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def to_clickhouse(sql: str, relations: Mapping[str, str], params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """ClickHouse SQL for a DuckDB query over the store's views, and its bound parameters.

    Parameters
    ----------
    sql
        The query, DuckDB dialect, ``$name`` parameters.
    relations
        View name -> the ClickHouse ``SELECT`` that stands for it.
    params
        The parameter values (their Python types decide the ClickHouse types).
    """
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        msg = f"cannot parse the query for translation to ClickHouse: {exc}"
        raise QueryError(msg) from exc
    wanted: set[str] = set()
    for placeholder in list(tree.find_all(exp.Placeholder)):
        name = placeholder.name
        if name not in params:
            msg = f"the query needs --param {name}=VALUE"
            raise QueryError(msg)
        wanted.add(name)
        kind = exp.DataType.build(_clickhouse_type(params[name]), dialect="clickhouse")
        placeholder.replace(exp.Placeholder(this=name, kind=kind))
    used = []
    for table in tree.find_all(exp.Table):
        if not table.args.get("db") and table.name in relations:
            if table.name not in used:
                used.append(table.name)
            alias = table.alias or table.name
            table.set("this", exp.to_identifier(f"{_PREFIX}{table.name}"))
            table.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    text = tree.sql(dialect="clickhouse")
    if used:
        ctes = ", ".join(f"{_PREFIX}{name} AS ({relations[name]})" for name in used)
        head, body = _split_comment(text)
        if re.match(r"(?i)WITH\b", body):
            body = re.sub(r"(?i)^WITH\s+(RECURSIVE\s+)?", lambda m: f"WITH {m.group(1) or ''}{ctes}, ", body, count=1)
        else:
            body = f"WITH {ctes} {body}"
        text = f"{head}{body}"
    return text, {name: _bound(params[name]) for name in wanted}


def _split_comment(text: str) -> tuple[str, str]:
    match = re.match(r"^(\s*/\*.*?\*/\s*)", text, flags=re.S)
    if match:
        return match.group(1), text[match.end() :]
    return "", text
