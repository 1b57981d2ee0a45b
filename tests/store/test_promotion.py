"""The one table of promotion rules: every decoder, the ClickHouse relations and the docs read it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from loratrace.collector import decode
from loratrace.sources import clickhouse_sql
from loratrace.store import promotion, schema

DOCS = Path(__file__).resolve().parents[2] / "docs" / "promoted-columns.md"

# a value of each kind on the wire, and what its column then holds
_WIRE: dict[str, tuple[AnyValue, Any]] = {
    "string": (AnyValue(string_value="v1"), "v1"),
    "int": (AnyValue(int_value=7), 7),
    "float": (AnyValue(double_value=0.25), 0.25),
    "bool": (AnyValue(bool_value=True), True),
    "string_list": (
        AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="q"), AnyValue(string_value="v")])),
        ["q", "v"],
    ),
}
_FIRST_OF_ARRAY = AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="stop")]))

CASES = [
    pytest.param(rule, name, id=f"{rule.column}<-{name}")
    for rule in promotion.PROMOTIONS
    for name in (rule.sources[:1] if rule.kind == "string_list" else rule.sources)
]


def _request(attributes: dict[str, AnyValue]) -> ExportTraceServiceRequest:
    span = Span(
        trace_id=bytes(range(1, 17)),
        span_id=bytes(range(1, 9)),
        name="chat",
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_001_000_000_000,
        attributes=[KeyValue(key=k, value=v) for k, v in attributes.items()],
    )
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])


def _decoded(request: ExportTraceServiceRequest, *, compiled: bool) -> dict[str, Any]:
    buffer = decode.RowBuffer()
    if compiled:
        buffer.add_traces_bytes(request.SerializeToString())
    else:
        buffer.add_traces(request)
    return buffer.take()["spans"].row(0, named=True)


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "compiled"])
@pytest.mark.parametrize(("rule", "name"), CASES)
def test_every_source_of_every_rule_fills_its_column(rule: promotion.Promotion, name: str, compiled: bool) -> None:
    if compiled and not decode.fast_decoder_available():
        pytest.skip("the compiled decoder is not built here (tests/collector/test_fastdecode.py fails for that)")
    wire, expected = _WIRE[rule.kind]
    if name in rule.array_sources:
        wire, expected = _FIRST_OF_ARRAY, "stop"
    if rule.scale != 1.0:
        expected = expected * rule.scale
    assert _decoded(_request({name: wire}), compiled=compiled)[rule.column] == expected


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "compiled"])
@pytest.mark.parametrize("rule", [r for r in promotion.PROMOTIONS if len(r.sources) > 1], ids=lambda r: r.column)
def test_the_first_source_present_wins(rule: promotion.Promotion, compiled: bool) -> None:
    if compiled and not decode.fast_decoder_available():
        pytest.skip("the compiled decoder is not built here")
    first, second = rule.sources[-2:]  # the two of lowest priority: every source before them is absent
    values = {first: AnyValue(string_value="first"), second: AnyValue(string_value="second")}
    if rule.kind == "int":
        values = {first: AnyValue(int_value=1), second: AnyValue(int_value=2)}
    if rule.kind == "float":
        values = {first: AnyValue(double_value=1.0), second: AnyValue(double_value=2.0)}
    row = _decoded(_request(dict(reversed(values.items()))), compiled=compiled)
    assert row[rule.column] == {"string": "first", "int": 1, "float": 1.0 * rule.scale}[rule.kind]


def test_the_compiled_decoder_is_configured_with_exactly_the_table() -> None:
    configured = {(column, key, scale) for column, _kind, keys, scale in decode.promotion_rules() for key in keys}
    expected = {(case.values[0].column, case.values[1], case.values[0].scale) for case in CASES}
    assert configured == expected
    kinds = {column: kind for column, kind, _keys, _scale in decode.promotion_rules()}
    assert kinds == {r.column: "list" if r.kind == "string_list" else r.kind for r in promotion.PROMOTIONS}
    assert decode._exception_fallback() == "error_type"


@pytest.mark.parametrize("rule", promotion.PROMOTIONS, ids=lambda r: r.column)
def test_the_clickhouse_expression_reads_every_source_in_order(rule: promotion.Promotion) -> None:
    expression = clickhouse_sql.promoted_expression(rule.column)
    names = rule.sources[:1] if rule.kind == "string_list" else rule.sources
    positions = [expression.find(clickhouse_sql.literal(name)) for name in names]
    assert -1 not in positions
    assert positions == sorted(positions)


def test_the_schema_and_the_views_take_their_promoted_columns_from_the_table() -> None:
    assert list(schema.PROMOTED_TYPES) == [rule.column for rule in promotion.PROMOTIONS]
    assert [c for c in schema.SPANS if c in schema.PROMOTED_TYPES] == list(schema.PROMOTED_TYPES)
    on_events = [r.column for r in promotion.PROMOTIONS if "span_events" in r.copied_to]
    assert [c for c in schema.SPAN_EVENTS if c in schema.PROMOTED_TYPES] == on_events
    on_metrics = [r.column for r in promotion.PROMOTIONS if "metrics" in r.copied_to]
    assert [c for c in schema.METRICS if c in schema.PROMOTED_TYPES] == on_metrics


def test_loratrace_columns_are_named_after_their_attribute() -> None:
    for rule in promotion.PROMOTIONS:
        own = [name for name in rule.sources if name.startswith("loratrace.")]
        if own:
            assert rule.column == own[0].removeprefix("loratrace.").replace(".", "_"), rule


def test_a_rule_without_sources_or_with_a_stray_array_source_is_refused() -> None:
    with pytest.raises(ValueError, match="names no source"):
        promotion.Promotion("x", "string", (), "nothing")
    with pytest.raises(ValueError, match="array_sources must be among its sources"):
        promotion.Promotion("x", "string", ("a",), "stray", array_sources=frozenset(("b",)))


def test_the_docs_table_is_generated_from_the_table() -> None:
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(r"<!-- promoted-columns:begin -->\n(.*)<!-- promoted-columns:end -->", text, re.DOTALL)
    assert found, f"{DOCS} lost its promoted-columns markers"
    assert found[1] == promotion.markdown_table(), (
        f"{DOCS.name} is out of date: regenerate its table with "
        "python -c \"from loratrace.store.promotion import markdown_table; print(markdown_table(), end='')\""
    )


_ONE_EDIT = r"""
import sys, types
from pathlib import Path

import loratrace.store

path = Path(loratrace.store.__file__).with_name("promotion.py")
marker = "PROMOTIONS: Final[tuple[Promotion, ...]] = (\n"
rule = '    Promotion("judge_score", "float", ("app.judge.score", "judge.score"), "a column added in one edit"),\n'
source = path.read_text()
assert marker in source
module = types.ModuleType("loratrace.store.promotion")
module.__file__ = str(path)
sys.modules[module.__name__] = module
exec(compile(source.replace(marker, marker + rule), str(path), "exec"), module.__dict__)
loratrace.store.promotion = module

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from loratrace.collector import decode
from loratrace.sources import clickhouse_sql
from loratrace.store import schema

span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="chat", start_time_unix_nano=1, end_time_unix_nano=2,
            attributes=[KeyValue(key="judge.score", value=AnyValue(double_value=0.5))])
request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
python = decode.RowBuffer()
python.add_traces(request)
compiled = decode.RowBuffer()
compiled.add_traces_bytes(request.SerializeToString())
print(schema.SPANS["judge_score"], python.take()["spans"]["judge_score"].to_list(),
      compiled.take()["spans"]["judge_score"].to_list(), decode.fast_decoder_available(),
      "'judge.score'" in clickhouse_sql.promoted_expression("judge_score"),
      "judge_score" in clickhouse_sql.materialized_ddl())
"""


def test_adding_a_promoted_column_is_one_edit_of_the_table() -> None:
    """The table with one more rule (and nothing else changed) reaches the schema, both decoders and ClickHouse."""
    root = str(Path(promotion.__file__).parents[2])  # the checkout under test, whatever is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-c", _ONE_EDIT]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    compiled = str(decode.fast_decoder_available())
    assert result.stdout.split() == ["Float64", "[0.5]", "[0.5]", compiled, "True", "True"]
