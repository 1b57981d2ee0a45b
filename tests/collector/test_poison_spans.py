"""Spans built to hurt: a million attributes, huge values, repeated keys. None may stall the store writer."""

from __future__ import annotations

import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from polars.testing import assert_frame_equal

from loratrace.collector import decode

fast_only = pytest.mark.skipif(not decode.fast_decoder_available(), reason="compiled decoder not built")


def _request(attributes: list[KeyValue]) -> ExportTraceServiceRequest:
    span = Span(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        name="poison",
        start_time_unix_nano=1,
        end_time_unix_nano=2,
        attributes=attributes,
    )
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])


def _int_attributes(n: int, *, repeat_every: int = 0) -> list[KeyValue]:
    keys = (f"k{i % repeat_every}" if repeat_every else f"k{i}" for i in range(n))
    return [KeyValue(key=key, value=AnyValue(int_value=i)) for i, key in enumerate(keys)]


@fast_only
def test_long_attribute_lists_with_repeated_keys_decode_like_python() -> None:
    """Past 128 entries the compiled decoder resolves repeated keys with its heap table: same rows as Python."""
    request = _request(_int_attributes(5_000, repeat_every=1_700))
    python = decode.RowBuffer()
    python.add_traces(request)
    fast = decode.RowBuffer()
    fast.add_traces_bytes(request.SerializeToString())
    expected, actual = python.take(), fast.take()
    assert_frame_equal(actual["spans"], expected["spans"], check_exact=True)
    assert actual["spans"]["attributes"][0].count('"k') == 1_700


@fast_only
def test_a_span_with_300k_attributes_decodes_in_linear_time() -> None:
    """300,000 attributes took 23 s when repeated keys were looked for pairwise; linear, it takes ~0.2 s."""
    payload = _request(_int_attributes(300_000)).SerializeToString()
    buffer = decode.RowBuffer()
    started = time.monotonic()
    buffer.add_traces_bytes(payload)
    elapsed = time.monotonic() - started
    assert buffer.take()["spans"].height == 1
    assert elapsed < 10, f"{elapsed:.1f} s to decode one span"
