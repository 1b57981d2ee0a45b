"""ClickHouse as a source of the analyses: a server through clickhouse-connect, or the embedded engine (chdb).

``clickhouse://user:password@host:8123/database?table=otel_traces&secure=false`` reaches a server over HTTP;
``chdb:///path/to/folder?table=otel_traces`` opens ClickHouse's engine in this process over a data folder
(``chdb://`` alone: a temporary one). Results come back as Arrow, so Polars takes them without copies. The
password never appears in an error, a log line or ``repr``.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import parse_qs, unquote, urlsplit

import polars as pl

from loratrace.errors import QueryError, StoreError
from loratrace.sources import clickhouse_sql as chsql

DEFAULT_TABLE: Final = "otel_traces"
SCHEMES: Final = ("clickhouse", "clickhouses", "chdb")


def _missing(package: str) -> StoreError:
    msg = f"a ClickHouse source needs {package}: pip install 'loratrace[clickhouse]'"
    return StoreError(msg)


@dataclass(frozen=True)
class ClickHouseTarget:
    """Where a ClickHouse source points, parsed from its URL (no password kept in ``repr``)."""

    scheme: str
    table: str
    path: str | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    database: str | None = None
    username: str | None = None
    password: str | None = None
    secure: bool = False

    def __repr__(self) -> str:
        return f"ClickHouseTarget({self.display()!r})"

    def display(self) -> str:
        """The URL without credentials, for messages."""
        if self.scheme == "chdb":
            return f"chdb://{self.path or ''}?table={self.table}"
        user = f"{self.username}@" if self.username else ""
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{user}{self.host}{port}/{self.database or ''}?table={self.table}"


def parse_url(url: str) -> ClickHouseTarget:
    """A ``clickhouse://`` / ``clickhouses://`` / ``chdb://`` URL as a :class:`ClickHouseTarget`."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        msg = f"a ClickHouse source URL starts with clickhouse://, clickhouses:// or chdb://, got {parts.scheme!r}"
        raise StoreError(msg)
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    table = query.get("table", DEFAULT_TABLE)
    try:
        chsql.check_table(table)
    except ValueError as exc:
        raise StoreError(str(exc)) from exc
    if parts.scheme == "chdb":
        path = unquote(parts.netloc + parts.path) or None
        return ClickHouseTarget(scheme="chdb", table=table, path=path)
    database = parts.path.strip("/") or None
    secure = parts.scheme == "clickhouses" or query.get("secure", "false").lower() in ("1", "true", "yes")
    return ClickHouseTarget(
        scheme=parts.scheme,
        table=table,
        host=parts.hostname or "127.0.0.1",
        port=parts.port,
        database=database,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        secure=secure,
    )


def _param_text(value: Any) -> Any:
    """chdb takes parameters as ClickHouse text: arrays in their literal form."""
    if isinstance(value, (list, tuple)):
        quoted = ", ".join(chsql.literal(str(v)) if isinstance(v, str) else str(v) for v in value)
        return f"[{quoted}]"
    return value


class _Chdb:
    """The embedded engine over one data folder; chdb runs one session per process, so sources on the same
    folder share it (closed with the last of them)."""

    _open: ClassVar[dict[str | None, tuple[Any, int]]] = {}

    def __init__(self, path: str | None) -> None:
        try:
            from chdb import session
        except ImportError as exc:
            raise _missing("chdb") from exc
        self._path = path
        shared, users = self._open.get(path, (None, 0))
        if shared is None:
            shared = session.Session(path) if path else session.Session()
        self._open[path] = (shared, users + 1)
        self._session = shared

    def frame(self, sql: str, params: Mapping[str, Any]) -> pl.DataFrame:
        import pyarrow as pa

        result = self._session.query(sql, "ArrowStream", params={k: _param_text(v) for k, v in params.items()} or None)
        data = result.bytes()
        if not data:
            return pl.DataFrame()
        return pl.from_arrow(pa.ipc.open_stream(io.BytesIO(data)).read_all())  # type: ignore[return-value]

    def command(self, sql: str, params: Mapping[str, Any]) -> None:
        self._session.query(sql, "CSV", params={k: _param_text(v) for k, v in params.items()} or None)

    def close(self) -> None:
        shared, users = self._open.get(self._path, (None, 0))
        if shared is not self._session:
            return
        if users <= 1:
            del self._open[self._path]
            shared.close()
        else:
            self._open[self._path] = (shared, users - 1)


class _Server:
    def __init__(self, target: ClickHouseTarget) -> None:
        try:
            import clickhouse_connect
        except ImportError as exc:
            raise _missing("clickhouse-connect") from exc
        self._client = clickhouse_connect.get_client(
            host=target.host,
            port=target.port or (8443 if target.secure else 8123),
            username=target.username or "default",
            password=target.password or "",
            database=target.database or "__default__",
            secure=target.secure,
        )

    def frame(self, sql: str, params: Mapping[str, Any]) -> pl.DataFrame:
        return pl.from_arrow(self._client.query_arrow(sql, parameters=dict(params)))  # type: ignore[return-value]

    def command(self, sql: str, params: Mapping[str, Any]) -> None:
        self._client.command(sql, parameters=dict(params))

    def close(self) -> None:
        self._client.close()


def _nanos(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


class ClickHouseSource:
    """Spans in ClickHouse's ``otel_traces`` (as the OpenTelemetry Collector exporter writes them).

    Parameters
    ----------
    url
        ``clickhouse://…`` for a server, ``chdb://PATH`` for the embedded engine (see the module docstring).
    """

    kind: Final = "clickhouse"

    def __init__(self, url: str) -> None:
        self.target = parse_url(url)
        self._engine: _Chdb | _Server = (
            _Chdb(self.target.path) if self.target.scheme == "chdb" else _Server(self.target)
        )
        self._materialized: frozenset[str] | None = None

    def __repr__(self) -> str:
        return f"ClickHouseSource({self.target.display()!r})"

    def close(self) -> None:
        self._engine.close()

    def __enter__(self) -> ClickHouseSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def table(self) -> str:
        return self.target.table

    def frame(self, sql: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Run ``sql`` (parameters bound by ClickHouse as ``{name:Type}``), the result as Polars."""
        try:
            return self._engine.frame(sql, params or {})
        except Exception as exc:  # both clients raise their own error types; one message for the user
            msg = f"ClickHouse ({self.target.display()}) failed: {exc}"
            raise QueryError(msg) from exc

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        try:
            self._engine.command(sql, params or {})
        except Exception as exc:
            msg = f"ClickHouse ({self.target.display()}) failed: {exc}"
            raise QueryError(msg) from exc

    def materialized(self) -> frozenset[str]:
        """The promoted columns the table holds itself (the ``otel_traces_loratrace.sql`` variant)."""
        if self._materialized is None:
            database, _, name = self.table.rpartition(".")
            where = "database = {db:String}" if database else "database = currentDatabase()"
            params: dict[str, Any] = {"table": name, **({"db": database} if database else {})}
            found = self.frame(f"SELECT name FROM system.columns WHERE {where} AND table = {{table:String}}", params)
            if found.is_empty():
                msg = (
                    f"ClickHouse ({self.target.display()}) has no table {self.table!r}; create it from "
                    "collector-config/clickhouse/ (or let the exporter create its own)"
                )
                raise StoreError(msg)
            names = set(found.get_column("name").to_list())
            self._materialized = frozenset(c for c in chsql.schema.PROMOTED_TYPES if c in names)
        return self._materialized

    def _window(self, since: dt.datetime | None, until: dt.datetime | None) -> tuple[dict[str, bool], dict[str, int]]:
        flags = {"since": since is not None, "until": until is not None}
        params = {}
        if since is not None:
            params["since_ns"] = _nanos(since)
        if until is not None:
            params["until_ns"] = _nanos(until)
        return flags, params

    def generations(self, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> pl.LazyFrame:
        """Every generation span with the local ``generations`` view's columns (fetched: mind the size)."""
        flags, params = self._window(since, until)
        sql = chsql.generations_sql(self.table, materialized=self.materialized(), **flags)
        return self.frame(sql, params).lazy()

    def evals(self, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> pl.LazyFrame:
        """Every evaluation event with the local ``evals`` view's columns."""
        flags, params = self._window(since, until)
        sql = chsql.evals_sql(self.table, materialized=self.materialized(), **flags)
        return self.frame(sql, params).lazy()

    def relation_sql(self, name: str, *, since: bool = False, until: bool = False) -> str:
        """The SQL of one of the store's views (``spans``, ``span_events``, ``evals``, ``generations``)."""
        builders = {
            "spans": chsql.spans_sql,
            "span_events": chsql.span_events_sql,
            "evals": chsql.evals_sql,
            "generations": chsql.generations_sql,
        }
        if name not in builders:
            msg = f"ClickHouse sources provide {', '.join(builders)}, not {name!r}"
            raise StoreError(msg)
        return builders[name](self.table, materialized=self.materialized(), since=since, until=until)

    def create_table(self, *, materialized: bool = True) -> None:
        """Create the source's table: the loratrace variant (``materialized``) or the exporter's own schema."""
        ddl = chsql.materialized_ddl(self.table) if materialized else chsql.exporter_ddl(self.table)
        self.command(ddl)
        self._materialized = None

    def load_store(self, store: str | Path) -> int:
        """Copy a local store's spans into the table (embedded engine only: it reads the store's files).

        Returns the number of spans in the table afterwards.
        """
        from loratrace.sources.clickhouse_load import insert_params, insert_sql
        from loratrace.store.readers import _store_path

        if self.target.scheme != "chdb":
            msg = (
                "loading a local store works with chdb:// (the engine reads the store's files); for a server, "
                "send the spans through an OpenTelemetry Collector with the ClickHouse exporter"
            )
            raise StoreError(msg)
        path = _store_path(store)
        self.command(insert_sql(path, self.table), insert_params(path))
        return int(self.frame(f"SELECT count() AS n FROM {self.table}").item())
