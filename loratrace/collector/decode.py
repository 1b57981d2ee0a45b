"""OTLP requests -> rows of the store's tables: the one normalisation code path.

The store writer and the embedded ``StoreSpanExporter`` both feed ``ExportTraceServiceRequest`` /
``ExportMetricsServiceRequest`` messages through :class:`RowBuffer`, so a span lands in the same columns
whichever way it arrived. Promoted columns are filled by the rules of ``loratrace.store.promotion``, whichever
naming scheme the producer used.

Decoding is the collector's throughput ceiling (see docs/benchmarks.md). The store writer therefore hands the
raw request bytes to :meth:`RowBuffer.add_traces_bytes`, which uses the compiled walker of the protobuf wire
format in ``_fastdecode_c/`` when it was built, and this module's Python code otherwise. The Python code is the
reference: the compiled path fills the very same columns of spans, events and links
(tests/collector/test_fastdecode.py checks it on generated requests) and leaves to Python whatever it cannot
reproduce exactly. The compiled module takes its promotion rules from here (``_fastdecode.configure`` at
import, from ``promotion_rules()``) and names its own columns, which must be the store schema's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, Final

import polars as pl
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from loratrace import semconv
from loratrace.store import promotion, schema

logger = logging.getLogger(__name__)

try:
    import loratrace.collector._fastdecode as _fastdecode
except ImportError:  # not compiled (no C compiler at install time): the Python path does everything
    _fastdecode = None

_FAST_API: Final = ("configure", "Decoder", "SpanBatch", "KeyWindow", "scan_traces", "count_messages", "FIELDS")
if _fastdecode is not None and not all(hasattr(_fastdecode, name) for name in _FAST_API):
    # a build left from an older checkout: calling it would fail every request, so decode in Python instead
    logger.warning(
        "loratrace's compiled decoder %s is older than its source; decoding in Python (slower) until it is "
        "rebuilt: pip install --no-deps -e . (or make test)",
        getattr(_fastdecode, "__file__", "?"),
    )
    _fastdecode = None

# the tables the compiled decoder fills
_FAST_TABLES: Final = ("spans", "span_events", "span_links")
_KINDS: Final = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS: Final = ("UNSET", "OK", "ERROR")
_TEMPORALITY: Final = ("UNSPECIFIED", "DELTA", "CUMULATIVE")

_RULES: Final = promotion.PROMOTIONS
# promoted column -> the attributes that feed it, first present wins; the attributes that are arrays on the wire
_SOURCES: Final[dict[str, tuple[str, ...]]] = {rule.column: rule.sources for rule in _RULES}
_LIST_ATTRIBUTES: Final = promotion.ARRAY_ATTRIBUTES
_INT_COLUMNS: Final = frozenset(r.column for r in _RULES if r.kind == "int")
_FLOAT_COLUMNS: Final = frozenset(r.column for r in _RULES if r.kind == "float")
_BOOL_COLUMNS: Final = frozenset(r.column for r in _RULES if r.kind == "bool")
_LIST_COLUMNS: Final = frozenset(r.column for r in _RULES if r.kind == "string_list")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _any_value(value: Any) -> Any:
    """An OTLP AnyValue as a JSON-ready Python value (bytes as hex)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which)


_SCALARS: Final = frozenset(("string_value", "int_value", "double_value", "bool_value"))


def _attributes(kvs: Iterable[Any]) -> dict[str, Any]:
    """Attributes as a dict of JSON-ready values."""
    out: dict[str, Any] = {}
    scalars = _SCALARS
    for kv in kvs:
        value = kv.value
        which = value.WhichOneof("value")
        out[kv.key] = getattr(value, which) if which in scalars else _any_value(value)
    return out


def _resource(resource: Any) -> tuple[str | None, str]:
    """(service name, attributes as JSON) of an OTLP resource."""
    attributes = _attributes(resource.attributes)
    service = attributes.get("service.name")
    return (None if service is None else str(service)), _json(attributes)


def _json(attributes: dict[str, Any]) -> str:
    try:
        return _dumps(attributes)
    except ValueError:  # NaN / infinity are not JSON: spell them as strings rather than drop the span
        return _dumps(_finite(attributes))


_NON_FINITE: Final = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float, at any depth, as the string JavaScript spells it."""
    if isinstance(value, float):
        return _NON_FINITE.get(repr(value), value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _coerce(kind: promotion.Kind, value: Any) -> Any:
    """An attribute's value as a ``kind`` column holds it; None when it cannot be (never fails a span)."""
    try:
        if kind == "int":
            return None if isinstance(value, bool) else int(float(value))
        if kind == "float":
            return None if isinstance(value, bool) else float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            return {"true": True, "false": False}.get(str(value).lower())
        if kind == "string_list":
            return [str(v) for v in value] if isinstance(value, list) else [str(value)]
        return value if isinstance(value, str) else json.dumps(value)
    except (TypeError, ValueError, OverflowError):
        return None


def promote(attributes: dict[str, Any]) -> dict[str, Any]:
    """Promoted column values from one span's (or data point's) attributes: the reference, row-at-a-time rule.

    ``promote_frame`` is the same rule over a whole column of JSON; this one is its fallback for a batch that
    the vectorized path cannot type (e.g. an array where a scalar is expected).
    """
    out: dict[str, Any] = {}
    for rule in _RULES:
        for name in rule.sources:
            if name in attributes and attributes[name] is not None:
                value = attributes[name]
                if rule.array_sources:
                    first = value[0] if isinstance(value, list) and value else value
                    out[rule.column] = None if first in (None, []) else str(first)
                elif rule.scale != 1.0:
                    number = _coerce(rule.kind, value)
                    out[rule.column] = None if number is None else number * rule.scale
                else:
                    out[rule.column] = _coerce(rule.kind, value)
                break
    return out


_PICK_DTYPE: Final = pl.Struct(
    [
        pl.Field(name, pl.List(pl.String) if name in _LIST_ATTRIBUTES else pl.String)
        for name in sorted(promotion.SOURCE_ATTRIBUTES)
    ]
)


def _typed(column: str, expr: pl.Expr) -> pl.Expr:
    dtype = schema.PROMOTED_TYPES[column]
    if column in _BOOL_COLUMNS:
        return expr.str.to_lowercase().replace_strict(
            {"true": True, "false": False}, default=None, return_dtype=pl.Boolean
        )
    if column in _INT_COLUMNS:
        return expr.cast(pl.Float64, strict=False).cast(pl.Int64, strict=False)
    return expr.cast(dtype, strict=False)


def promote_frame(frame: pl.DataFrame, columns: Iterable[str]) -> pl.DataFrame:
    """Fill promoted ``columns`` of ``frame`` from its JSON ``attributes`` column in one vectorized pass."""
    wanted = list(columns)
    picked = frame.select(pl.col("attributes").str.json_decode(_PICK_DTYPE).alias("p")).unnest("p")
    exprs = []
    for column in wanted:
        rule = promotion.BY_COLUMN[column]
        names = _SOURCES[column]
        if rule.array_sources:
            expr = pl.coalesce([pl.col(n).list.first() if n in rule.array_sources else pl.col(n) for n in names])
        elif column in _LIST_COLUMNS:
            expr = pl.col(names[0])
        else:
            expr = pl.coalesce([_typed(column, pl.col(n)) for n in names])
            if rule.scale != 1.0:
                expr = expr * rule.scale
        exprs.append(expr.cast(rule.dtype).alias(column))
    promoted = picked.select(exprs)
    for column in wanted:
        if promotion.BY_COLUMN[column].exception_fallback and column in frame.columns:
            # a failed span without the attribute still names its exception (the decoder read it into the column)
            promoted = promoted.with_columns(pl.coalesce(pl.col(column), frame[column]).alias(column))
    return frame.with_columns(promoted)


def promote_rows(frame: pl.DataFrame, columns: Iterable[str]) -> pl.DataFrame:
    """``promote_frame`` one row at a time: slow, but types any attribute value (the fallback)."""
    wanted = list(columns)
    rows = [promote(json.loads(text)) for text in frame["attributes"].to_list()]
    data = {c: pl.Series(c, [r.get(c) for r in rows], dtype=schema.PROMOTED_TYPES[c], strict=False) for c in wanted}
    for column in wanted:
        if promotion.BY_COLUMN[column].exception_fallback and column in frame.columns:
            data[column] = pl.Series(
                column,
                [r.get(column) or e for r, e in zip(rows, frame[column].to_list(), strict=True)],
                dtype=schema.PROMOTED_TYPES[column],
            )
    return frame.with_columns(**data)


def _micros(ns: int) -> int:
    return ns // 1000


class RowBuffer:
    """Rows decoded from OTLP requests, accumulated column by column until ``take()``."""

    def __init__(self) -> None:
        self._columns: dict[str, dict[str, list[Any]]] = {
            table: {name: [] for name in columns} for table, columns in schema.TABLES.items()
        }
        self.span_count = 0
        self.metric_point_count = 0
        # rows the compiled decoder appends (in Arrow layout, no Python objects) and, per table and in arrival
        # order, the frames of rows already taken out of its batches or out of the Python lists above
        self._batches = None if _FAST_DECODER is None else tuple(_fastdecode.SpanBatch(table) for table in _FAST_TABLES)
        self._chunks: dict[str, list[pl.DataFrame]] = {table: [] for table in _FAST_TABLES}
        # the compiled decoder also fills the promoted columns, except when a value needs Polars' casting rules
        # ("hard") or some spans came through Python: then ``promote_frame`` fills them for the whole buffer
        self._promote_in_python = False

    def __len__(self) -> int:
        return self.span_count + self.metric_point_count

    # -- traces
    # ------------------------------------------------------------------------------------------------
    def add_traces_bytes(self, payload: bytes) -> int:
        """Append every span of a serialized ``ExportTraceServiceRequest``; returns the number of spans added.

        Raises ``google.protobuf.message.DecodeError`` (and appends nothing) when ``payload`` does not parse.
        """
        batches = self._batches
        if batches is None or _FAST_DECODER is None:
            return self.add_traces(ExportTraceServiceRequest.FromString(payload))
        self._seal_python_rows()
        marks = [batch.rows() for batch in batches]
        decoded = _FAST_DECODER.decode_traces(payload, *batches)
        if decoded is None:  # a form the compiled walker leaves to upb (or invalid: upb raises the error)
            return self.add_traces(ExportTraceServiceRequest.FromString(payload))
        added, python_children, hard = decoded
        if python_children:  # event and link rows the compiled path cannot reproduce exactly (rare)
            try:
                request = ExportTraceServiceRequest.FromString(payload)
                self._seal_fast_rows(("span_events", "span_links"))
                self._add_children(request, frozenset(python_children))
            except Exception:
                for batch, mark in zip(batches, marks, strict=True):
                    batch.truncate(mark)
                raise
        if hard:
            self._promote_in_python = True
        self.span_count += added
        return added

    def _seal_python_rows(self) -> None:
        """Move the rows appended by the Python path into frames, keeping arrival order with the batches'."""
        for table in _FAST_TABLES:
            columns = self._columns[table]
            if next(iter(columns.values())):
                chunk = frame(table, columns)
                if table == "spans":
                    chunk = chunk.with_columns(_NO_PROMOTED_ERROR)
                self._chunks[table].append(chunk)
                for values in columns.values():
                    values.clear()

    def _seal_fast_rows(self, tables: Iterable[str] = _FAST_TABLES) -> None:
        if self._batches is None:
            return
        for table, batch in zip(_FAST_TABLES, self._batches, strict=True):
            if table in tables and batch.rows():
                chunk = pl.Series(batch).struct.unnest()
                if table == "spans":
                    chunk = chunk.rename(_FAST_SPAN_RENAMES)
                self._chunks[table].append(
                    chunk.select(list(_FAST_FRAME_SCHEMAS[table])).cast(_FAST_FRAME_SCHEMAS[table])
                )

    def _add_children(self, request: ExportTraceServiceRequest, indexes: frozenset[int]) -> None:
        """Event and link rows of the spans at ``indexes`` (positions in ``request``'s span order)."""
        index = 0
        for resource_spans in request.resource_spans:
            service = None
            for kv in resource_spans.resource.attributes:
                if kv.key == "service.name":
                    value = _attributes([kv])["service.name"]
                    service = None if value is None else str(value)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    if index in indexes:
                        trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
                        if span.events:
                            attrs = _attributes(span.attributes)
                            self._add_events(trace_id, span_id, span.events, service, attrs)
                        if span.links:
                            self._add_links(trace_id, span_id, span.start_time_unix_nano, span.links)
                    index += 1

    def add_traces(self, request: ExportTraceServiceRequest) -> int:
        """Append every span of ``request``; returns the number of spans added."""
        self._promote_in_python = True
        self._seal_fast_rows()
        spans = self._columns["spans"]
        trace_id_col = spans["trace_id"]
        span_id_col = spans["span_id"]
        parent_col = spans["parent_span_id"]
        state_col = spans["trace_state"]
        name_col = spans["name"]
        kind_col = spans["kind"]
        service_col = spans["service_name"]
        scope_name_col = spans["scope_name"]
        scope_version_col = spans["scope_version"]
        start_col = spans["start_time_unix_nano"]
        end_col = spans["end_time_unix_nano"]
        duration_col = spans["duration_ns"]
        start_time_col = spans["start_time"]
        status_col = spans["status_code"]
        status_message_col = spans["status_message"]
        res_attrs_col = spans["resource_attributes"]
        attrs_col = spans["attributes"]
        error_col = spans["error_type"]
        added = 0
        for resource_spans in request.resource_spans:
            service, res_json = _resource(resource_spans.resource)
            for scope_spans in resource_spans.scope_spans:
                scope = scope_spans.scope
                scope_name = scope.name or None
                scope_version = scope.version or None
                for span in scope_spans.spans:
                    trace_id = span.trace_id.hex()
                    span_id = span.span_id.hex()
                    start = span.start_time_unix_nano
                    end = span.end_time_unix_nano
                    attrs = _attributes(span.attributes)
                    status = span.status
                    status_code = _STATUS[status.code] if 0 <= status.code < 3 else "UNSET"
                    trace_id_col.append(trace_id)
                    span_id_col.append(span_id)
                    parent_col.append(span.parent_span_id.hex() or None)
                    state_col.append(span.trace_state or None)
                    name_col.append(span.name)
                    kind_col.append(_KINDS[span.kind] if 0 <= span.kind < 6 else "UNSPECIFIED")
                    service_col.append(service)
                    scope_name_col.append(scope_name)
                    scope_version_col.append(scope_version)
                    start_col.append(start)
                    end_col.append(end)
                    duration_col.append(end - start if end >= start else None)
                    start_time_col.append(start // 1000)
                    status_col.append(status_code)
                    status_message_col.append(status.message or None)
                    res_attrs_col.append(res_json)
                    attrs_col.append(_json(attrs))
                    error_col.append(_exception_type(span.events) if status_code == "ERROR" else None)
                    if span.events:
                        self._add_events(trace_id, span_id, span.events, service, attrs)
                    if span.links:
                        self._add_links(trace_id, span_id, start, span.links)
                    added += 1
        self.span_count += added
        return added

    def _add_events(
        self,
        trace_id: str,
        span_id: str,
        events: Iterable[Any],
        service: str | None,
        span_attrs: dict[str, Any],
    ) -> None:
        cols = self._columns["span_events"]
        promoted = promote(span_attrs)  # events are few: the row-at-a-time rule is cheap enough here
        for index, event in enumerate(events):
            typed = _attributes(event.attributes)
            cols["trace_id"].append(trace_id)
            cols["span_id"].append(span_id)
            cols["event_index"].append(index)
            cols["time_unix_nano"].append(event.time_unix_nano)
            cols["time"].append(event.time_unix_nano // 1000)
            cols["name"].append(event.name)
            cols["attributes"].append(_json(typed))
            evaluation: dict[str, Any] = {}
            if event.name == semconv.GEN_AI_EVALUATION_RESULT_EVENT:
                evaluation = {
                    "eval_name": _coerce("string", typed.get(semconv.GEN_AI_EVALUATION_NAME)),
                    "eval_score": _float_or_none(typed.get(semconv.GEN_AI_EVALUATION_SCORE_VALUE)),
                    "eval_label": _str_or_none(typed.get(semconv.GEN_AI_EVALUATION_SCORE_LABEL)),
                    "eval_passed": _coerce("bool", typed[semconv.EVALUATION_PASSED])
                    if semconv.EVALUATION_PASSED in typed
                    else None,
                    "eval_explanation": _str_or_none(typed.get(semconv.GEN_AI_EVALUATION_EXPLANATION)),
                }
            for name in ("eval_name", "eval_score", "eval_label", "eval_passed", "eval_explanation"):
                cols[name].append(evaluation.get(name))
            cols["service_name"].append(service)
            for name in schema.EVENT_SPAN_COLUMNS:
                cols[name].append(promoted.get(name))

    def _add_links(self, trace_id: str, span_id: str, start: int, links: Iterable[Any]) -> None:
        cols = self._columns["span_links"]
        for index, link in enumerate(links):
            attrs = _attributes(link.attributes)
            cols["trace_id"].append(trace_id)
            cols["span_id"].append(span_id)
            cols["link_index"].append(index)
            cols["start_time"].append(start // 1000)
            cols["linked_trace_id"].append(link.trace_id.hex())
            cols["linked_span_id"].append(link.span_id.hex())
            cols["linked_trace_state"].append(link.trace_state or None)
            cols["attributes"].append(_json(attrs))

    # -- metrics
    # -----------------------------------------------------------------------------------------------
    def add_metrics(self, request: ExportMetricsServiceRequest) -> int:
        """Append every histogram, sum and gauge data point of ``request``; returns the number of points."""
        added = 0
        for resource_metrics in request.resource_metrics:
            service, res_json = _resource(resource_metrics.resource)
            for scope_metrics in resource_metrics.scope_metrics:
                scope_name = scope_metrics.scope.name or None
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    if kind is None:
                        continue
                    data = getattr(metric, kind)
                    temporality = getattr(data, "aggregation_temporality", 0)
                    for point in data.data_points:
                        self._add_point(metric, kind, point, (service, scope_name, res_json), temporality, data)
                        added += 1
        self.metric_point_count += added
        return added

    def _add_point(
        self, metric: Any, kind: str, point: Any, origin: tuple[Any, Any, str], temporality: int, data: Any
    ) -> None:
        cols = self._columns["metrics"]
        service, scope, res_json = origin
        attrs = _attributes(point.attributes)
        row: dict[str, Any] = {
            "name": metric.name,
            "description": metric.description or None,
            "unit": metric.unit or None,
            "type": kind,
            "service_name": service,
            "scope_name": scope,
            "time_unix_nano": point.time_unix_nano,
            "start_time_unix_nano": point.start_time_unix_nano,
            "time": point.time_unix_nano // 1000,
            "resource_attributes": res_json,
            "attributes": _json(attrs),
            "aggregation_temporality": _TEMPORALITY[temporality] if 0 <= temporality < 3 else None,
            "is_monotonic": getattr(data, "is_monotonic", None) if kind == "sum" else None,
        }
        if kind in ("histogram", "exponential_histogram"):
            row["count"] = point.count
            row["sum"] = point.sum if point.HasField("sum") else None
            row["min"] = point.min if point.HasField("min") else None
            row["max"] = point.max if point.HasField("max") else None
            if kind == "histogram":
                row["bucket_counts"] = list(point.bucket_counts)
                row["explicit_bounds"] = list(point.explicit_bounds)
        elif kind in ("sum", "gauge"):
            which = point.WhichOneof("value")
            row["value"] = float(getattr(point, which)) if which else None
        elif kind == "summary":
            row["count"] = point.count
            row["sum"] = point.sum
        for name, column in cols.items():
            column.append(row.get(name))

    # -- output
    # ------------------------------------------------------------------------------------------------
    def take(self) -> dict[str, pl.DataFrame]:
        """The buffered rows as one DataFrame per table (tables without rows left out); empties the buffer."""
        frames: dict[str, pl.DataFrame] = {}
        self._seal_fast_rows()
        self._seal_python_rows()
        for table, chunks in self._chunks.items():
            if chunks:
                frames[table] = pl.concat(chunks, how="vertical", rechunk=False) if len(chunks) > 1 else chunks[0]
        if "spans" in frames:
            spans = frames["spans"]
            if self._promote_in_python:
                spans = spans.drop(_PROMOTED_ERROR)
            else:  # promoted in C: ``error.type`` when set, else the exception event's type
                spans = spans.with_columns(pl.col(_PROMOTED_ERROR).alias("error_type")).drop(_PROMOTED_ERROR)
            frames["spans"] = spans
        for table, columns in self._columns.items():
            if table not in _FAST_TABLES and any(columns.values()):  # every column holds as many values
                frames[table] = frame(table, columns)
        fast_promoted = not self._promote_in_python
        for table, promoted in (("spans", schema.PROMOTED_TYPES), ("metrics", schema.METRIC_PROMOTED)):
            if table == "spans" and fast_promoted:
                continue
            if table in frames:
                try:
                    frames[table] = promote_frame(frames[table], promoted)
                except pl.exceptions.PolarsError:
                    logger.debug("vectorized promotion failed; promoting row by row", exc_info=True)
                    frames[table] = promote_rows(frames[table], promoted)
        self.__init__()  # type: ignore[misc]  # back to empty buffers: the same state a new decoder starts in
        return frames


_PROMOTED_ERROR: Final = "_promoted_error_type"
# the compiled span batch's names -> this buffer's: its ``exception_type`` is the ``error_type`` the Python path
# fills before promotion, its promoted ``error_type`` is kept apart until take() knows which path promoted
_FAST_SPAN_RENAMES: Final = {"error_type": _PROMOTED_ERROR, "exception_type": "error_type"}
_FAST_FRAME_SCHEMAS: Final = {
    "spans": pl.Schema({**schema.SPANS, _PROMOTED_ERROR: pl.String()}),
    "span_events": pl.Schema(schema.SPAN_EVENTS),
    "span_links": pl.Schema(schema.SPAN_LINKS),
}
_NO_PROMOTED_ERROR: Final = pl.lit(None, dtype=pl.String).alias(_PROMOTED_ERROR)


# the promotion table's kinds as the compiled decoder names them
_COMPILED_KINDS: Final[dict[str, str]] = {
    "string": "string",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "string_list": "list",
}


def promotion_rules() -> list[tuple[str, str, tuple[str, ...], float]]:
    """The promotion table as the compiled decoder takes it: (column, kind, attribute keys, scale)."""
    return [
        # a list column reads only its first source, as promote_frame does
        (
            rule.column,
            _COMPILED_KINDS[rule.kind],
            _SOURCES[rule.column][: 1 if rule.kind == "string_list" else None],
            rule.scale,
        )
        for rule in _RULES
    ]


def _exception_fallback() -> str | None:
    """The promoted column that takes a failed span's exception type (the compiled decoder has one at most)."""
    columns = [rule.column for rule in _RULES if rule.exception_fallback]
    if len(columns) > 1:
        msg = f"the compiled decoder takes one exception-fallback column, the promotion table names {columns}"
        raise ValueError(msg)
    return columns[0] if columns else None


def _configure_fast_decoder() -> Any:
    """The compiled decoder, configured with this module's rules; None when its columns are not the schema's."""
    _fastdecode.configure(
        promotion_rules(),
        list_attributes=tuple(sorted(_LIST_ATTRIBUTES)),
        exception_fallback=_exception_fallback(),
        event_span_columns=schema.EVENT_SPAN_COLUMNS,
        evaluation=(
            semconv.GEN_AI_EVALUATION_RESULT_EVENT,
            semconv.GEN_AI_EVALUATION_NAME,
            semconv.GEN_AI_EVALUATION_SCORE_VALUE,
            semconv.GEN_AI_EVALUATION_SCORE_LABEL,
            semconv.EVALUATION_PASSED,
            semconv.GEN_AI_EVALUATION_EXPLANATION,
        ),
    )
    exported = {
        "spans": {*_fastdecode.SPAN_COLUMNS, *_fastdecode.promoted_columns()} - {"exception_type"},
        "span_events": {*_fastdecode.EVENT_COLUMNS, *schema.EVENT_SPAN_COLUMNS},
        "span_links": set(_fastdecode.LINK_COLUMNS),
    }
    for table, names in exported.items():
        if names != set(schema.TABLES[table]):
            # a build whose columns the schema no longer has: decode in Python rather than fail every request
            logger.warning(
                "loratrace's compiled decoder fills other %s columns than the store schema (%s); decoding in "
                "Python (slower) until it is rebuilt: pip install --no-deps -e .",
                table,
                ", ".join(sorted(names ^ set(schema.TABLES[table]))),
            )
            return None
    return _fastdecode.Decoder()


_FAST_DECODER: Final = None if _fastdecode is None else _configure_fast_decoder()


def fast_decoder_available() -> bool:
    """Whether the compiled decoder was built and is in use (``False``: the pure-Python path decodes)."""
    return _FAST_DECODER is not None


def frame(table: str, columns: dict[str, list[Any]]) -> pl.DataFrame:
    """Columns of plain Python values as a DataFrame of ``table``'s exact schema (unfilled columns null)."""
    types = schema.TABLES[table]
    height = max(len(values) for values in columns.values())
    data = {}
    for name, dtype in types.items():
        values = columns[name]
        if not values:
            data[name] = pl.Series(name, dtype=dtype).extend_constant(None, height)
        elif isinstance(dtype, pl.Datetime):
            data[name] = pl.Series(name, values, dtype=pl.Int64).cast(dtype)
        else:
            data[name] = pl.Series(name, values, dtype=dtype, strict=False)
    return pl.DataFrame(data)


def _exception_type(events: Iterable[Any]) -> str | None:
    for event in events:
        if event.name == "exception":
            for kv in event.attributes:
                if kv.key == "exception.type":
                    return kv.value.string_value or None
    return None


def _float_or_none(value: Any) -> float | None:
    return None if value is None or isinstance(value, bool) else _coerce("float", value)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
