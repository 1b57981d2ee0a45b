"""Varied, seeded OTLP traffic for comparing the engines: base and adapter generations, errors with exception
events, evaluations, fallbacks, schema retries, the several naming schemes the collector promotes, and spans
that are not generations (adapter loads). Sent to a real collector over OTLP/HTTP."""

from __future__ import annotations

import random
import time
import urllib.request

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

ADAPTERS = ("support-v3", "billing-v7")
COHORTS = ("enterprise", "free", "pro")
ROUTES = ("support", "billing")
BASE = "meta-llama/Llama-3.1-8B-Instruct"


def _value(value: object) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[_value(v) for v in value]))
    return AnyValue(string_value=str(value))


def _kvs(attributes: dict[str, object]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_value(v)) for k, v in attributes.items() if v is not None]


def generation_attributes(rng: random.Random, index: int) -> dict[str, object]:
    adapter = rng.choice((*ADAPTERS, None))  # None: the base model served
    scheme = rng.random()
    # a third of the traffic replays a golden set: an example always has the same cohort and route
    example = index % 60 if rng.random() < 0.35 else None
    attributes: dict[str, object] = {
        "gen_ai.operation.name": rng.choice(("text_completion", "chat")),
        "gen_ai.request.model": BASE,
        "loratrace.route.name": rng.choice(ROUTES) if example is None else ROUTES[example % 2],
        "loratrace.cohort": rng.choice(COHORTS) if example is None else COHORTS[example % 3],
        "loratrace.variant": "base" if adapter is None else "adapter",
        "loratrace.prompt.version": rng.choice(("p1", "p1", "p2")),
        "loratrace.example.id": None if example is None else f"ex-{example}",
        "loratrace.base_model.name": BASE,
    }
    if adapter is not None:
        # billing-v7 is swapped for new weights halfway (a second id under one name)
        version = 2 if adapter == "billing-v7" and index >= 2_000 else 1
        attributes |= {
            "loratrace.adapter.name": adapter,
            "loratrace.adapter.id": f"sha256:{sum(map(ord, adapter)) * version:064d}",
            "loratrace.adapter.type": "lora",
            "loratrace.adapter.rank": rng.choice((8, 16)),
            "loratrace.adapter.alpha": rng.choice((16.0, 32.5)),
            "loratrace.adapter.merged": rng.random() < 0.2,
            "loratrace.adapter.target_modules": ["q_proj", "v_proj"],
        }
        if rng.random() < 0.03:  # an adapter served without its identity recorded
            del attributes["loratrace.adapter.id"], attributes["loratrace.adapter.rank"]
    if rng.random() < 0.3:
        attributes["loratrace.model.quantization.method"] = "awq"
        attributes["loratrace.model.quantization.bits"] = 4
    if scheme < 0.6:  # OpenTelemetry GenAI names
        attributes |= {
            "gen_ai.response.model": adapter or BASE,
            "gen_ai.usage.input_tokens": rng.randint(5, 900),
            "gen_ai.usage.output_tokens": rng.randint(1, 256),
            "gen_ai.response.time_to_first_chunk": round(rng.uniform(0.01, 0.5), 6),
            "gen_ai.response.finish_reasons": [rng.choice(("stop", "length", "content_filter"))],
            "gen_ai.provider.name": "vllm",
        }
    elif scheme < 0.8:  # OpenInference
        attributes |= {
            "llm.model_name": adapter or BASE,
            "llm.token_count.prompt": rng.randint(5, 900),
            "llm.token_count.completion": rng.randint(1, 256),
            "llm.provider": "huggingface",
        }
    else:  # vLLM's native / OpenLLMetry names (strings where numbers belong: still promoted)
        attributes |= {
            "gen_ai.usage.prompt_tokens": str(rng.randint(5, 900)),
            "gen_ai.usage.completion_tokens": rng.randint(1, 256),
            "gen_ai.latency.time_to_first_token": rng.uniform(0.01, 0.5),
            "gen_ai.system": "vllm",
        }
    if rng.random() < 0.1:
        attributes["loratrace.fallback"] = True
        attributes["loratrace.fallback.reason"] = "timeout"
    if rng.random() < 0.3:
        attributes["loratrace.schema.attempts"] = rng.choice((1, 2, 3))
        attributes["loratrace.schema.valid"] = rng.random() < 0.8
    return attributes


def _new_ids(rng: random.Random) -> dict[str, bytes]:
    """A new trace id and span id, drawn in that order."""
    return {"trace_id": rng.getrandbits(128).to_bytes(16, "big"), "span_id": rng.getrandbits(64).to_bytes(8, "big")}


def _request(
    resource: dict[str, object], spans: list[Span], *, scope: InstrumentationScope | None = None
) -> ExportTraceServiceRequest:
    """One export request: ``spans`` under one resource and one scope."""
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=_kvs(resource)), scope_spans=[ScopeSpans(scope=scope, spans=spans)]
            )
        ]
    )


def _event(name: str, at: int, attributes: dict[str, object]) -> Span.Event:
    return Span.Event(name=name, time_unix_nano=at, attributes=_kvs(attributes))


def build_request(rng: random.Random, *, spans: int, start_ns: int, offset: int = 0) -> ExportTraceServiceRequest:
    """``spans`` spans (about one in eight is not a generation) spread over ~2 hours from ``start_ns``."""
    out = []
    for i in range(spans):
        index = offset + i
        start = start_ns + rng.randint(0, 7_200 * 10**9)
        duration = rng.randint(5 * 10**6, 3 * 10**9)
        trace_id = rng.getrandbits(128).to_bytes(16, "big")
        span_id = rng.getrandbits(64).to_bytes(8, "big")
        if rng.random() < 0.12:  # an adapter load: not traffic
            out.append(
                Span(
                    trace_id=trace_id,
                    span_id=span_id,
                    name="loratrace.adapter.load",
                    kind=Span.SPAN_KIND_INTERNAL,
                    start_time_unix_nano=start,
                    end_time_unix_nano=start + duration,
                    attributes=_kvs({"loratrace.adapter.name": rng.choice(ADAPTERS)}),
                )
            )
            continue
        attributes = generation_attributes(rng, index)
        events = []
        status = Status()
        if rng.random() < 0.08:
            status = Status(code=Status.STATUS_CODE_ERROR, message="engine failed")
            if rng.random() < 0.5:
                attributes["error.type"] = "TimeoutError"
            events.append(_event("exception", start + 1, {"exception.type": "RuntimeError", "exception.message": "x"}))
        for name in ("correct", "toxicity")[: rng.randint(0, 2)]:
            events.append(
                _event(
                    "gen_ai.evaluation.result",
                    start + duration,
                    {
                        "gen_ai.evaluation.name": name,
                        "gen_ai.evaluation.score.value": round(rng.random(), 4),
                        "gen_ai.evaluation.score.label": rng.choice(("good", "bad")),
                        "loratrace.evaluation.passed": rng.random() < 0.7,
                    },
                )
            )
        if (
            "loratrace.adapter.name" in attributes
            and attributes["loratrace.example.id"] is None
            and rng.random() < 0.15
        ):
            # mirrored traffic: the base model answered this request too, in the same trace
            attributes["loratrace.variant"] = "shadow"
            base = {k: v for k, v in attributes.items() if not k.startswith("loratrace.adapter.")}
            base |= {"loratrace.variant": "base", "gen_ai.response.model": BASE, "llm.model_name": BASE}
            out.append(
                Span(
                    trace_id=trace_id,
                    span_id=rng.getrandbits(64).to_bytes(8, "big"),
                    name=f"{attributes['gen_ai.operation.name']} {BASE}",
                    kind=Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=start,
                    end_time_unix_nano=start + rng.randint(5 * 10**6, 3 * 10**9),
                    attributes=_kvs({k: v for k, v in base.items() if k in attributes}),
                )
            )
        out.append(
            Span(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=rng.getrandbits(64).to_bytes(8, "big") if rng.random() < 0.5 else b"",
                name=f"{attributes['gen_ai.operation.name']} {attributes.get('loratrace.adapter.name', BASE)}",
                kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start,
                end_time_unix_nano=start + duration,
                attributes=_kvs(attributes),
                events=events,
                status=status,
            )
        )
    scope = InstrumentationScope(name="loratrace", version="0.1")
    return _request({"service.name": "serving", "deployment.environment": "test"}, out, scope=scope)


def send(http: str, request: ExportTraceServiceRequest) -> None:
    post = urllib.request.Request(
        f"{http}/v1/traces",
        data=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        method="POST",
    )
    with urllib.request.urlopen(post, timeout=30) as response:
        response.read()


def release_request(rng: random.Random, *, start_ns: int, spans: int = 60) -> ExportTraceServiceRequest:
    """A release late in the traffic: a new adapter on the support route with a new prompt version at the same
    time (a confounded change), serving a cohort no golden set covers (unevaluated exposure)."""
    out = []
    for _ in range(spans):
        start = start_ns + rng.randint(0, 600 * 10**9)
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": BASE,
            "gen_ai.response.model": "support-v4",
            "loratrace.route.name": "support",
            "loratrace.cohort": rng.choice(("trial", "pro")),
            "loratrace.variant": "adapter",
            "loratrace.prompt.version": "p3",
            "loratrace.base_model.name": BASE,
            "loratrace.adapter.name": "support-v4",
            "loratrace.adapter.id": f"sha256:{4:064d}",
            "gen_ai.usage.output_tokens": rng.randint(1, 256),
        }
        out.append(
            Span(
                **_new_ids(rng),
                name="chat support-v4",
                kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start,
                end_time_unix_nano=start + rng.randint(5 * 10**6, 3 * 10**9),
                attributes=_kvs(attributes),
            )
        )
    return _request({"service.name": "serving"}, out)


def feedback_request(rng: random.Random, requests: list[ExportTraceServiceRequest]) -> ExportTraceServiceRequest:
    """``loratrace.feedback`` spans about some production answers of ``requests``: thumbs-down and escalations,
    minutes to hours after the answer, some naming only the trace (its last generation is meant), some sent
    twice under one feedback id (counted once)."""
    out = []
    for request in requests:
        for span in request.resource_spans[0].scope_spans[0].spans:
            attributes = {kv.key: kv.value for kv in span.attributes}
            production = "loratrace.example.id" not in attributes and "gen_ai.operation.name" in attributes
            if not production or attributes["loratrace.variant"].string_value == "shadow" or rng.random() > 0.15:
                continue
            route = attributes["loratrace.route.name"].string_value
            kind = "thumbs_down" if route == "support" or rng.random() < 0.5 else "escalation"
            bad = attributes.get("loratrace.adapter.name") is not None and rng.random() < 0.6
            if kind == "thumbs_down" and not bad and rng.random() < 0.5:
                continue
            at = span.end_time_unix_nano + rng.randint(60, 4 * 3600) * 10**9
            feedback_id = f"fb-{span.span_id.hex()}"
            target = {
                "loratrace.feedback.kind": kind,
                "loratrace.feedback.id": feedback_id,
                "loratrace.feedback.trace_id": span.trace_id.hex(),
                "loratrace.feedback.span_id": span.span_id.hex() if rng.random() < 0.7 else None,
                "loratrace.feedback.source": "api",
            }
            for _ in range(2 if rng.random() < 0.1 else 1):
                out.append(
                    Span(
                        **_new_ids(rng),
                        name="loratrace.feedback",
                        kind=Span.SPAN_KIND_INTERNAL,
                        start_time_unix_nano=at,
                        end_time_unix_nano=at,
                        attributes=_kvs(target),
                        links=[Span.Link(trace_id=span.trace_id, span_id=span.span_id)],
                    )
                )
                at += 10**9
    return _request({"service.name": "feedback"}, out)


def send_traffic(http: str, *, seed: int, spans: int, batch: int = 500) -> int:
    """Send about ``spans`` seeded spans in batches (plus the base answers of mirrored requests); returns how
    many spans were sent."""
    rng = random.Random(seed)
    start_ns = (int(time.time()) - 3 * 3600) * 10**9
    done = sent = 0
    requests = []
    while done < spans:
        n = min(batch, spans - done)
        request = build_request(rng, spans=n, start_ns=start_ns, offset=done)
        send(http, request)
        requests.append(request)
        sent += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        done += n
    for extra in (
        release_request(random.Random(seed + 1), start_ns=start_ns + 6_600 * 10**9),
        feedback_request(random.Random(seed + 2), requests),
    ):
        send(http, extra)
        sent += len(extra.resource_spans[0].scope_spans[0].spans)
    return sent
