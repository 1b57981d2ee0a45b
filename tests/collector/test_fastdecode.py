"""The compiled OTLP decoder (``_fastdecode_c/``) against the Python decoder it accelerates.

Both paths decode the same ``ExportTraceServiceRequest`` into a ``RowBuffer``; every table they produce must be
identical, for requests hypothesis generates over every ``AnyValue`` kind (unicode and control characters,
empty values, nested arrays and key-value lists, big ints, NaN / infinity / -0.0 doubles, bytes), duplicate
attribute keys, the promoted attribute names with well- and ill-typed values, events (exceptions and
evaluation results) and links.
"""

from __future__ import annotations

import math

import polars as pl
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from polars.testing import assert_frame_equal

from loratrace import semconv
from loratrace.collector import decode
from loratrace.collector.store_writer import duplicates
from loratrace.store import promotion, schema
from tests.support.otlp_requests import template_request

_fastdecode = decode._fastdecode
fast_only = pytest.mark.skipif(not decode.fast_decoder_available(), reason="compiled decoder not built")

# --------------------------------------------------------------------------------------------------------------
# strategies

INT64 = st.integers(-(2**63), 2**63 - 1)
DOUBLES = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 0.1, 1e16, 1e-7, 2.0**53, 1.7976931348623157e308, 5e-324]
)
TEXT = st.text(max_size=12) | st.sampled_from(["", "é", "日本", '"\\/\n\r\t\b\f\x00\x1f\x7f', "\u2028", "😀"])
ODD_KEYS = ["service.name", "exception.type", semconv.GEN_AI_EVALUATION_NAME, "x", "", 'ünï\n"', "a.b"]
KEYS = st.sampled_from([*sorted(promotion.SOURCE_ATTRIBUTES), *ODD_KEYS]) | st.text(max_size=6)
SCALARS = st.one_of(
    st.builds(AnyValue, string_value=TEXT),
    st.builds(AnyValue, bool_value=st.booleans()),
    st.builds(AnyValue, int_value=INT64 | st.integers(-300, 300) | st.sampled_from([2**53, 2**53 + 1])),
    st.builds(AnyValue, double_value=DOUBLES),
    st.builds(AnyValue, bytes_value=st.binary(max_size=8)),
    st.builds(AnyValue, string_value_strindex=st.integers(-(2**31), 2**31 - 1)),
    st.just(AnyValue()),
)


def _nest(children: st.SearchStrategy[AnyValue]) -> st.SearchStrategy[AnyValue]:
    return st.one_of(
        st.builds(lambda vs: AnyValue(array_value=ArrayValue(values=vs)), st.lists(children, max_size=3)),
        st.builds(
            lambda kvs: AnyValue(kvlist_value=KeyValueList(values=kvs)),
            st.lists(st.builds(KeyValue, key=KEYS, value=children), max_size=3),
        ),
    )


ANY = st.recursive(SCALARS, _nest, max_leaves=8)
STRING_ARRAYS = st.builds(
    lambda xs: AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=x) for x in xs])),
    st.lists(TEXT, max_size=3),
)
# mostly values a well-behaved producer sends (the compiled promotion path), sometimes anything
WELL_TYPED = st.one_of(
    st.builds(AnyValue, string_value=TEXT),
    st.builds(AnyValue, int_value=st.integers(-(2**53), 2**53)),
    st.builds(AnyValue, double_value=st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(AnyValue, bool_value=st.booleans()),
    STRING_ARRAYS,
)
ATTRIBUTE = st.builds(KeyValue, key=KEYS, value=st.one_of(WELL_TYPED, WELL_TYPED, ANY)) | st.builds(KeyValue, key=KEYS)
ATTRIBUTES = st.lists(ATTRIBUTE, max_size=8)
TIMES = st.integers(0, 2**63 - 1) | st.integers(1_700_000_000_000_000_000, 1_800_000_000_000_000_000)


def _event(name: str, attributes: list[KeyValue], time: int) -> Span.Event:
    return Span.Event(name=name, attributes=attributes, time_unix_nano=time)


EXCEPTION_ATTRS = st.lists(
    st.builds(KeyValue, key=st.sampled_from(["exception.type", "exception.message"]), value=ANY), max_size=3
)
EVALUATION_KEYS = st.sampled_from(
    [
        semconv.GEN_AI_EVALUATION_NAME,
        semconv.GEN_AI_EVALUATION_SCORE_VALUE,
        semconv.GEN_AI_EVALUATION_SCORE_LABEL,
        semconv.EVALUATION_PASSED,
        semconv.GEN_AI_EVALUATION_EXPLANATION,
    ]
)
# the evaluation attributes with every value kind: the compiled path converts most, leaves the rest to Python
EVALUATION_ATTRS = st.lists(
    st.builds(
        KeyValue,
        key=EVALUATION_KEYS,
        value=st.one_of(
            WELL_TYPED,
            SCALARS,
            st.sampled_from(["true", "FALSE", "True ", "yes"]).map(lambda t: AnyValue(string_value=t)),
            ANY,
        ),
    )
    | ATTRIBUTE,
    max_size=6,
)
EVENTS = st.lists(
    st.one_of(
        st.builds(_event, st.just("exception"), EXCEPTION_ATTRS, TIMES),
        st.builds(_event, st.just(semconv.GEN_AI_EVALUATION_RESULT_EVENT), ATTRIBUTES, TIMES),
        st.builds(_event, st.just(semconv.GEN_AI_EVALUATION_RESULT_EVENT), EVALUATION_ATTRS, TIMES),
        st.builds(_event, TEXT, ATTRIBUTES, TIMES),
    ),
    max_size=3,
)
LINKS = st.lists(
    st.builds(
        Span.Link,
        trace_id=st.binary(min_size=16, max_size=16),
        span_id=st.binary(min_size=8, max_size=8),
        trace_state=TEXT,
        attributes=ATTRIBUTES,
    ),
    max_size=2,
)


@st.composite
def spans(draw: st.DrawFn) -> Span:
    return Span(
        trace_id=draw(st.binary(min_size=16, max_size=16) | st.binary(max_size=20)),
        span_id=draw(st.binary(min_size=8, max_size=8) | st.binary(max_size=10)),
        parent_span_id=draw(st.binary(max_size=8)),
        trace_state=draw(TEXT),
        name=draw(TEXT),
        kind=draw(st.integers(-1, 7)),
        start_time_unix_nano=draw(TIMES),
        end_time_unix_nano=draw(TIMES),
        attributes=draw(ATTRIBUTES),
        events=draw(st.just([]) | EVENTS),
        links=draw(st.just([]) | LINKS),
        status=Status(code=draw(st.integers(-1, 4)), message=draw(TEXT)),
        flags=draw(st.integers(0, 2**32 - 1)),
        dropped_attributes_count=draw(st.integers(0, 5)),
    )


RESOURCE_ATTRIBUTES = st.lists(
    st.builds(KeyValue, key=st.sampled_from(["service.name", "host.name", "x"]), value=SCALARS), max_size=4
)
REQUESTS = st.builds(
    lambda groups: ExportTraceServiceRequest(resource_spans=groups),
    st.lists(
        st.builds(
            lambda attrs, scopes: ResourceSpans(resource=Resource(attributes=attrs), scope_spans=scopes),
            RESOURCE_ATTRIBUTES,
            st.lists(
                st.builds(
                    lambda name, version, items: ScopeSpans(
                        scope=InstrumentationScope(name=name, version=version), spans=items
                    ),
                    TEXT,
                    TEXT,
                    st.lists(spans(), max_size=4),
                ),
                max_size=2,
            ),
        ),
        max_size=2,
    ),
)

# --------------------------------------------------------------------------------------------------------------
# helpers


def _python(request: ExportTraceServiceRequest) -> dict[str, pl.DataFrame]:
    buffer = decode.RowBuffer()
    buffer.add_traces(request)
    return buffer.take()


def _fast(payload: bytes) -> dict[str, pl.DataFrame]:
    buffer = decode.RowBuffer()
    buffer.add_traces_bytes(payload)
    return buffer.take()


def _assert_same(expected: dict[str, pl.DataFrame], actual: dict[str, pl.DataFrame]) -> None:
    assert sorted(actual) == sorted(expected)
    for table, frame in expected.items():
        assert_frame_equal(actual[table], frame, check_exact=True)


def _outcome(fn, arg):  # type: ignore[no-untyped-def]
    try:
        return "ok", fn(arg)
    except Exception as exc:  # the reference may reject an odd request: the fast path must agree
        return "error", type(exc)


# --------------------------------------------------------------------------------------------------------------
# tests


def test_the_compiled_decoder_is_built_and_used() -> None:
    """CI builds the extension with ``pip install -e .``; a silent fallback to Python must fail here."""
    assert decode.fast_decoder_available(), (
        "loratrace/collector/_fastdecode_c/ was not compiled: run `pip install -e .` with a C compiler"
    )
    payload = template_request(64).SerializeToString()
    buffer = decode.RowBuffer()
    decoded = decode._FAST_DECODER.decode_traces(payload, *buffer._batches)
    assert decoded == (64, [], False)  # all 64 spans by C, none left to Python, promoted columns typed in C
    assert buffer._batches[0].rows() == 64


@fast_only
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REQUESTS)
def test_generated_requests_decode_identically(request: ExportTraceServiceRequest) -> None:
    kind, expected = _outcome(_python, request)
    actual_kind, actual = _outcome(_fast, request.SerializeToString())
    assert actual_kind == kind
    if kind == "ok":
        _assert_same(expected, actual)
    else:
        assert actual == expected


@fast_only
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(REQUESTS, st.booleans()), min_size=2, max_size=4))
def test_a_buffer_mixing_both_paths_equals_the_python_one(batch: list[tuple[ExportTraceServiceRequest, bool]]) -> None:
    """Requests the store writer decodes in C and others it leaves to Python share one flush."""
    reference, mixed = decode.RowBuffer(), decode.RowBuffer()
    for request, via_python in batch:
        reference.add_traces(request)
        if via_python:
            mixed.add_traces(request)
        else:
            mixed.add_traces_bytes(request.SerializeToString())
    assert mixed.span_count == reference.span_count
    _assert_same(reference.take(), mixed.take())


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["set", "delete", "insert", "cut"]), st.integers(0, 10**6), st.binary(min_size=1, max_size=4)
    ),
    min_size=1,
    max_size=3,
)


def _mutate(payload: bytes, mutations: list[tuple[str, int, bytes]]) -> bytes:
    data = bytearray(payload)
    for op, position, value in mutations:
        if not data:
            break
        at = position % len(data)
        if op == "set":
            data[at] = value[0]
        elif op == "delete":
            del data[at : at + len(value)]
        elif op == "insert":
            data[at:at] = value
        else:
            del data[at:]
    return bytes(data)


@fast_only
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REQUESTS, MUTATIONS)
def test_damaged_payloads_are_rejected_or_decoded_exactly_like_upb(
    request: ExportTraceServiceRequest, mutations: list[tuple[str, int, bytes]]
) -> None:
    """Byte-level damage (odd wire types, bad lengths, bad UTF-8, unknown fields): the compiled path must raise
    exactly when upb does, append nothing then, and otherwise decode what upb decodes."""
    payload = _mutate(request.SerializeToString(), mutations)
    buffer = decode.RowBuffer()
    try:
        reference = ExportTraceServiceRequest.FromString(payload)
    except DecodeError:
        with pytest.raises(DecodeError):
            buffer.add_traces_bytes(payload)
        assert len(buffer) == 0
        assert buffer.take() == {}
        return
    kind, expected = _outcome(_python, reference)
    actual_kind, actual = _outcome(_fast, payload)
    assert actual_kind == kind
    if kind == "ok":
        _assert_same(expected, actual)


@fast_only
@pytest.mark.parametrize("evaluations", [False, True], ids=["plain", "evaluation-events"])
def test_the_benchmark_request_decodes_identically(evaluations: bool) -> None:
    request = template_request(512, evaluations=evaluations)
    _assert_same(_python(request), _fast(request.SerializeToString()))


@fast_only
def test_evaluation_events_and_links_are_decoded_in_c() -> None:
    """Every evaluated span carries an evaluation event: its rows must not cost a second, Python, parse."""
    request = template_request(32, evaluations=True)
    for index, span in enumerate(request.resource_spans[0].scope_spans[0].spans):
        span.links.add(trace_id=bytes(16), span_id=index.to_bytes(8, "big"), trace_state="k=v")
    buffer = decode.RowBuffer()
    spans, events, links = buffer._batches
    assert decode._FAST_DECODER.decode_traces(request.SerializeToString(), spans, events, links) == (32, [], False)
    assert (spans.rows(), events.rows(), links.rows()) == (32, 32, 32)
    frames = _fast(request.SerializeToString())
    _assert_same(_python(request), frames)
    assert frames["span_events"]["eval_passed"].null_count() == 0


@fast_only
def test_an_evaluation_score_sent_as_text_leaves_the_event_rows_to_python() -> None:
    """float("0.5") is Python's number parser: the compiled path hands such a request's event rows back."""
    event = Span.Event(
        name=semconv.GEN_AI_EVALUATION_RESULT_EVENT,
        attributes=[KeyValue(key=semconv.GEN_AI_EVALUATION_SCORE_VALUE, value=AnyValue(string_value=" 0.5"))],
    )
    other = Span(trace_id=b"u" * 16, span_id=b"v" * 8, events=[Span.Event(name="plain")])
    span = Span(trace_id=b"t" * 16, span_id=b"s" * 8, events=[event])
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[other, span])])])
    buffer = decode.RowBuffer()
    spans, events, links = buffer._batches
    assert decode._FAST_DECODER.decode_traces(request.SerializeToString(), spans, events, links) == (2, [0, 1], False)
    assert events.rows() == 0  # the first span's event row was undone too, so the rows keep span order
    frames = _fast(request.SerializeToString())
    _assert_same(_python(request), frames)
    assert frames["span_events"]["eval_score"].to_list() == [None, 0.5]


# --------------------------------------------------------------------------------------------------------------
# what the compiled module declares


_WIRE_TYPES = {
    FieldDescriptor.TYPE_STRING: 2,
    FieldDescriptor.TYPE_BYTES: 2,
    FieldDescriptor.TYPE_MESSAGE: 2,
    FieldDescriptor.TYPE_DOUBLE: 1,
    FieldDescriptor.TYPE_FIXED64: 1,
    FieldDescriptor.TYPE_FIXED32: 5,
    FieldDescriptor.TYPE_BOOL: 0,
    FieldDescriptor.TYPE_ENUM: 0,
    FieldDescriptor.TYPE_INT32: 0,
    FieldDescriptor.TYPE_INT64: 0,
    FieldDescriptor.TYPE_UINT32: 0,
}


@fast_only
def test_the_otlp_field_numbers_match_the_proto_descriptors() -> None:
    """Every field number (and wire type) the walkers use, against opentelemetry-proto; and every field of the
    walked messages is named, so a field added upstream shows up here."""
    pool = descriptor_pool.Default()
    fields = _fastdecode.FIELDS
    messages = {message for message, _ in fields}
    assert {Span.DESCRIPTOR.full_name, Span.Event.DESCRIPTOR.full_name, Span.Link.DESCRIPTOR.full_name} <= messages
    for message in messages:
        descriptor = pool.FindMessageTypeByName(message)
        expected = {(message, f.name): (f.number, _WIRE_TYPES[f.type]) for f in descriptor.fields}
        assert {k: v for k, v in fields.items() if k[0] == message} == expected


@fast_only
def test_the_compiled_batches_fill_the_store_tables() -> None:
    """The column order is the module's; the names must be the schema's, with nothing missing or extra."""
    assert set(_fastdecode.promoted_columns()) == set(schema.PROMOTED_TYPES)
    spans = set(decode._fastdecode.SpanBatch("spans").columns()) - {"exception_type"}
    assert spans == set(schema.SPANS)
    assert set(_fastdecode.SpanBatch("span_events").columns()) == set(schema.SPAN_EVENTS)
    assert set(_fastdecode.SpanBatch("span_links").columns()) == set(schema.SPAN_LINKS)


@fast_only
@pytest.mark.parametrize(
    ("rules", "message"),
    [
        pytest.param([("x", "decimal", ("a",))], "kind must be string, int, float, bool or list", id="kind"),
        pytest.param([("x", "string", ("a",)), ("x", "int", ("b",))], "defined twice", id="twice"),
        pytest.param([("x", "string", ("a",), 2.0)], "only a float column takes a scale", id="scale"),
        pytest.param([("x", "string", "a")], "not one string", id="keys-as-one-string"),
    ],
)
def test_bad_promotion_rules_are_refused_and_keep_the_configuration(rules: list, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        _fastdecode.configure(rules)
    assert _fastdecode.promoted_columns() == tuple(schema.PROMOTED_TYPES)
    request = template_request(4)
    _assert_same(_python(request), _fast(request.SerializeToString()))


@fast_only
@pytest.mark.parametrize(
    ("value", "expected_json"),
    [
        pytest.param(AnyValue(double_value=math.nan), '"NaN"', id="nan"),
        pytest.param(AnyValue(double_value=math.inf), '"Infinity"', id="inf"),
        pytest.param(AnyValue(double_value=-math.inf), '"-Infinity"', id="-inf"),
        pytest.param(AnyValue(double_value=-0.0), "-0.0", id="-0.0"),
        pytest.param(AnyValue(double_value=1e-7), "1e-07", id="repr"),
        pytest.param(AnyValue(int_value=-(2**63)), str(-(2**63)), id="int64-min"),
        pytest.param(AnyValue(bytes_value=b"\x00\xff"), '"00ff"', id="bytes-hex"),
        pytest.param(AnyValue(string_value='é"\\\n\x01'), '"é\\"\\\\\\n\\u0001"', id="escapes"),
        pytest.param(AnyValue(), "null", id="empty"),
        pytest.param(
            AnyValue(array_value=ArrayValue(values=[AnyValue(double_value=math.nan), AnyValue()])),
            '["NaN",null]',
            id="nested-nan",
        ),
    ],
)
def test_attribute_json_spelling(value: AnyValue, expected_json: str) -> None:
    """NaN and infinities are JSON strings at any depth (JSON has no such numbers); other floats keep repr."""
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            Span(
                                trace_id=b"t" * 16,
                                span_id=b"s" * 8,
                                attributes=[KeyValue(key="k", value=value), KeyValue(key="ok", value=value)],
                            )
                        ]
                    )
                ]
            )
        ]
    )
    expected = "{" + f'"k":{expected_json},"ok":{expected_json}' + "}"
    assert _python(request)["spans"]["attributes"].to_list() == [expected]
    assert _fast(request.SerializeToString())["spans"]["attributes"].to_list() == [expected]


@fast_only
def test_duplicate_keys_keep_the_first_position_and_the_last_value() -> None:
    kvs = [
        KeyValue(key="a", value=AnyValue(int_value=1)),
        KeyValue(key="b", value=AnyValue(int_value=2)),
        KeyValue(key="a", value=AnyValue(string_value="last")),
        KeyValue(key=semconv.ADAPTER_NAME, value=AnyValue(string_value="first")),
        KeyValue(key=semconv.ADAPTER_NAME, value=AnyValue(string_value="second")),
    ]
    span = Span(trace_id=b"t" * 16, span_id=b"s" * 8, attributes=kvs)
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
    frame = _fast(request.SerializeToString())["spans"]
    assert frame["attributes"].to_list() == ['{"a":"last","b":2,"loratrace.adapter.name":"second"}']
    assert frame["adapter_name"].to_list() == ["second"]


@fast_only
def test_an_ill_typed_promoted_attribute_is_promoted_by_python() -> None:
    """``adapter.rank`` sent as a string: the C decoder leaves typing to promote_frame ("hard")."""
    span = Span(
        trace_id=b"t" * 16,
        span_id=b"s" * 8,
        attributes=[KeyValue(key=semconv.ADAPTER_RANK, value=AnyValue(string_value="16"))],
    )
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
    buffer = decode.RowBuffer()
    decoded = decode._FAST_DECODER.decode_traces(request.SerializeToString(), *buffer._batches)
    assert decoded == (1, [], True)
    assert _fast(request.SerializeToString())["spans"]["adapter_rank"].to_list() == [16]


@fast_only
def test_non_canonical_wire_forms_are_left_to_upb() -> None:
    """A repeated singular message (``status`` twice: protobuf merges them) is decoded by the Python path."""
    span = Span(trace_id=b"t" * 16, span_id=b"s" * 8, name="n", status=Status(code=2))
    extra_status = Span(status=Status(message="merged")).SerializeToString()
    span_bytes = span.SerializeToString() + extra_status
    scope = b"\x12" + _varint(len(span_bytes)) + span_bytes  # ScopeSpans.spans
    resource = b"\x12" + _varint(len(scope)) + scope  # ResourceSpans.scope_spans
    payload = b"\x0a" + _varint(len(resource)) + resource  # ExportTraceServiceRequest.resource_spans
    buffer = decode.RowBuffer()
    assert decode._FAST_DECODER.decode_traces(payload, *buffer._batches) is None
    frame = _fast(payload)["spans"]
    assert frame.select("status_code", "status_message").row(0) == ("ERROR", "merged")


@fast_only
def test_invalid_utf8_raises_like_upb_and_appends_nothing() -> None:
    good = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(scope_spans=[ScopeSpans(spans=[Span(trace_id=b"t" * 16, span_id=b"s" * 8, name="ab")])])
        ]
    ).SerializeToString()
    bad = good.replace(b"ab", b"a\xff")
    buffer = decode.RowBuffer()
    buffer.add_traces_bytes(good)
    with pytest.raises(DecodeError):
        buffer.add_traces_bytes(bad)
    assert buffer.take()["spans"]["name"].to_list() == ["ab"]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# --------------------------------------------------------------------------------------------------------------
# the duplicate window

IDS = st.tuples(st.integers(0, 6), st.integers(0, 3))


def _ids_frame(pairs: list[tuple[int, int]]) -> pl.DataFrame:
    """Spans keyed by small integers; span index 3 gets a malformed (short) id, which the C window leaves out."""
    return pl.DataFrame(
        {
            "trace_id": [f"{t:032x}" for t, _ in pairs],
            "span_id": [f"{s:016x}" if s != 3 else "0bad" for _, s in pairs],
            "n": list(range(len(pairs))),
        }
    )


@fast_only
@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.lists(st.lists(IDS, max_size=6), max_size=6))
def test_the_key_window_forgets_the_oldest_keys_first(capacity: int, batches: list[list[tuple[int, int]]]) -> None:
    """Against a model: a key is fresh unless one of the last ``capacity`` remembered keys equals it."""
    window = duplicates.RecentKeys(capacity)
    remembered: list[tuple[int, int]] = []
    for batch in batches:
        pairs = [p for p in batch if p[1] != 3]
        expected = []
        for pair in pairs:
            fresh = pair not in remembered
            expected.append(fresh)
            if fresh:
                remembered = [*remembered, pair][-capacity:]
        assert window.keep(_ids_frame(pairs)).to_list() == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(IDS, max_size=8), max_size=5))
def test_drop_duplicates_keeps_the_first_of_each_span_once(batches: list[list[tuple[int, int]]]) -> None:
    """With and without the compiled window (and with malformed ids mixed in): each key is kept once, first."""
    windows = [duplicates.RecentKeys(1000)]
    fallback = duplicates.RecentKeys(1000)
    fallback.fast = None
    windows.append(fallback)
    seen: set[tuple[int, int]] = set()
    for batch in batches:
        expected = []
        for index, pair in enumerate(batch):
            if pair not in seen:
                seen.add(pair)
                expected.append(index)
        for window in windows:
            frames = {"spans": _ids_frame(batch)}
            dropped = duplicates.drop_duplicates(frames, window)
            assert frames["spans"]["n"].to_list() == expected
            assert dropped == len(batch) - len(expected)
