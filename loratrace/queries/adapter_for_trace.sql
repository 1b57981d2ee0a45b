-- name: adapter_for_trace
-- answers: Which adapter served trace X: its name, stable id, type, rank, alpha, merge state, base model and quantization, on every generation of the trace.
-- params: trace_id (text)
SELECT
    trace_id,
    span_id,
    start_time,
    adapter_name,
    adapter_id,
    adapter_type,
    adapter_rank,
    adapter_alpha,
    adapter_merged,
    base_model_name,
    model_quantization_method,
    model_quantization_bits,
    model,
    variant,
    route_name,
    cohort,
    prompt_version,
    status_code,
    error_type
FROM spans
WHERE trace_id = lower($trace_id)
  AND operation_name IS NOT NULL
ORDER BY start_time_unix_nano, span_id
