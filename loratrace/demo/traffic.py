"""Seeded synthetic LoRA serving traffic with planted effects, for tests, benchmarks and the demo.

One :class:`Traffic` describes a stretch of serving: adapters and the base model answering cohorts of a route,
at a request rate, with base rates for every behaviour the analyses measure, :class:`Effect` s that move one
adapter's rate (or latency) in a cohort and a time window, and silent weight swaps (same adapter name, new id).
:func:`records` turns it into generations, pure and seeded: the same ``Traffic`` always gives the same spans,
ids included. The same records leave through three doors:

* :func:`emit`: real OpenTelemetry SDK spans with explicit times, so they go through any exporter;
* :func:`otlp_requests`: ``ExportTraceServiceRequest`` bytes built with the protobuf classes, for load;
* :func:`write_store`: into a store through the embedded exporter of ``instrument(store=...)``.

How each behaviour shows on a span (what the analyses read back):

========================  ==================================================================================
``error``                 status ERROR, ``error.type`` = ``RuntimeError``, finish reason ``error``
``timeout``               status ERROR, ``error.type`` = ``TimeoutError``, finish reason ``error``, the span
                          lasts ``timeout_ms``
``fallback``              ``loratrace.fallback`` = true, ``loratrace.fallback.reason`` = ``adapter_error``
``schema_retry``          ``loratrace.schema.attempts`` = 2 (else 1)
``schema_invalid``        ``loratrace.schema.valid`` = false
``refusal``               finish reason ``content_filter``
``eval_pass``             a ``gen_ai.evaluation.result`` event named ``eval_name`` with
                          ``loratrace.evaluation.passed`` (failed generations are not evaluated)
``duration_ms``           log-normal span duration with this mean
``ttft_ms``               log-normal ``gen_ai.response.time_to_first_chunk`` with this mean (seconds on the wire)
========================  ==================================================================================

Each behaviour is drawn independently per generation; a generation that errors or times out is neither refused
nor evaluated. The analyses' ``error_rate`` counts every failed generation, so it reads about ``error +
timeout``; ``timeout_rate`` reads ``timeout``. In the ``paired`` design every example goes through the base
model and each adapter with the same uniform draw per behaviour, so the arms differ only where the planted
effect moves the rate (the discordant pairs McNemar's test counts).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

from loratrace import semconv

if TYPE_CHECKING:
    import os

    from opentelemetry.sdk.trace import TracerProvider

Design = Literal["concurrent", "paired"]
BehaviourName = Literal[
    "error", "timeout", "fallback", "schema_retry", "schema_invalid", "refusal", "eval_pass", "duration_ms", "ttft_ms"
]

RATE_BEHAVIOURS: Final = ("error", "timeout", "fallback", "schema_retry", "schema_invalid", "refusal", "eval_pass")
LATENCY_BEHAVIOURS: Final = ("duration_ms", "ttft_ms")
BEHAVIOURS: Final = (*RATE_BEHAVIOURS, *LATENCY_BEHAVIOURS)

DEFAULT_BASE_RATES: Final[Mapping[str, float]] = MappingProxyType(
    {
        "eval_pass": 0.85,
        "error": 0.01,
        "timeout": 0.005,
        "fallback": 0.02,
        "schema_retry": 0.05,
        "schema_invalid": 0.01,
        "refusal": 0.01,
        "duration_ms": 800.0,
        "ttft_ms": 120.0,
    }
)
"""Rates (0-1) and mean latencies (ms) of every arm before effects."""

ERROR_TYPE: Final = "RuntimeError"
TIMEOUT_ERROR_TYPE: Final = "TimeoutError"
REFUSAL_FINISH_REASON: Final = "content_filter"
FALLBACK_REASON: Final = "adapter_error"
SERVICE_NAME: Final = "loratrace-traffic"
SCOPE_NAME: Final = "loratrace.demo.traffic"
_LATENCY_SIGMA: Final = 0.35  # log-normal spread of durations: p99 about 2.2x the median
_NS_PER_MS: Final = 1_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Effect:
    """A planted change of one adapter's behaviour against the base rate.

    ``delta`` is in rate points for rates (``-0.05`` on ``eval_pass`` is a 5-point drop) and in milliseconds for
    ``duration_ms`` / ``ttft_ms``. ``cohort=None`` applies to every cohort; ``start`` / ``end`` bound the window
    (``end`` excluded), open when None.
    """

    adapter: str
    metric: str
    delta: float
    cohort: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        if self.metric not in BEHAVIOURS:
            msg = f"Effect(metric=...) takes one of {', '.join(BEHAVIOURS)}, got {self.metric!r}"
            raise ValueError(msg)

    def applies(self, adapter: str | None, cohort: str, at: datetime) -> bool:
        """Whether this effect moves a generation of ``adapter`` on ``cohort`` at ``at``."""
        return (
            adapter == self.adapter
            and (self.cohort is None or self.cohort == cohort)
            and (self.start is None or at >= self.start)
            and (self.end is None or at < self.end)
        )


@dataclass(frozen=True)
class Traffic:
    """A stretch of seeded serving traffic: who answers whom, how often, and what is planted.

    ``requests_per_hour`` counts generations per arm (the base model, each adapter) per cohort. ``swaps`` give
    an adapter name a new adapter id from a time on (a silent weight swap); ``prompt_changes`` switch the
    prompt version of every arm from a time on. ``eval_fraction`` is the share of answered generations that
    get an evaluation (1.0: all; lower keeps load tests on the collector's fast decoding path).
    ``stream_origin`` keys the random streams by the offset from that time instead of by absolute time, so the
    same draws land wherever the traffic is placed (the demo's "last 24 hours").
    """

    start: datetime
    duration: timedelta
    requests_per_hour: int
    adapters: tuple[str, ...] = ("a1", "a2")
    cohorts: tuple[str, ...] = ("enterprise", "smb")
    base_rates: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_BASE_RATES))
    effects: tuple[Effect, ...] = ()
    swaps: tuple[tuple[str, datetime], ...] = ()
    seed: int = 0
    route: str = "support"
    prompt_version: str = "v1"
    eval_name: str = "quality"
    base_model: str = "tiny-llama"
    design: Design = "concurrent"
    prompt_changes: tuple[tuple[str, datetime], ...] = ()
    adapter_ranks: Mapping[str, int] = field(default_factory=dict)
    merged_adapters: tuple[str, ...] = ()
    quantization: tuple[str, int] | None = None
    eval_fraction: float = 1.0
    timeout_ms: float = 30_000.0
    stream_origin: datetime | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            msg = f"Traffic(start=...) needs a timezone-aware datetime, got {self.start!r}"
            raise ValueError(msg)
        if self.duration <= timedelta(0):
            msg = f"Traffic(duration=...) must be positive, got {self.duration!r}"
            raise ValueError(msg)
        if self.requests_per_hour < 1:
            msg = f"Traffic(requests_per_hour=...) must be at least 1, got {self.requests_per_hour!r}"
            raise ValueError(msg)
        if self.design not in ("concurrent", "paired"):
            msg = f"Traffic(design=...) takes 'concurrent' or 'paired', got {self.design!r}"
            raise ValueError(msg)
        unknown = sorted(set(self.base_rates) - set(BEHAVIOURS))
        if unknown:
            msg = f"Traffic(base_rates=...) has unknown behaviours {unknown}; known: {', '.join(BEHAVIOURS)}"
            raise ValueError(msg)
        for name, _ in self.swaps:
            if name not in self.adapters:
                msg = f"Traffic(swaps=...) names adapter {name!r}, which is not in adapters {self.adapters}"
                raise ValueError(msg)
        if not 0.0 <= self.eval_fraction <= 1.0:
            msg = f"Traffic(eval_fraction=...) must be within 0-1, got {self.eval_fraction!r}"
            raise ValueError(msg)

    @property
    def end(self) -> datetime:
        return self.start + self.duration

    def rate(self, behaviour: str, adapter: str | None, cohort: str, at: datetime) -> float:
        """The planted value of ``behaviour`` for an arm (``adapter=None``: the base model) at a time."""
        value = self.base_rates.get(behaviour, DEFAULT_BASE_RATES[behaviour])
        value += sum(e.delta for e in self.effects if e.metric == behaviour and e.applies(adapter, cohort, at))
        if behaviour in RATE_BEHAVIOURS:
            return min(1.0, max(0.0, value))
        return max(1.0, value)

    def adapter_id(self, adapter: str, at: datetime) -> str:
        """The adapter's stable id at a time: a new id after each of its swaps (the same in every Traffic)."""
        generation = sum(1 for name, when in self.swaps if name == adapter and at >= when)
        # not seeded: the same adapter in two Traffics (live and replay) is the same weights, hence the same id
        digest = hashlib.sha256(f"{adapter}:{generation}".encode()).hexdigest()
        return f"sha256:{digest}"

    def prompt_version_at(self, at: datetime) -> str:
        version = self.prompt_version
        for changed_to, when in sorted(self.prompt_changes, key=lambda change: change[1]):
            if at >= when:
                version = changed_to
        return version


@dataclass(frozen=True)
class EvalRecord:
    """One ``gen_ai.evaluation.result`` event of a generation."""

    name: str
    passed: bool
    score: float
    time_ns: int


@dataclass(frozen=True)
class GenerationRecord:
    """One span: ids, times, every attribute as it goes on the wire, its evaluations, and its error if it failed
    (the status message of an ERROR status; None: the status is UNSET).

    The generator makes only generations (root CLIENT spans); ``parent_span_id`` and ``kind`` let hand-made
    records (a server span above a generation) go out through the same :func:`emit_records`. The adapter and
    the cohort are read from the attributes, so a record cannot say one thing and carry another.
    """

    trace_id: str
    span_id: str
    name: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any]
    evals: tuple[EvalRecord, ...] = ()
    error: str | None = None
    parent_span_id: str | None = None
    kind: Literal["CLIENT", "SERVER", "INTERNAL"] = "CLIENT"

    @property
    def adapter(self) -> str | None:
        """The adapter that served it; None for the base model."""
        return self.attributes.get(semconv.ADAPTER_NAME)

    @property
    def cohort(self) -> str | None:
        return self.attributes.get(semconv.COHORT)

    @property
    def start_time(self) -> datetime:
        return datetime.fromtimestamp(self.start_ns / 1e9, tz=timezone.utc)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / _NS_PER_MS


def _lognormal(rng: random.Random, mean: float) -> float:
    mu = math.log(mean) - _LATENCY_SIGMA**2 / 2
    return math.exp(rng.gauss(mu, _LATENCY_SIGMA))


def _arm_attributes(traffic: Traffic, adapter: str | None, index: int) -> dict[str, Any]:
    model = adapter if adapter is not None else traffic.base_model
    attributes: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_CHAT,
        semconv.GEN_AI_PROVIDER_NAME: semconv.PROVIDER_VLLM,
        semconv.GEN_AI_REQUEST_MODEL: model,
        semconv.GEN_AI_RESPONSE_MODEL: model,
        semconv.OPENINFERENCE_SPAN_KIND: semconv.OPENINFERENCE_SPAN_KIND_LLM,
        semconv.LLM_MODEL_NAME: model,
        semconv.BASE_MODEL_NAME: traffic.base_model,
        semconv.ROUTE_NAME: traffic.route,
        semconv.VARIANT: semconv.VARIANT_BASE if adapter is None else semconv.VARIANT_ADAPTER,
    }
    if adapter is not None:
        attributes[semconv.ADAPTER_NAME] = adapter
        attributes[semconv.ADAPTER_TYPE] = "lora"
        rank = traffic.adapter_ranks.get(adapter, (8, 16)[index % 2])
        attributes[semconv.ADAPTER_RANK] = rank
        attributes[semconv.ADAPTER_ALPHA] = float(2 * rank)
        attributes[semconv.ADAPTER_MERGED] = adapter in traffic.merged_adapters
    if traffic.quantization is not None:
        attributes[semconv.QUANTIZATION_METHOD] = traffic.quantization[0]
        attributes[semconv.QUANTIZATION_BITS] = traffic.quantization[1]
    return attributes


def _hex(rng: random.Random, bits: int) -> str:
    value = rng.getrandbits(bits)
    while value == 0:  # an all-zero id is invalid in OpenTelemetry
        value = rng.getrandbits(bits)
    return f"{value:0{bits // 4}x}"


def _us(at: datetime) -> int:
    return int((at - _EPOCH) / timedelta(microseconds=1))


class _Generator:
    """Draws the records of one ``Traffic``; its random stream is the only source of variation.

    Times are integer microseconds inside the loop, and each arm's planted values are resolved once per arm and
    cohort: the generator is what load tests of the collector wait on.
    """

    def __init__(self, traffic: Traffic) -> None:
        self.traffic = traffic
        self.rng = random.Random()
        self.arms: list[str | None] = [None, *traffic.adapters]
        self.static = {arm: _arm_attributes(traffic, arm, i) for i, arm in enumerate(self.arms)}
        base = {b: traffic.base_rates.get(b, DEFAULT_BASE_RATES[b]) for b in BEHAVIOURS}
        # (arm, cohort) -> behaviour -> (base value, [(start_us, end_us, delta)])
        self.plans: dict[tuple[str | None, str], dict[str, tuple[float, list[tuple[int, int, float]]]]] = {}
        for arm in self.arms:
            for cohort in traffic.cohorts:
                plan = {}
                for behaviour in BEHAVIOURS:
                    windows = [
                        (
                            _us(e.start) if e.start is not None else -(2**62),
                            _us(e.end) if e.end is not None else 2**62,
                            e.delta,
                        )
                        for e in traffic.effects
                        if e.metric == behaviour and e.adapter == arm and e.cohort in (None, cohort)
                    ]
                    plan[behaviour] = (base[behaviour], windows)
                self.plans[arm, cohort] = plan
        self.swaps = {
            adapter: sorted(_us(when) for name, when in traffic.swaps if name == adapter)
            for adapter in traffic.adapters
        }
        self.ids: dict[tuple[str, int], str] = {}
        self.prompts = sorted(((_us(when), version) for version, when in traffic.prompt_changes))

    def value(self, plan: dict[str, tuple[float, list[tuple[int, int, float]]]], behaviour: str, at: int) -> float:
        value, windows = plan[behaviour]
        for start, end, delta in windows:
            if start <= at < end:
                value += delta
        if behaviour in LATENCY_BEHAVIOURS:
            return max(1.0, value)
        return min(1.0, max(0.0, value))

    def adapter_id(self, adapter: str, at: int) -> str:
        generation = sum(1 for when in self.swaps[adapter] if at >= when)
        key = (adapter, generation)
        if key not in self.ids:
            self.ids[key] = self.traffic.adapter_id(adapter, _EPOCH + timedelta(microseconds=at))
        return self.ids[key]

    def prompt_version(self, at: int) -> str:
        version = self.traffic.prompt_version
        for when, changed_to in self.prompts:
            if at >= when:
                version = changed_to
        return version

    def run(self) -> Iterator[GenerationRecord]:
        traffic = self.traffic
        hour_us = 3_600_000_000
        at_us, end_us = _us(traffic.start), _us(traffic.end)
        while at_us < end_us:
            span_us = min(hour_us, end_us - at_us)
            count = max(1, round(traffic.requests_per_hour * span_us / hour_us))
            label = f"{_EPOCH + timedelta(microseconds=at_us):%Y%m%dT%H%M}"
            # one stream per hour, keyed by its absolute start: a Traffic cut into consecutive pieces (to generate
            # them in parallel) yields exactly the records of the whole. With a stream origin the key is the hour's
            # offset from it, so traffic placed relative to "now" draws the same numbers whenever it is generated
            key = at_us if traffic.stream_origin is None else at_us - _us(traffic.stream_origin)
            rng = self.rng = random.Random(f"{traffic.seed}:{key}")
            batch: list[GenerationRecord] = []
            for cohort in traffic.cohorts:
                if traffic.design == "paired":
                    for i in range(count):
                        at = at_us + rng.randrange(span_us)
                        draws = [rng.random() for _ in BEHAVIOURS]
                        example = f"{cohort}-{label}-{i:05d}"
                        for offset, arm in enumerate(self.arms):
                            batch.append(self.record(arm, cohort, at + 1000 * offset, draws, example))
                else:
                    for arm in self.arms:
                        for _ in range(count):
                            batch.append(self.record(arm, cohort, at_us + rng.randrange(span_us), None, None))
            batch.sort(key=lambda record: record.start_ns)
            yield from batch
            at_us += span_us

    def record(
        self, arm: str | None, cohort: str, at: int, draws: Sequence[float] | None, example: str | None
    ) -> GenerationRecord:
        traffic, rng = self.traffic, self.rng
        plan = self.plans[arm, cohort]
        # paired arms share one uniform draw per behaviour (same example, same difficulty); concurrent arms draw
        uniform = draws if draws is not None else [rng.random() for _ in RATE_BEHAVIOURS]
        error, timeout, fallback, schema_retry, schema_invalid, refusal, passed = (
            uniform[i] < self.value(plan, behaviour, at) for i, behaviour in enumerate(RATE_BEHAVIOURS)
        )
        failed = error or timeout
        attributes = dict(self.static[arm])
        if arm is not None:
            attributes[semconv.ADAPTER_ID] = self.adapter_id(arm, at)
        attributes[semconv.COHORT] = cohort
        attributes[semconv.PROMPT_VERSION] = self.prompt_version(at)
        if example is not None:
            attributes[semconv.EXAMPLE_ID] = example
        input_tokens = rng.randint(40, 1200)
        output_tokens = 0 if failed else rng.randint(8, 320)
        attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
        attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
        attributes[semconv.LLM_TOKEN_COUNT_PROMPT] = input_tokens
        attributes[semconv.LLM_TOKEN_COUNT_COMPLETION] = output_tokens
        attributes[semconv.LLM_TOKEN_COUNT_TOTAL] = input_tokens + output_tokens
        attributes[semconv.SCHEMA_ATTEMPTS] = 2 if schema_retry else 1
        attributes[semconv.SCHEMA_VALID] = not schema_invalid
        if fallback:
            attributes[semconv.FALLBACK] = True
            attributes[semconv.FALLBACK_REASON] = FALLBACK_REASON
        duration_ms = _lognormal(rng, self.value(plan, "duration_ms", at))
        ttft_ms = _lognormal(rng, self.value(plan, "ttft_ms", at))
        error_message = None
        if failed:
            error_type = TIMEOUT_ERROR_TYPE if timeout else ERROR_TYPE
            attributes[semconv.ERROR_TYPE] = error_type
            attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = [semconv.FINISH_ERROR]
            error_message = f"{error_type}: {'generation timed out' if timeout else 'engine failure'}"
            if timeout:
                duration_ms = traffic.timeout_ms
        else:
            finish = REFUSAL_FINISH_REASON if refusal else semconv.FINISH_STOP
            attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = [finish]
            attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = round(min(ttft_ms, duration_ms) / 1000, 6)
        start_ns = at * 1000
        end_ns = start_ns + int(duration_ms * _NS_PER_MS)
        evals: tuple[EvalRecord, ...] = ()
        evaluated = rng.random() < traffic.eval_fraction
        if not failed and evaluated:
            score = round(rng.uniform(0.7, 1.0) if passed else rng.uniform(0.0, 0.6), 4)
            evals = (EvalRecord(traffic.eval_name, passed, score, end_ns),)
        model = attributes[semconv.GEN_AI_RESPONSE_MODEL]
        return GenerationRecord(
            trace_id=_hex(rng, 128),
            span_id=_hex(rng, 64),
            name=f"{semconv.OPERATION_CHAT} {model}",
            start_ns=start_ns,
            end_ns=end_ns,
            attributes=attributes,
            evals=evals,
            error=error_message,
        )


def records(traffic: Traffic) -> Iterator[GenerationRecord]:
    """Every generation of ``traffic`` in time order (hour by hour), seeded: equal inputs give equal records.

    Each hour draws from its own stream keyed by the seed and the hour's start, so the pieces of a Traffic cut
    at whole hours from its start (``dataclasses.replace(t, start=..., duration=...)``) give together exactly
    the records of the whole: generate them in parallel.

    Examples
    --------
    >>> from datetime import datetime, timedelta, timezone
    >>> t = Traffic(start=datetime(2026, 1, 1, tzinfo=timezone.utc), duration=timedelta(hours=1),
    ...             requests_per_hour=10)
    >>> rows = list(records(t))
    >>> len(rows)  # (base + 2 adapters) x 2 cohorts x 10
    60
    >>> rows[0].trace_id == list(records(t))[0].trace_id
    True
    """
    return _Generator(traffic).run()


def eval_attributes(evaluation: EvalRecord) -> dict[str, Any]:
    """The attributes of an evaluation event, as ``loratrace.record_eval`` writes them."""
    return {
        semconv.GEN_AI_EVALUATION_NAME: evaluation.name,
        semconv.GEN_AI_EVALUATION_SCORE_VALUE: evaluation.score,
        semconv.EVALUATION_PASSED: evaluation.passed,
    }


def emit(traffic: Traffic, tracer_provider: TracerProvider) -> int:
    """Start and end one real SDK span per generation on ``tracer_provider`` (explicit times and ids).

    The spans keep the records' trace and span ids, so what an exporter delivers can be checked against
    :func:`records`. Returns the number of spans. Flushing the provider is the caller's business.
    """
    return emit_records(records(traffic), tracer_provider)


def emit_records(generated: Iterable[GenerationRecord], tracer_provider: TracerProvider) -> int:
    """:func:`emit` for any records, including hand-made ones with a parent span."""
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    tracer = tracer_provider.get_tracer(SCOPE_NAME)
    if not hasattr(tracer, "id_generator"):
        msg = f"emit() needs an OpenTelemetry SDK TracerProvider, got {type(tracer_provider).__name__}"
        raise TypeError(msg)
    planned = _planned_ids()
    tracer.id_generator = planned  # the SDK tracer asks it for the new span's ids
    root = Context()  # a record without a parent starts its own trace, whatever span the caller has open
    count = 0
    for record in generated:
        planned.trace_id, planned.span_id = int(record.trace_id, 16), int(record.span_id, 16)
        context = root
        if record.parent_span_id is not None:
            parent = SpanContext(
                int(record.trace_id, 16),
                int(record.parent_span_id, 16),
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            context = trace.set_span_in_context(trace.NonRecordingSpan(parent), root)
        span = tracer.start_span(
            record.name,
            context=context,
            kind=SpanKind[record.kind],
            start_time=record.start_ns,
            attributes=record.attributes,
        )
        for evaluation in record.evals:
            span.add_event(
                semconv.GEN_AI_EVALUATION_RESULT_EVENT, eval_attributes(evaluation), timestamp=evaluation.time_ns
            )
        if record.error is not None:
            span.set_status(Status(StatusCode.ERROR, record.error))
        span.end(end_time=record.end_ns)
        count += 1
    return count


def _planned_ids() -> Any:
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class PlannedIds(IdGenerator):
        """Hands out the ids of the record being emitted (seeded random ids, hence ``is_trace_id_random``)."""

        trace_id: int = 0
        span_id: int = 0

        def generate_trace_id(self) -> int:
            return self.trace_id

        def generate_span_id(self) -> int:
            return self.span_id

        def is_trace_id_random(self) -> bool:
            return True

    return PlannedIds()


def otlp_requests(traffic: Traffic, *, spans_per_request: int = 512) -> Iterator[bytes]:
    """Serialized ``ExportTraceServiceRequest`` s carrying the same spans as :func:`emit`, built directly.

    Each arm's unchanging attributes are serialized once and spliced into every span's bytes (protobuf
    concatenation appends repeated fields), which keeps this at a few microseconds per span.
    """
    from loratrace.demo._otlp_encoding import RequestEncoder

    if spans_per_request < 1:
        msg = f"otlp_requests(spans_per_request=...) must be at least 1, got {spans_per_request!r}"
        raise ValueError(msg)
    encoder = RequestEncoder(service_name=SERVICE_NAME, scope_name=SCOPE_NAME)
    pending: list[bytes] = []
    for record in records(traffic):
        pending.append(encoder.span(record))
        if len(pending) >= spans_per_request:
            yield encoder.request(pending)
            pending = []
    if pending:
        yield encoder.request(pending)


def write_store(
    traffic: Traffic | Iterable[GenerationRecord], store: str | os.PathLike[str], *, spans_per_export: int = 2048
) -> int:
    """Write ``traffic`` (or any records) into ``store`` through the embedded exporter (``instrument(store=...)``).

    Returns the number of spans written.
    """
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from loratrace.collector.embedded import StoreSpanExporter
    from loratrace.demo._otlp_encoding import ChunkedExportProcessor

    exporter = StoreSpanExporter(store)
    processor = ChunkedExportProcessor(exporter, chunk=spans_per_export)
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(processor)
    try:
        count = emit_records(records(traffic) if isinstance(traffic, Traffic) else traffic, provider)
    finally:
        provider.shutdown()
    if processor.failures:
        msg = f"the store exporter rejected {processor.failures} of {count} spans; see the log for why"
        raise RuntimeError(msg)
    return count
