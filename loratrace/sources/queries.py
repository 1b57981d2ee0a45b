"""DuckDB statements over the store's views, translated to ClickHouse: the incident queries shipped in
``loratrace/queries/*.sql`` and the analyses' own statements (latency, inventory, the ``feedback`` view).

They are written for DuckDB, with named parameters (``$adapter``). On ClickHouse, sqlglot translates the dialect
(:func:`_clickhouse_tree` adds what it does not map the way ClickHouse needs); the views become CTEs over
``otel_traces`` (``loratrace.sources.clickhouse_sql``) and each parameter becomes a ClickHouse bound parameter
``{name:Type}``, typed from the query's declared types (or from its value), so a value is never formatted into
the SQL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from loratrace.errors import QueryError

_PREFIX: Final = "__loratrace_"
_MAP_COLUMNS: Final = ("attributes", "resource_attributes")
_TYPES: Final = {
    "text": "String",
    "integer": "Int64",
    "number": "Float64",
    "boolean": "Bool",
    "timestamp": "DateTime64(6, 'UTC')",
    "text[]": "Array(String)",
}
"""ClickHouse types of the parameter types (``loratrace.analysis.queries.ParameterType``, plus a list of text)."""


def query_names() -> list[str]:
    """The names of the shipped incident queries."""
    from loratrace.analysis.queries import available_queries

    return list(available_queries())


def load_query(name: str) -> str:
    """The SQL text of the incident query ``name``."""
    from loratrace.analysis.queries import get_query
    from loratrace.errors import ConfigurationError

    try:
        return get_query(name).sql
    except ConfigurationError as exc:
        raise QueryError(str(exc)) from None


def declared_parameters(sql: str) -> dict[str, tuple[str, bool, str | None]]:
    """The ``-- params:`` header of an incident query: name -> (type, optional, default)."""
    from loratrace.analysis.queries import parse_query

    return {p.name: (p.type, p.optional, p.default) for p in parse_query(sql, source="<query>").parameters}


def bound_parameters(name: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, str]]:
    """An incident query's SQL, its parameters bound as ``loratrace query`` binds them (defaults filled in,
    optional ones NULL, text converted), and each parameter's type.

    Raises
    ------
    loratrace.errors.ConfigurationError
        An unknown query or parameter, a required one missing, or a value of the wrong type.
    """
    from loratrace.analysis.queries import get_query

    incident = get_query(name)
    return incident.sql, incident.bind(params), {p.name: p.type for p in incident.parameters}


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, datetime):
        return "timestamp"
    if isinstance(value, (list, tuple)):
        return "text[]"
    return "text"


def _bound(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _timestamp_type(kind: Any) -> bool:
    from sqlglot import exp

    return isinstance(kind, exp.DataType) and kind.this in (
        exp.DataType.Type.TIMESTAMP,
        exp.DataType.Type.TIMESTAMPNTZ,
        exp.DataType.Type.DATETIME,
    )


def _clickhouse_tree(tree: Any) -> Any:
    """What sqlglot does not translate the way ClickHouse needs for these queries."""
    import sqlglot
    from sqlglot import exp

    for cast in list(tree.find_all(exp.Cast)):
        if not _timestamp_type(cast.args.get("to")):
            continue
        value = cast.this
        if isinstance(value, exp.Literal) and value.is_string and value.this in ("infinity", "-infinity"):
            # DuckDB's infinite timestamps: the ends of ClickHouse's DateTime64 range
            edge = "2299-12-31 23:59:59" if value.this == "infinity" else "1900-01-01 00:00:00"
            cast.replace(sqlglot.parse_one(f"toDateTime64('{edge}', 6, 'UTC')", read="clickhouse"))
        else:  # microseconds and UTC, as the store's timestamps (sqlglot's default is DateTime, in seconds)
            cast.set("to", exp.DataType.build("Nullable(DateTime64(6, 'UTC'))", dialect="clickhouse"))
    for node in list(tree.find_all(exp.PercentileCont)):
        # DuckDB's quantile_cont interpolates linearly between order statistics: quantileExactInclusive
        column = node.this.sql(dialect="clickhouse")
        fraction = node.expression.sql(dialect="clickhouse")
        node.replace(sqlglot.parse_one(f"quantileExactInclusive({fraction})({column})", read="clickhouse"))
    for node in list(tree.find_all(exp.LogicalOr, exp.LogicalAnd)):
        # bool_or / bool_and: ClickHouse has no LOGICAL_OR; the max / min of the 0/1 value is the same
        value = node.this.sql(dialect="clickhouse")
        function = "max" if isinstance(node, exp.LogicalOr) else "min"
        node.replace(sqlglot.parse_one(f"toBool({function}(toUInt8({value})))", read="clickhouse"))
    for node in list(tree.find_all(exp.Bracket)):
        # a map lookup is NULL in DuckDB when the key is missing, '' in ClickHouse
        target, keys = node.this, node.expressions
        if isinstance(target, exp.Column) and target.name in _MAP_COLUMNS and len(keys) == 1:
            column, key = target.sql(dialect="clickhouse"), keys[0].sql(dialect="clickhouse")
            lookup = f"if(mapContains({column}, {key}), {column}[{key}], NULL)"
            node.replace(sqlglot.parse_one(lookup, read="clickhouse"))
    for node in list(tree.find_all(exp.TryCast)):
        # TRY_CAST is NULL for text that is no number; ClickHouse's CAST raises
        kind = exp.Literal.string(node.to.sql(dialect="clickhouse"))
        node.replace(exp.Anonymous(this="accurateCastOrNull", expressions=[node.this, kind]))
    for node in list(tree.find_all(exp.ArraySort)):
        descending = node.args.get("asc") is not None and not node.args["asc"].this
        function = "arrayReverseSort" if descending else "arraySort"
        node.replace(exp.Anonymous(this=function, expressions=[node.this]))
    for node in list(tree.find_all(exp.Length)):
        if isinstance(node.this, (exp.ArrayFilter, exp.ArrayAgg, exp.Array)):  # len() of a list: its elements
            node.replace(exp.Anonymous(this="length", expressions=[node.this]))
    for node in list(tree.find_all(exp.TimeToUnix)):
        # DuckDB's epoch(): seconds since the epoch, fractions kept
        value = node.this.sql(dialect="clickhouse")
        node.replace(sqlglot.parse_one(f"toUnixTimestamp64Micro({value}) / 1e6", read="clickhouse"))
    for node in list(tree.find_all(exp.Anonymous)):
        if node.name.lower() == "to_seconds":  # DuckDB's interval of N seconds
            node.replace(exp.Anonymous(this="toIntervalSecond", expressions=node.expressions))
    for select in list(tree.find_all(exp.Select)):
        # ClickHouse names an unaliased `t.x` "t.x" (SQL names it x), which an outer query then cannot find
        for column in select.expressions:
            if isinstance(column, exp.Column) and column.table and not isinstance(column.this, exp.Star):
                column.replace(exp.alias_(column.copy(), column.name))
    for node in list(tree.find_all(exp.GroupConcat)):
        node.replace(_string_agg(node))
    for node in list(tree.find_all(exp.ArrayAgg)):
        if isinstance(node.this, exp.Order):
            node.replace(_ordered_list(node))
    return tree


def _ordered_list(node: Any) -> Any:
    """``list([DISTINCT] x ORDER BY k1, k2 …)`` (ascending keys) as ClickHouse arrays, sorted by the keys."""
    import sqlglot
    from sqlglot import exp

    order = node.this
    if any(o.args.get("desc") for o in order.expressions):
        msg = "list(... ORDER BY ... DESC) has no ClickHouse translation here"
        raise QueryError(msg)
    inner = order.this
    distinct = isinstance(inner, exp.Distinct)
    value = inner.expressions[0] if distinct else inner
    keys = [o.this.sql(dialect="clickhouse") for o in order.expressions]
    text = value.sql(dialect="clickhouse")
    if keys == [text]:
        array = f"arraySort({'groupUniqArray' if distinct else 'groupArray'}({text}))"
    else:
        rows = f"{'groupUniqArray' if distinct else 'groupArray'}(tuple({text}, {', '.join(keys)}))"
        sort_key = "tuple(" + ", ".join(f"t.{i + 2}" for i in range(len(keys))) + ")"
        array = f"arrayMap(t -> t.1, arraySort(t -> {sort_key}, {rows}))"
    return sqlglot.parse_one(array, read="clickhouse")


def _string_agg(node: Any) -> Any:
    """``string_agg([DISTINCT] x, sep [ORDER BY x])`` as ClickHouse arrays (sorted when ordered by ``x`` itself)."""
    import sqlglot
    from sqlglot import exp

    inner, ordered = node.this, False
    if isinstance(inner, exp.Order):
        keys = [o.this for o in inner.expressions]
        inner = inner.this
        ordered = True
    distinct = isinstance(inner, exp.Distinct)
    value = inner.expressions[0] if distinct else inner
    if ordered and [k.sql() for k in keys] != [value.sql()]:
        msg = "string_agg ordered by another expression than its value has no ClickHouse translation here"
        raise QueryError(msg)
    separator = node.args.get("separator")
    array = f"{'groupUniqArray' if distinct else 'groupArray'}({value.sql(dialect='clickhouse')})"
    if ordered:
        array = f"arraySort({array})"
    sep = separator.sql(dialect="clickhouse") if separator is not None else "','"
    return sqlglot.parse_one(f"arrayStringConcat({array}, {sep})", read="clickhouse")


def to_clickhouse(
    sql: str,
    relations: Mapping[str, str],
    params: Mapping[str, Any],
    *,
    kinds: Mapping[str, str] | None = None,
    settings: bool = True,
) -> tuple[str, dict[str, Any]]:
    """ClickHouse SQL for a DuckDB query over the store's views, and its bound parameters.

    Parameters
    ----------
    sql
        The query, DuckDB dialect, ``$name`` parameters.
    relations
        View name -> the ClickHouse ``SELECT`` that stands for it.
    params
        The parameter values, already bound (:func:`bound_parameters` for an incident query).
    kinds
        Parameter types (``text``, ``integer``, ``number``, ``boolean``, ``timestamp``, ``text[]``); a parameter
        not named here takes its value's type. A NULL value makes its type Nullable.
    settings
        End with the settings that give standard SQL's join semantics (off for a query nested in another).
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
        value = params[name]
        kind = _TYPES[(kinds or {}).get(name) or _kind_of(value)]
        if value is None and not kind.startswith("Array"):
            kind = f"Nullable({kind})"
        placeholder.replace(exp.Placeholder(this=name, kind=exp.DataType.build(kind, dialect="clickhouse")))
    used = []
    for table in tree.find_all(exp.Table):
        if not table.args.get("db") and table.name in relations:
            if table.name not in used:
                used.append(table.name)
            alias = table.alias or table.name
            table.set("this", exp.to_identifier(f"{_PREFIX}{table.name}"))
            table.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    # standard SQL's LEFT JOIN: NULL for a row without a match (ClickHouse's default is the type's default value)
    text = _clickhouse_tree(tree).sql(dialect="clickhouse") + (" SETTINGS join_use_nulls = 1" if settings else "")
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
    match = re.match(r"^((?:\s*/\*.*?\*/)+\s*)", text, flags=re.S)
    if match:
        return match.group(1), text[match.end() :]
    return "", text
