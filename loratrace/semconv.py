"""Every attribute, event and metric name loratrace emits.

The names fall in three groups:

* OpenTelemetry GenAI semantic conventions (``gen_ai.*``), reused as they are so
  that any GenAI-aware backend reads loratrace spans.
* OpenInference conventions (``openinference.*``, ``llm.*``), so Phoenix, traceAI
  and Langfuse group generations by adapter with no change on their side.
* loratrace's own namespace (``loratrace.*``) for what no convention names yet:
  the adapter, the release context and structured-output retries. These names are
  a public contract; the store promotes them to typed columns whose names drop
  the ``loratrace.`` prefix and turn dots into underscores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# --- OpenTelemetry GenAI: spans -------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
"""``text_completion`` for ``generate`` style calls, ``chat`` for chat calls."""
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
"""``huggingface`` for transformers + PEFT, ``vllm`` for vLLM."""
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
"""The model the caller asked for (the base model, or the served name in vLLM)."""
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
"""The adapter name when an adapter served the answer, else the base model."""
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
"""One finish reason per returned sequence: ``stop``, ``length``, ``error``..."""
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
"""Seconds from the start of the call to the first generated token."""
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
GEN_AI_REQUEST_ID: Final = "gen_ai.request.id"
"""vLLM's request id (vLLM's own tracing uses this name)."""
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_PROMPT_TOKENS_LEGACY: Final = "gen_ai.usage.prompt_tokens"
"""Superseded name that vLLM's native tracing still emits; read, never written."""
GEN_AI_USAGE_COMPLETION_TOKENS_LEGACY: Final = "gen_ai.usage.completion_tokens"
"""Superseded name that vLLM's native tracing still emits; read, never written."""
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
"""Prompt content as JSON; only with content capture on."""
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
"""Completion content as JSON; only with content capture on."""
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
"""``input`` or ``output`` on the token usage histogram."""
ERROR_TYPE: Final = "error.type"
"""The exception's qualified class name when a call failed."""

# vLLM's native ``llm_request`` span latency attributes.
GEN_AI_LATENCY_TIME_TO_FIRST_TOKEN: Final = "gen_ai.latency.time_to_first_token"
GEN_AI_LATENCY_TIME_IN_QUEUE: Final = "gen_ai.latency.time_in_queue"
"""Seconds the request waited in vLLM's queue; loratrace reuses vLLM's name on its offline request spans."""

# --- OpenTelemetry GenAI: evaluation events -------------------------------------
GEN_AI_EVALUATION_RESULT_EVENT: Final = "gen_ai.evaluation.result"
GEN_AI_EVALUATION_NAME: Final = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"

# --- OpenTelemetry GenAI: metrics -----------------------------------------------
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
"""Histogram, seconds: the whole generation call."""
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
"""Histogram, tokens, split by ``gen_ai.token.type``."""
METRIC_TIME_TO_FIRST_TOKEN: Final = "gen_ai.server.time_to_first_token"
"""Histogram, seconds: start of the call to the first generated token."""
METRIC_ADAPTER_LOAD_DURATION: Final = "loratrace.adapter.load.duration"
"""Histogram, seconds: how long loading an adapter took."""

# --- OpenInference ---------------------------------------------------------------
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
OPENINFERENCE_SPAN_KIND_LLM: Final = "LLM"
LANGFUSE_OBSERVATION_TYPE: Final = "langfuse.observation.type"
"""Langfuse's observation type: set to ``span`` on vLLM's ``llm_request`` span when loratrace's server span is
the request's generation, so a request counts once there."""
LANGFUSE_OBSERVATION_TYPE_SPAN: Final = "span"
OPENINFERENCE_PROJECT_NAME: Final = "openinference.project.name"
"""Resource attribute: the Phoenix project spans are filed under; loratrace sets it from ``service.name`` on the
providers it builds itself, unless given (``OTEL_RESOURCE_ATTRIBUTES``)."""
LLM_MODEL_NAME: Final = "llm.model_name"
"""Equal to ``gen_ai.response.model``."""
LLM_PROVIDER: Final = "llm.provider"
LLM_SYSTEM: Final = "llm.system"
LLM_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
LLM_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
LLM_TOKEN_COUNT_TOTAL: Final = "llm.token_count.total"
LLM_INVOCATION_PARAMETERS: Final = "llm.invocation_parameters"
"""JSON object of the generation parameters."""
INPUT_VALUE: Final = "input.value"
"""Prompt content; only with content capture on."""
OUTPUT_VALUE: Final = "output.value"
"""Completion content; only with content capture on."""

# --- loratrace: the adapter --------------------------------------------------------
ADAPTER_NAME: Final = "loratrace.adapter.name"
"""The adapter's serving name (PEFT adapter name, vLLM ``lora_name``)."""
ADAPTER_ID: Final = "loratrace.adapter.id"
"""``sha256:<hex>`` over the adapter's config and weights."""
ADAPTER_TYPE: Final = "loratrace.adapter.type"
"""``lora``, ``dora``, ``rslora`` or PEFT's type in lower case."""
ADAPTER_RANK: Final = "loratrace.adapter.rank"
ADAPTER_ALPHA: Final = "loratrace.adapter.alpha"
ADAPTER_TARGET_MODULES: Final = "loratrace.adapter.target_modules"
ADAPTER_MERGED: Final = "loratrace.adapter.merged"
ADAPTER_SOURCE: Final = "loratrace.adapter.source"
"""Where the adapter was loaded from: a path or repo id, ``@revision`` when known."""
ADAPTER_NAMES: Final = "loratrace.adapter.names"
"""All active adapters, when several are active at once (PEFT ``set_adapter([...])``)."""
BASE_MODEL_NAME: Final = "loratrace.base_model.name"
QUANTIZATION_METHOD: Final = "loratrace.model.quantization.method"
QUANTIZATION_BITS: Final = "loratrace.model.quantization.bits"

# --- loratrace: the release context -----------------------------------------------
ROUTE_NAME: Final = "loratrace.route.name"
COHORT: Final = "loratrace.cohort"
VARIANT: Final = "loratrace.variant"
"""``base``, ``adapter`` or ``shadow``."""
FALLBACK: Final = "loratrace.fallback"
"""True on exactly one generation per ``mark_fallback()``: the one it was called for (whose answer was abandoned),
or, when the scope had no generation yet, the first one after it. ``WHERE fallback`` counts fallbacks; false on
every other generation."""
FALLBACK_REASON: Final = "loratrace.fallback.reason"
"""The reason given to ``mark_fallback()``, on the generation that carries ``loratrace.fallback=true``."""
SERVED_AFTER_FALLBACK: Final = "loratrace.served_after_fallback"
"""True on every generation started in a scope after it fell back: it answers the fallen-back request (usually
from the base model). ``WHERE served_after_fallback`` counts the fallback answers, not the fallbacks."""
PROMPT_VERSION: Final = "loratrace.prompt.version"
DATASET_VERSION: Final = "loratrace.dataset.version"
EXAMPLE_ID: Final = "loratrace.example.id"
"""The golden-set example a replayed generation answered: base and adapter answers to one id are *paired*."""
BATCH_SIZE: Final = "loratrace.batch.size"
"""Requests in one offline batch call: on vLLM's ``vllm.LLM.generate`` / ``chat`` span, and on each per-row
generation of a batched transformers ``generate`` (whose duration is the whole batch's)."""
SCHEMA_ATTEMPTS: Final = "loratrace.schema.attempts"
SCHEMA_VALID: Final = "loratrace.schema.valid"
SCHEMA_ERROR: Final = "loratrace.schema.error"
"""The validation error of the last attempt, when it failed."""
CONTEXT_PREFIX: Final = "loratrace.context."
"""Extra release-context keys (``loratrace.context(tenant="acme")``) land under this prefix."""

VARIANT_BASE: Final = "base"
VARIANT_ADAPTER: Final = "adapter"
VARIANT_SHADOW: Final = "shadow"
VARIANTS: Final = (VARIANT_BASE, VARIANT_ADAPTER, VARIANT_SHADOW)

# --- loratrace: evaluation and adapter lifecycle --------------------------------
EVALUATION_PASSED: Final = "loratrace.evaluation.passed"
"""Set on ``gen_ai.evaluation.result`` events when the evaluator decides pass/fail."""
ADAPTER_LOAD_SPAN: Final = "loratrace.adapter.load"
"""Span name for loading an adapter (vLLM static or run-time load)."""
ADAPTER_UNLOAD_SPAN: Final = "loratrace.adapter.unload"
ADAPTER_LOAD_DURATION: Final = "loratrace.adapter.load.duration"
"""Seconds, on the load span."""

# --- loratrace: user-outcome feedback ----------------------------------------------
FEEDBACK_SPAN: Final = "loratrace.feedback"
"""Span name of one piece of feedback (thumbs-down, escalation, ...) about an earlier answer; any language can
send it. The span starts and ends at the feedback's time and links to the span it is about."""
FEEDBACK_KIND: Final = "loratrace.feedback.kind"
"""What happened: ``thumbs_down``, ``escalation``, ``manual_review``, ``reopened``... (letters, digits, ``_.-``)."""
FEEDBACK_VALUE: Final = "loratrace.feedback.value"
"""Optional value of the feedback (a rating, a score, a label)."""
FEEDBACK_ID: Final = "loratrace.feedback.id"
"""Stable id of the feedback: the store keeps one row per id, so sending or importing it again changes nothing."""
FEEDBACK_TRACE_ID: Final = "loratrace.feedback.trace_id"
"""Hex trace id (32 characters) of the answer the feedback is about."""
FEEDBACK_SPAN_ID: Final = "loratrace.feedback.span_id"
"""Hex span id (16 characters) of the answer the feedback is about; without it, the trace's last generation."""
FEEDBACK_SOURCE: Final = "loratrace.feedback.source"
"""Where the feedback came from (``api``, or the file name of a ``loratrace feedback import``)."""

# --- agent traces and task completion ----------------------------------------------
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
"""OpenTelemetry GenAI: the tool an ``execute_tool`` span ran."""
OPERATION_EXECUTE_TOOL: Final = "execute_tool"
TASK_COMPLETION_EVALUATION: Final = "task_completion"
"""``gen_ai.evaluation.name`` of the trace-level workflow check (``loratrace evaluate tasks``)."""
TASK_WORKFLOW: Final = "loratrace.task.workflow"
"""The workflow a task-completion evaluation checked (on the evaluation span)."""

# --- values ---------------------------------------------------------------------
PROVIDER_HUGGINGFACE: Final = "huggingface"
PROVIDER_VLLM: Final = "vllm"
OPERATION_TEXT_COMPLETION: Final = "text_completion"
OPERATION_CHAT: Final = "chat"
FINISH_STOP: Final = "stop"
FINISH_LENGTH: Final = "length"
FINISH_ERROR: Final = "error"

GENERATION_OPERATIONS: Final = (OPERATION_TEXT_COMPLETION, OPERATION_CHAT, "generate_content")
"""``gen_ai.operation.name`` values that make a span one generation (the ``generations`` view, the analyses)."""

CAPTURE_CONTENT_ENV: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""Prompt and completion text are recorded only when this is ``true``."""

METRIC_LABELS: Final = (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    ADAPTER_NAME,
    BASE_MODEL_NAME,
    ROUTE_NAME,
    VARIANT,
)
"""The only attributes metrics carry: low-cardinality by construction."""


# --- the public contract, as the README shows it ---------------------------------


@dataclass(frozen=True)
class AttributeDoc:
    """One row of the README's table of loratrace's own attributes: names documented together, their types in
    the same order, what they mean. ``python tools/gen_docs.py`` writes the table; a test fails when it is stale or
    when a ``loratrace.*`` attribute above has no row."""

    names: tuple[str, ...]
    type: str
    meaning: str


PUBLIC_ATTRIBUTES: Final = (
    AttributeDoc((ADAPTER_NAME,), "string", "the adapter's serving name (PEFT adapter name, vLLM `lora_name`)"),
    AttributeDoc((ADAPTER_NAMES,), "string[]", "every active adapter, when several are active at once"),
    AttributeDoc(
        (ADAPTER_ID,),
        "string",
        "`sha256:<hex>` over the adapter's config and weights: the same name with new weights is a new id; the same "
        "adapter has the same id in transformers and in vLLM",
    ),
    AttributeDoc((ADAPTER_TYPE,), "string", "`lora`, `dora`, `rslora`, or PEFT's type in lower case"),
    AttributeDoc((ADAPTER_RANK, ADAPTER_ALPHA), "int / double", "r and lora_alpha"),
    AttributeDoc((ADAPTER_TARGET_MODULES,), "string[]", "the modules the adapter changes"),
    AttributeDoc((ADAPTER_MERGED,), "bool", "the adapter's weights are merged into the base weights"),
    AttributeDoc((ADAPTER_SOURCE,), "string", "where it was loaded from (path or repo id, revision when known)"),
    AttributeDoc(
        (ADAPTER_LOAD_DURATION,),
        "double",
        "seconds an adapter took to load, on the `loratrace.adapter.load` span (and a histogram of that name)",
    ),
    AttributeDoc((BASE_MODEL_NAME,), "string", "the base model the adapter sits on"),
    AttributeDoc(
        (QUANTIZATION_METHOD, QUANTIZATION_BITS), "string / int", "e.g. `bitsandbytes` / 4, `awq` / 4, `fp8` / 8"
    ),
    AttributeDoc((ROUTE_NAME,), "string", "the serving route that chose this model"),
    AttributeDoc((COHORT,), "string", "the user segment the request belongs to"),
    AttributeDoc((VARIANT,), "string", "`base`, `adapter` or `shadow` (mirrored traffic)"),
    AttributeDoc(
        (FALLBACK, FALLBACK_REASON),
        "bool / string",
        "this generation's answer was given up on and the request fell back (usually to the base model): true on "
        "exactly one generation per `mark_fallback()` (the current one, or the next one when the scope had none "
        "yet), so `WHERE fallback` counts fallbacks; the reason is on that generation",
    ),
    AttributeDoc(
        (SERVED_AFTER_FALLBACK,),
        "bool",
        "this generation answers a request that already fell back (every later generation of the scope): "
        "`WHERE served_after_fallback` counts the fallback answers",
    ),
    AttributeDoc(
        (PROMPT_VERSION, DATASET_VERSION), "string", "prompt template version / adapter training data version"
    ),
    AttributeDoc(
        (EXAMPLE_ID,),
        "string",
        "the golden-set example a replayed answer is for: base and adapter answers to one id are compared paired",
    ),
    AttributeDoc(
        (SCHEMA_ATTEMPTS, SCHEMA_VALID, SCHEMA_ERROR),
        "int / bool / string",
        "structured-output attempt number in the scope, whether it validated, and the validation error",
    ),
    AttributeDoc(
        (BATCH_SIZE,),
        "int",
        "requests in one vLLM offline batch call (on the call's span, which groups the generation spans)",
    ),
    AttributeDoc((f"{CONTEXT_PREFIX}<key>",), "any scalar", "extra keys given to `loratrace.context(...)`"),
    AttributeDoc(
        (EVALUATION_PASSED,),
        "bool",
        "on `gen_ai.evaluation.result` events, when the evaluator decides pass/fail",
    ),
    AttributeDoc(
        (FEEDBACK_KIND, FEEDBACK_VALUE, FEEDBACK_ID, FEEDBACK_TRACE_ID, FEEDBACK_SPAN_ID, FEEDBACK_SOURCE),
        "string / number, bool or string / string / string / string / string",
        "on a `loratrace.feedback` span: what happened (`thumbs_down`, `escalation`, ...), its value, a stable id "
        "(the store keeps one row per id), the hex trace and span id of the answer it is about (the span also links "
        "to that span), where it came from",
    ),
    AttributeDoc(
        (TASK_WORKFLOW,),
        "string",
        "on an `evaluation task_completion` span: the workflow `loratrace evaluate tasks` checked the trace against",
    ),
)
"""loratrace's own attributes, in the order the README lists them."""
