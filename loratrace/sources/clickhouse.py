"""ClickHouse as a source of the analyses: a server through clickhouse-connect, or the embedded engine (chdb).

``clickhouse://user:password@host:8123/database?table=otel_traces&secure=false`` reaches a server over HTTP;
``chdb:///path/to/folder?table=otel_traces`` opens ClickHouse's engine in this process over a data folder
(``chdb://`` alone: a temporary one). Results come back as Arrow, so Polars takes them without copies. The
password never appears in an error, a log line or ``repr``.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import parse_qs, quote, unquote, urlsplit

import polars as pl

from loratrace.analysis import load
from loratrace.analysis.cells import paired_cells
from loratrace.analysis.metrics import Metric
from loratrace.errors import QueryError, StoreError
from loratrace.sources import clickhouse_cells as cells_sql
from loratrace.sources import clickhouse_sql as chsql
from loratrace.sources.base import EVERYTHING, Present, Selection
from loratrace.sources.local import _names

DEFAULT_TABLE: Final = "otel_traces"
SCHEMES: Final = ("clickhouse", "clickhouses", "chdb")
RELATIONS: Final = ("spans", "span_events", "evals", "generations", "feedback")
"""The store's views a ClickHouse source provides over ``otel_traces``."""


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


def redact(url: str) -> str:
    """``url`` with the password of its user part replaced by ``***``: what a message may show of a URL."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***" if "@" in url else url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    return f"{scheme}://{netloc}{slash}{tail}"


def scrub(text: str, secret: str | None) -> str:
    """``text`` (a client's error message) with ``secret`` and its URL-encoded spelling removed."""
    if not secret:
        return text
    for spelling in {secret, quote(secret, safe=""), quote(secret)}:
        text = text.replace(spelling, "***")
    return text


def parse_url(url: str) -> ClickHouseTarget:
    """A ``clickhouse://`` / ``clickhouses://`` / ``chdb://`` URL as a :class:`ClickHouseTarget`."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        msg = f"a ClickHouse source URL starts with clickhouse://, clickhouses:// or chdb://, got {parts.scheme!r}"
        raise StoreError(msg)
    try:
        port = parts.port
    except ValueError:
        msg = f"the port of a ClickHouse source URL is a number, got {redact(url)!r}"
        raise StoreError(msg) from None
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
        port=port,
        database=database,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        secure=secure,
    )


def _param_text(value: Any) -> Any:
    """chdb takes parameters as ClickHouse text: arrays in their literal form, NULL as \\N."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "true" if value else "false"
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
        # an Arrow table converts to a DataFrame (only an Arrow array gives a Series)
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
        try:
            self._client = clickhouse_connect.get_client(
                host=target.host,
                port=target.port or (8443 if target.secure else 8123),
                username=target.username or "default",
                password=target.password or "",
                database=target.database or "__default__",
                secure=target.secure,
            )
        except Exception as exc:  # refused, unreachable, bad credentials: the client's own error types
            msg = f"ClickHouse ({target.display()}) cannot be used: {scrub(str(exc), target.password)}"
            raise StoreError(msg) from None

    def frame(self, sql: str, params: Mapping[str, Any]) -> pl.DataFrame:
        # an Arrow table converts to a DataFrame (only an Arrow array gives a Series)
        return pl.from_arrow(self._client.query_arrow(sql, parameters=dict(params)))  # type: ignore[return-value]

    def command(self, sql: str, params: Mapping[str, Any]) -> None:
        self._client.command(sql, parameters=dict(params))

    def close(self) -> None:
        self._client.close()


CELL_SCHEMA: Final[dict[str, pl.DataType | type[pl.DataType]]] = {
    "adapter": pl.String,
    "adapter_id": pl.String,
    "arm": pl.String,
    "cohort": pl.String,
    "route": pl.String,
    "prompt_version": pl.String,
    "quantization": pl.String,
    "base_model": pl.String,
    "metric": pl.String,
    "window_start": pl.Datetime("us"),
    "n": pl.Int64,
    "sum": pl.Float64,
    "sum_sq": pl.Float64,
}


def _naive(frame: pl.DataFrame) -> pl.DataFrame:
    """ClickHouse's UTC timestamps as the naive UTC the local store and the analyses use."""
    zoned = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime) and t.time_zone is not None]
    if not zoned:
        return frame
    return frame.with_columns([pl.col(c).dt.convert_time_zone("UTC").dt.replace_time_zone(None) for c in zoned])


def _nanos(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


class _Relations(Mapping[str, str]):
    """The store's views over a source's table, each built (and translated) only when a query names it."""

    def __init__(self, source: ClickHouseSource) -> None:
        self._source = source
        self._built: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        if name not in RELATIONS:
            raise KeyError(name)
        if name not in self._built:
            self._built[name] = self._source.relation_sql(name)
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(RELATIONS)

    def __len__(self) -> int:
        return len(RELATIONS)


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
            msg = f"ClickHouse ({self.target.display()}) failed: {scrub(str(exc), self.target.password)}"
            raise QueryError(msg) from None

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        try:
            self._engine.command(sql, params or {})
        except Exception as exc:
            msg = f"ClickHouse ({self.target.display()}) failed: {scrub(str(exc), self.target.password)}"
            raise QueryError(msg) from None

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

    def _bounds(self, selection: Selection) -> tuple[dict[str, bool], dict[str, Any]]:
        flags = {"since": selection.since is not None, "until": selection.until is not None}
        params: dict[str, Any] = {}
        if selection.since is not None:
            params["since_ns"] = _nanos(selection.since)
        if selection.until is not None:
            params["until_ns"] = _nanos(selection.until)
        return flags, params

    def _paired_only(self, sql: str, flags: dict[str, bool]) -> str:
        # what paired cells can use: replayed examples, and the traces holding a mirrored (shadow) answer
        generations = chsql.generations_sql(self.table, materialized=self.materialized(), **flags)
        shadowed = f"SELECT trace_id FROM ({generations}) WHERE variant = 'shadow'"
        return f"SELECT * FROM ({sql}) WHERE example_id IS NOT NULL OR trace_id IN ({shadowed})"

    def _raw_generations(self, selection: Selection, *, paired_only: bool = False) -> pl.DataFrame:
        flags, params = self._bounds(selection)
        sql = chsql.generations_sql(self.table, materialized=self.materialized(), **flags)
        if paired_only:
            sql = self._paired_only(sql, flags)
        return _naive(self.frame(sql, params))

    def _raw_events(self, selection: Selection, *, paired_only: bool = False) -> pl.DataFrame:
        flags, params = self._bounds(selection)
        sql = chsql.span_events_sql(self.table, materialized=self.materialized(), evaluations_only=True, **flags)
        if paired_only:
            sql = self._paired_only(sql, flags)
        return _naive(self.frame(sql, params))

    def generations(self, selection: Selection = EVERYTHING) -> pl.LazyFrame:
        """Generation rows with the arm keys, fetched whole: the analyses use :meth:`cells` instead."""
        frame = load.generations(self._raw_generations(selection).lazy(), traffic=selection.traffic)
        return _names(frame, selection)

    def evals(self, selection: Selection = EVERYTHING) -> pl.LazyFrame:
        """Evaluation rows with the arm keys, fetched whole."""
        frame = load.evals(self._raw_events(selection).lazy(), traffic=selection.traffic)
        return _names(frame, selection)

    def present(self, selection: Selection = EVERYTHING) -> Present:
        flags, params = self._bounds(selection)
        scan = cells_sql.Scan(self.table, self.materialized(), traffic=selection.traffic, **flags)
        row = self.frame(cells_sql.present_sql(scan), params).row(0, named=True)
        return Present(list(row["adapter"]), list(row["cohort"]), int(row["rows"]), self.eval_names(selection))

    def eval_names(self, selection: Selection = EVERYTHING) -> list[str]:
        flags, params = self._bounds(selection)
        scan = cells_sql.Scan(self.table, self.materialized(), traffic=selection.traffic, **flags)
        sql = cells_sql.eval_names_sql(scan)
        names = self.frame(sql, params)
        return names.get_column("name").to_list() if not names.is_empty() else []

    def cells_and_paired(
        self, metrics: Sequence[Metric], *, window: dt.timedelta | None, selection: Selection = EVERYTHING
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        if not metrics:  # a run of feedback metrics only: those come from feedback_cells
            return pl.DataFrame(schema=CELL_SCHEMA), paired_cells(pl.LazyFrame(), None, metrics=[]).collect()
        return self.cells(metrics, window=window, selection=selection), self.paired_cells(metrics, selection=selection)

    def cells(
        self, metrics: Sequence[Metric], *, window: dt.timedelta | None, selection: Selection = EVERYTHING
    ) -> pl.DataFrame:
        """The cells, aggregated inside ClickHouse; only the cells cross the wire."""
        _, params = self._bounds(selection)
        return self._cells(metrics, window=window, selection=selection, params=params)

    def _cells(
        self,
        metrics: Sequence[Metric],
        *,
        window: dt.timedelta | None,
        selection: Selection,
        params: dict[str, Any],
        generations: str | None = None,
    ) -> pl.DataFrame:
        if selection.adapters:
            params["adapters"] = list(selection.adapters)
        if selection.cohorts:
            params["cohorts"] = list(selection.cohorts)
        sql = cells_sql.cells_sql(
            self.table,
            metrics,
            window=window,
            materialized=self.materialized(),
            traffic=selection.traffic,
            adapters=bool(selection.adapters),
            cohorts=bool(selection.cohorts),
            generations=generations,
            since=selection.since is not None,
            until=selection.until is not None,
        )
        frame = _naive(self.frame(sql, params))
        if frame.is_empty():
            return pl.DataFrame(schema=CELL_SCHEMA)
        return frame.select([pl.col(c).cast(t) for c, t in CELL_SCHEMA.items()])

    def paired_cells(self, metrics: Sequence[Metric], *, selection: Selection = EVERYTHING) -> pl.DataFrame:
        """Paired cells from the rows that can pair only (replayed examples, traces with a shadow answer): golden
        sets and mirrored samples are small next to the traffic, so only they come back for the pairing."""
        generations = _names(
            load.generations(self._raw_generations(selection, paired_only=True).lazy(), traffic=selection.traffic),
            selection,
        )
        evals = _names(
            load.evals(self._raw_events(selection, paired_only=True).lazy(), traffic=selection.traffic), selection
        )
        return paired_cells(generations, evals, metrics=metrics).collect()

    def feedback_cells(
        self,
        metrics: Sequence[Metric],
        feedback: pl.DataFrame,
        *,
        window: dt.timedelta | None,
        selection: Selection = EVERYTHING,
    ) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
        """Cells of ``feedback:<kind>`` metrics inside ClickHouse: the generations joined to their feedback
        counts there (the store's ``feedback`` view, translated), and each kind's completeness from one row per
        window and second of start time."""
        from loratrace.analysis import feedback as analysis
        from loratrace.analysis.metrics import FEEDBACK_PREFIX
        from loratrace.analysis.run import DEFAULT_WINDOW
        from loratrace.sources.queries import to_clickhouse

        kinds = [m.name.removeprefix(FEEDBACK_PREFIX) for m in metrics]
        flags, params = self._bounds(selection)
        for index, kind in enumerate(kinds):
            params[f"kind{index}"] = kind
            routes = feedback.filter(pl.col("kind") == kind)["route"].drop_nulls().unique().sort().to_list()
            params[f"routes{index}"] = routes
        relation, _ = to_clickhouse(analysis.FEEDBACK_SQL, _Relations(self), {}, settings=False)
        generations = chsql.generations_sql(self.table, materialized=self.materialized(), **flags)
        joined = cells_sql.with_feedback_sql(generations, relation, kinds)
        cells = self._cells(metrics, window=window, selection=selection, params=params, generations=joined)
        params["now_us"] = _nanos(dt.datetime.now(dt.timezone.utc)) // 1_000
        completeness = {}
        for kind in kinds:
            ages_sql = cells_sql.feedback_ages_sql(
                joined, analysis.feedback_column(kind), window=window or DEFAULT_WINDOW
            )
            ages = _naive(self.frame(ages_sql, params))
            if not ages.is_empty():
                completeness[kind] = analysis.completeness_of_ages(ages, feedback, kind=kind)
        return cells, completeness

    def spike_counts(
        self, metric_names: Sequence[str], *, window: dt.timedelta, selection: Selection = EVERYTHING
    ) -> pl.DataFrame:
        """The spike check's per-window counts, aggregated inside ClickHouse from the metrics' own SQL."""
        from loratrace.analysis.spikes import SPIKE_METRICS

        flags, params = self._bounds(selection)
        chosen = [SPIKE_METRICS[name] for name in metric_names]
        sql = cells_sql.spike_counts_sql(self.table, chosen, window=window, materialized=self.materialized(), **flags)
        frame = self.frame(sql, params)
        schema = pl.Schema(
            {
                "adapter": pl.String(),
                "adapter_id": pl.String(),
                "window_start": pl.Datetime("us", "UTC"),
                "last_seen": pl.Datetime("us", "UTC"),
                **{f"n:{name}": pl.Int64() for name in metric_names},
                **{f"events:{name}": pl.Float64() for name in metric_names},
            }
        )
        if frame.is_empty():
            return pl.DataFrame(schema=schema)
        return frame.select([pl.col(c).cast(t) for c, t in schema.items()])

    def latest_adapter_id(self, adapter: str) -> str | None:
        """The id that last served under ``adapter`` (the adapter arm's rule of ``loratrace.analysis.load``)."""
        generations = chsql.generations_sql(self.table, materialized=self.materialized())
        sql = (
            f"SELECT adapter_id FROM ({generations}) WHERE adapter_name = {{adapter:String}} "
            "AND ifNull(variant, '') != 'base' ORDER BY start_time DESC, span_id DESC LIMIT 1"
        )
        found = self.frame(sql, {"adapter": adapter})
        return None if found.is_empty() else found.item()

    def query(self, name: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """An incident query from ``loratrace/queries/``, translated to ClickHouse SQL."""
        from loratrace.sources.queries import bound_parameters

        sql, bound, kinds = bound_parameters(name, params or {})
        return self.analysis_query(sql, bound, kinds=kinds)

    def analysis_query(
        self, sql: str, params: Mapping[str, Any] | None = None, *, kinds: Mapping[str, str] | None = None
    ) -> pl.DataFrame:
        """A DuckDB statement over the store's views run inside ClickHouse: the same text the local store runs
        (an incident query, or an analysis' aggregation), translated by sqlglot, the views standing on
        ``otel_traces``; only its result comes back."""
        from loratrace.sources.queries import to_clickhouse

        text, bound = to_clickhouse(sql, _Relations(self), dict(params or {}), kinds=kinds)
        return _naive(self.frame(text, bound))

    def relation_sql(self, name: str, *, since: bool = False, until: bool = False) -> str:
        """The SQL of one of the store's views (``spans``, ``span_events``, ``evals``, ``generations``,
        ``feedback``); ``feedback`` is the store's own view statement, translated."""
        builders: dict[str, Any] = {
            "spans": chsql.spans_sql,
            "span_events": chsql.span_events_sql,
            "evals": chsql.evals_sql,
            "generations": chsql.generations_sql,
        }
        if name == "feedback":
            from loratrace.sources.queries import to_clickhouse
            from loratrace.store.catalog import feedback_view_statement

            view = feedback_view_statement().split(" AS ", 1)[1]  # CREATE OR REPLACE VIEW feedback AS <select>
            spans = {"spans": self.relation_sql("spans", since=since, until=until)}
            return to_clickhouse(view, spans, {}, settings=False)[0]
        if name not in builders:
            msg = f"ClickHouse sources provide {', '.join(RELATIONS)}, not {name!r}"
            raise StoreError(msg)
        return builders[name](self.table, materialized=self.materialized(), since=since, until=until)

    def feedback(self) -> pl.DataFrame:
        """Every feedback joined to its generation, from the store's own ``feedback`` view translated."""
        from loratrace.analysis.feedback import FEEDBACK_SQL, empty_feedback

        frame = self.analysis_query(FEEDBACK_SQL)
        return empty_feedback() if frame.is_empty() else frame

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
