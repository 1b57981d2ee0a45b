"""``loratrace feedback import``: user outcomes exported by a ticketing or review system, sent as feedback spans.

Each row names the answer it is about by trace id (optionally span id), or by a request id that the store maps
to a trace (``--store`` and the span attribute holding request ids). Every row is checked before anything is sent,
so a bad file sends nothing. A row without an id column gets an id derived from its content, so importing the same
export again (or an overlapping one) adds nothing: the ``feedback`` view keeps one row per id.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from loratrace._feedback import check_kind, check_span_id, check_trace_id, record_feedback, time_unix_nano
from loratrace.errors import ConfigurationError
from loratrace.runtime.span_sender import SpanSender

FileFormat = Literal["csv", "jsonl"]
FIELDS = ("trace_id", "span_id", "request_id", "kind", "time", "value", "id")
"""The fields of a feedback row; ``--column FIELD=COLUMN`` maps a file's own column names onto them."""
_MAX_REPORTED = 5
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class FeedbackRow:
    """One checked row, ready to send."""

    line: int
    kind: str
    trace_id: str
    span_id: str | None
    time_unix_nano: int
    value: float | str | None
    feedback_id: str


@dataclass(frozen=True)
class ImportResult:
    rows: int
    sent: int


def file_format(path: Path, chosen: FileFormat | None) -> FileFormat:
    if chosen is not None:
        return chosen
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    msg = f"cannot tell the format of {str(path)!r} from its suffix; pass --format csv or --format jsonl"
    raise ConfigurationError(msg)


def parse_columns(pairs: Sequence[str]) -> dict[str, str]:
    """``["trace_id=otel_trace", ...]`` as ``{field: column}``, every field defaulting to its own name."""
    columns = {field: field for field in FIELDS}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or field not in FIELDS or not column:
            msg = f"--column takes FIELD=COLUMN with FIELD one of {', '.join(FIELDS)}, got {pair!r}"
            raise ConfigurationError(msg)
        columns[field] = column
    return columns


def read_records(path: Path, fmt: FileFormat) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(line number, record) for every record of the file."""
    with path.open(encoding="utf-8", newline="") as handle:
        if fmt == "csv":
            reader = csv.DictReader(handle)
            for record in reader:
                yield reader.line_num, record
            return
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                msg = f"{path}:{number}: not a JSON object ({exc.msg})"
                raise ConfigurationError(msg) from exc
            if not isinstance(record, dict):
                msg = f"{path}:{number}: each line must be a JSON object, got {type(record).__name__}"
                raise ConfigurationError(msg)
            yield number, record


def parse_time(value: Any) -> int:
    """ISO 8601 (a time without offset is UTC) or seconds since the epoch, in nanoseconds since the epoch."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return time_unix_nano(value)
    text = str(value).strip()
    try:
        return time_unix_nano(float(text))
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        msg = f"time {text!r} is neither ISO 8601 (2026-12-01T10:15:00Z) nor seconds since the epoch"
        raise ConfigurationError(msg) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return time_unix_nano(parsed)


def _value(raw: Any) -> float | str | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        return str(raw).lower()
    if isinstance(raw, int | float):
        return float(raw)
    try:
        return float(raw)
    except ValueError:
        return str(raw)


def content_id(kind: str, trace_id: str, span_id: str | None, time_ns: int, value: float | str | None) -> str:
    """The id of a row without one: the same event imported again gets the same id."""
    text = "\x1f".join([kind, trace_id, span_id or "", str(time_ns), "" if value is None else repr(value)])
    return "import:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _get(record: Mapping[str, Any], column: str) -> Any:
    value = record.get(column)
    return None if value == "" else value


def check_rows(
    records: Iterator[tuple[int, Mapping[str, Any]]],
    *,
    columns: Mapping[str, str],
    default_kind: str | None,
    request_ids: Mapping[str, tuple[str, str | None]] | None,
    skip_unmatched: bool,
) -> tuple[list[FeedbackRow], list[str], int]:
    """Checked rows, the problems found (one line each) and how many unmatched rows were skipped."""
    rows: list[FeedbackRow] = []
    problems: list[str] = []
    skipped = 0
    for line, record in records:
        try:
            kind = check_kind(_get(record, columns["kind"]) or default_kind)
            trace_id, span_id = _target(record, columns, request_ids)
            if trace_id is None:
                if skip_unmatched:
                    skipped += 1
                    continue
                request = _get(record, columns["request_id"])
                msg = f"request id {request!r} matches no span in the store and no row of the request map"
                raise ConfigurationError(msg)
            raw_time = _get(record, columns["time"])
            if raw_time is None:
                msg = f"no time (column {columns['time']!r}); map it with --column time=COLUMN"
                raise ConfigurationError(msg)
            time_ns = parse_time(raw_time)
            value = _value(_get(record, columns["value"]))
            given_id = _get(record, columns["id"])
            feedback_id = str(given_id) if given_id is not None else content_id(kind, trace_id, span_id, time_ns, value)
            rows.append(FeedbackRow(line, kind, trace_id, span_id, time_ns, value, feedback_id))
        except ConfigurationError as exc:
            problems.append(f"line {line}: {exc}")
    return rows, problems, skipped


def _target(
    record: Mapping[str, Any],
    columns: Mapping[str, str],
    request_ids: Mapping[str, tuple[str, str | None]] | None,
) -> tuple[str | None, str | None]:
    trace_id = _get(record, columns["trace_id"])
    if trace_id is not None:
        span_id = _get(record, columns["span_id"])
        return check_trace_id(str(trace_id)), check_span_id(str(span_id)) if span_id is not None else None
    request = _get(record, columns["request_id"])
    if request is None:
        msg = (
            f"neither a trace id (column {columns['trace_id']!r}) nor a request id (column "
            f"{columns['request_id']!r}); map yours with --column trace_id=COLUMN or --column request_id=COLUMN"
        )
        raise ConfigurationError(msg)
    if request_ids is None:
        msg = "rows name request ids: pass --store DIR or --request-map FILE so they can be mapped to traces"
        raise ConfigurationError(msg)
    return request_ids.get(str(request), (None, None))


def lookup_request_ids(store: str | os.PathLike[str], attribute: str, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{request id: (trace id, span id)}`` for the ids found on spans' ``attribute`` in the store."""
    from loratrace.store import query

    if not ids:
        return {}
    frame = query(
        store,
        "SELECT attributes[$attribute] AS request_id, min(trace_id) AS trace_id, min(span_id) AS span_id "
        "FROM spans WHERE attributes[$attribute] IN (SELECT unnest($ids)) GROUP BY 1",
        {"attribute": attribute, "ids": list(ids)},
    )
    return {row[0]: (row[1], row[2]) for row in frame.rows()}


def read_request_map(path: str | os.PathLike[str]) -> dict[str, tuple[str, str | None]]:
    """``{request id: (trace id, span id or None)}`` from a CSV with columns ``request_id``, ``trace_id`` and
    optionally ``span_id`` (e.g. an export of the gateway's request log)."""
    source = Path(path)
    if not source.is_file():
        msg = f"--request-map {str(source)!r} does not exist or is not a file"
        raise ConfigurationError(msg)
    mapping: dict[str, tuple[str, str | None]] = {}
    with source.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"request_id", "trace_id"} - set(reader.fieldnames or ())
        if missing:
            msg = f"--request-map {source} needs the columns request_id and trace_id (missing {sorted(missing)})"
            raise ConfigurationError(msg)
        for record in reader:
            try:
                span = record.get("span_id") or None
                target = check_trace_id(record["trace_id"]), check_span_id(span) if span else None
            except ConfigurationError as exc:
                msg = f"--request-map {source}:{reader.line_num}: {exc}"
                raise ConfigurationError(msg) from exc
            mapping[record["request_id"]] = target
    return mapping


def import_feedback(
    path: str | os.PathLike[str],
    *,
    endpoint: str,
    fmt: FileFormat | None = None,
    columns: Mapping[str, str] | None = None,
    default_kind: str | None = None,
    store: str | os.PathLike[str] | None = None,
    request_id_attribute: str = "gen_ai.request.id",
    skip_unmatched: bool = False,
    auth_token: str | None = None,
    request_map: str | os.PathLike[str] | None = None,
) -> ImportResult:
    """Check every row of ``path``, then send them all as feedback spans to the collector at ``endpoint``.

    Raises ``ConfigurationError`` listing the first bad rows (nothing is sent then), ``SendError`` when the
    collector refuses a batch (importing again is safe).
    """
    source = Path(path)
    if not source.is_file():
        msg = f"FILE {str(source)!r} does not exist or is not a file"
        raise ConfigurationError(msg)
    chosen = file_format(source, fmt)
    mapping = dict(columns or {field: field for field in FIELDS})
    records = list(read_records(source, chosen))
    request_ids: dict[str, tuple[str, str | None]] | None = None
    if request_map is not None:
        request_ids = read_request_map(request_map)
    if store is not None:
        wanted = sorted(
            {str(r[mapping["request_id"]]) for _, r in records if _get(r, mapping["request_id"])}
            - set(request_ids or ())
        )
        request_ids = {**lookup_request_ids(store, request_id_attribute, wanted), **(request_ids or {})}
    rows, problems, _ = check_rows(
        iter(records),
        columns=mapping,
        default_kind=default_kind,
        request_ids=request_ids,
        skip_unmatched=skip_unmatched,
    )
    if problems:
        shown = "\n  ".join(problems[:_MAX_REPORTED])
        more = f"\n  ... and {len(problems) - _MAX_REPORTED} more" if len(problems) > _MAX_REPORTED else ""
        msg = f"{source}: {len(problems)} bad row(s), nothing was sent:\n  {shown}{more}"
        raise ConfigurationError(msg)
    sender = SpanSender(endpoint, service_name="loratrace-feedback-import", auth_token=auth_token)
    for row in rows:
        record_feedback(
            row.kind,
            trace_id=row.trace_id,
            span_id=row.span_id,
            value=row.value,
            at=_EPOCH + dt.timedelta(microseconds=row.time_unix_nano // 1000),
            feedback_id=row.feedback_id,
            source=source.name,
            tracer_provider=sender.tracer_provider,
        )
    return ImportResult(rows=len(rows), sent=sender.send())
