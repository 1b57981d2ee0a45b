"""A fixture store for the incident queries and analyses, and the same data as plain Python rows.

The store is written by the real embedded exporter from seeded traffic (a swap, a prompt change, planted
errors and a slow adapter), a paired replay on another route, and three hand-made spans: a failing server span
above a generation whose evaluation failed (a trace that must not count as "all spans succeeded"), and an
adapter generation without id or rank. Expected results in the tests are computed from :data:`Fixture.rows`,
never from the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from loratrace import semconv
from loratrace.demo.traffic import Effect, EvalRecord, GenerationRecord, Traffic, records, write_store

START = datetime(2026, 3, 2, 8, tzinfo=timezone.utc)
SWAP_AT = START + timedelta(hours=1)
PROMPT_CHANGE_AT = START + timedelta(hours=2)
EPOCH = datetime(1970, 1, 1)

LIVE = Traffic(
    start=START,
    duration=timedelta(hours=3),
    requests_per_hour=40,
    effects=(
        Effect("a1", "error", 0.2, cohort="smb"),
        Effect("a1", "fallback", 0.1),
        Effect("a2", "duration_ms", 900.0),
        Effect("a2", "schema_retry", 0.2),
        Effect("a1", "refusal", 0.1),
    ),
    swaps=(("a2", SWAP_AT),),
    prompt_changes=(("v2", PROMPT_CHANGE_AT),),
    seed=21,
)
REPLAY = Traffic(
    start=START,
    duration=timedelta(hours=1),
    requests_per_hour=6,
    cohorts=("golden",),
    design="paired",
    route="replay",
    seed=22,
    effects=(Effect("a1", "eval_pass", -0.5),),
)


def _hand_made() -> list[GenerationRecord]:
    at = int((START + timedelta(minutes=30)).timestamp()) * 10**9
    trace = "0123456789abcdef0123456789abcdef"
    root = GenerationRecord(
        trace_id=trace,
        span_id="00000000000000aa",
        name="POST /v1/chat",
        start_ns=at,
        end_ns=at + 900 * 10**6,
        attributes={semconv.ROUTE_NAME: "support", semconv.COHORT: "smb"},
        error="HTTPError: 502 from the upstream guard",
        kind="SERVER",
    )
    child_attributes = dict(next(r for r in records(LIVE) if r.adapter == "a1").attributes)
    child_attributes[semconv.COHORT] = "smb"
    child = GenerationRecord(
        trace_id=trace,
        span_id="00000000000000bb",
        name="chat a1",
        start_ns=at + 10**6,
        end_ns=at + 500 * 10**6,
        attributes=child_attributes,
        evals=(EvalRecord("quality", False, 0.1, at + 600 * 10**6),),
        parent_span_id="00000000000000aa",
    )
    legacy = GenerationRecord(
        trace_id="fedcba9876543210fedcba9876543210",
        span_id="00000000000000cc",
        name="chat legacy-ft",
        start_ns=at + 5 * 10**9,
        end_ns=at + 6 * 10**9,
        attributes={
            semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_CHAT,
            semconv.GEN_AI_RESPONSE_MODEL: "legacy-ft",
            semconv.ADAPTER_NAME: "legacy-ft",
            semconv.BASE_MODEL_NAME: "tiny-llama",
            semconv.ROUTE_NAME: "support",
            semconv.COHORT: "enterprise",
        },
    )
    return [root, child, legacy]


@dataclass
class Fixture:
    store: Path
    records: list[GenerationRecord]
    rows: list[dict[str, Any]]


def row_of(record: GenerationRecord) -> dict[str, Any]:
    """What the store should hold for a record, computed from the record alone."""
    a = record.attributes
    finish = a.get(semconv.GEN_AI_RESPONSE_FINISH_REASONS)
    ttft = a.get(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
    return {
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "parent_span_id": record.parent_span_id,
        "name": record.name,
        "kind": record.kind,
        "start_ns": record.start_ns,
        "end_ns": record.end_ns,
        "start_time": EPOCH + timedelta(microseconds=record.start_ns // 1000),
        "duration_ms": (record.end_ns - record.start_ns) / 1e6,
        "status_code": "UNSET" if record.error is None else "ERROR",
        "status_message": record.error,
        "operation_name": a.get(semconv.GEN_AI_OPERATION_NAME),
        "adapter_name": a.get(semconv.ADAPTER_NAME),
        "adapter_id": a.get(semconv.ADAPTER_ID),
        "adapter_type": a.get(semconv.ADAPTER_TYPE),
        "adapter_rank": a.get(semconv.ADAPTER_RANK),
        "adapter_alpha": a.get(semconv.ADAPTER_ALPHA),
        "adapter_merged": a.get(semconv.ADAPTER_MERGED),
        "base_model_name": a.get(semconv.BASE_MODEL_NAME),
        "model_quantization_method": a.get(semconv.QUANTIZATION_METHOD),
        "model_quantization_bits": a.get(semconv.QUANTIZATION_BITS),
        "model": a.get(semconv.GEN_AI_RESPONSE_MODEL),
        "variant": a.get(semconv.VARIANT),
        "route_name": a.get(semconv.ROUTE_NAME),
        "cohort": a.get(semconv.COHORT),
        "prompt_version": a.get(semconv.PROMPT_VERSION),
        "example_id": a.get(semconv.EXAMPLE_ID),
        "error_type": a.get(semconv.ERROR_TYPE),
        "fallback": a.get(semconv.FALLBACK),
        "fallback_reason": a.get(semconv.FALLBACK_REASON),
        "schema_attempts": a.get(semconv.SCHEMA_ATTEMPTS),
        "schema_valid": a.get(semconv.SCHEMA_VALID),
        "finish_reason": finish[0] if finish else None,
        "ttft_ms": ttft * 1000 if ttft is not None else None,
        "input_tokens": a.get(semconv.GEN_AI_USAGE_INPUT_TOKENS),
        "output_tokens": a.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS),
        "evals": list(record.evals),
        "served_by": a.get(semconv.ADAPTER_NAME)
        or (f"(base) {a[semconv.BASE_MODEL_NAME]}" if semconv.BASE_MODEL_NAME in a else None),
    }


def build(folder: Path) -> Fixture:
    generated = [*records(LIVE), *records(REPLAY), *_hand_made()]
    store = folder / "store"
    written = write_store(generated, store)
    assert written == len(generated)
    return Fixture(store=store, records=generated, rows=[row_of(r) for r in generated])
