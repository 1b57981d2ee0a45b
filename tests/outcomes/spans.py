"""Generation spans with chosen times and release metadata, sent over real OTLP to a real collector.

The analyses need traffic spread over hours or days of simulated time, which a tiny model cannot produce in a
test's seconds: these are real SDK spans with the attributes the instrumentors set, and explicit start times.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from loratrace import semconv
from loratrace.errors import StoreError
from loratrace.runtime.span_sender import SpanSender
from loratrace.store import query

HOUR_NS = 3600 * 10**9
_request_numbers = itertools.count(1)


@dataclass
class Traffic:
    """Spans waiting to be sent to one collector; ``send()`` exports them and returns their ids."""

    endpoint: str
    sender: SpanSender = field(init=False)
    sent: int = 0

    def __post_init__(self) -> None:
        self.sender = SpanSender(self.endpoint, service_name="serving")

    def generation(
        self,
        *,
        start_ns: int,
        adapter: str | None = None,
        adapter_id: str | None = None,
        cohort: str | None = "enterprise",
        route: str | None = "support",
        prompt_version: str | None = "p1",
        dataset_version: str | None = "d1",
        quantization: str | None = None,
        bits: int | None = None,
        base_model: str = "tiny-llama",
        example_id: str | None = None,
        variant: str | None = None,
        identity: bool = True,
        rank: int | None = 4,
        alpha: float | None = 8.0,
        merged: bool | None = False,
        error: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> tuple[str, str, str]:
        """One generation span; returns (trace id, span id, request id)."""
        request_id = f"req-{next(_request_numbers)}"
        attributes: dict[str, Any] = {
            semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_TEXT_COMPLETION,
            semconv.GEN_AI_PROVIDER_NAME: "huggingface",
            semconv.GEN_AI_REQUEST_MODEL: base_model,
            semconv.GEN_AI_RESPONSE_MODEL: adapter or base_model,
            semconv.GEN_AI_REQUEST_ID: request_id,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 8,
        }
        if identity:  # what loratrace's instrumentors add; an instrumentation logging only the base model does not
            attributes[semconv.BASE_MODEL_NAME] = base_model
            attributes[semconv.VARIANT] = variant or (semconv.VARIANT_ADAPTER if adapter else semconv.VARIANT_BASE)
        optional = {
            semconv.ADAPTER_NAME: adapter,
            semconv.ADAPTER_ID: adapter_id if adapter else None,
            semconv.ADAPTER_RANK: rank if adapter else None,
            semconv.ADAPTER_ALPHA: alpha if adapter else None,
            semconv.ADAPTER_MERGED: merged if adapter else None,
            semconv.DATASET_VERSION: dataset_version if adapter else None,
            semconv.COHORT: cohort,
            semconv.ROUTE_NAME: route,
            semconv.PROMPT_VERSION: prompt_version,
            semconv.QUANTIZATION_METHOD: quantization,
            semconv.QUANTIZATION_BITS: bits,
            semconv.EXAMPLE_ID: example_id,
        }
        attributes.update({k: v for k, v in optional.items() if v is not None})
        attributes.update(extra or {})
        tracer = self.sender.tracer_provider.get_tracer("tests")
        span = tracer.start_span(
            f"text_completion {base_model}", kind=SpanKind.CLIENT, attributes=attributes, start_time=start_ns
        )
        if error:
            span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end(end_time=start_ns + 50_000_000)
        context = span.get_span_context()
        return format(context.trace_id, "032x"), format(context.span_id, "016x"), request_id

    def feedback(self, kind: str, targets: list[tuple[str, str, int]]) -> None:
        """One ``kind`` feedback per (trace id, span id, time in ns), queued for ``send()`` like the spans."""
        import loratrace

        for trace_id, span_id, at_ns in targets:
            loratrace.record_feedback(
                kind, trace_id=trace_id, span_id=span_id, at=at_ns / 1e9, tracer_provider=self.sender.tracer_provider
            )

    def send(self) -> int:
        sent = self.sender.send()
        self.sent += sent
        return sent


def wait_for_rows(collector: Any, sql: str, expected: int, *, params: Any = None, timeout: float = 60.0) -> None:
    """Wait until ``sql`` (a count) reaches ``expected`` in the collector's store."""

    def reached() -> bool:
        try:
            return query(collector.store, sql, params)[0, 0] >= expected
        except StoreError:
            return False

    collector.wait_until(reached, timeout=timeout, what=f"{expected} rows of {sql!r}")
