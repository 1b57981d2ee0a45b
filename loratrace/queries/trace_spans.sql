-- name: trace_spans
-- answers: Every span of trace X in start order, with its parent, duration, status and the model or adapter it ran, to see where a request spent its time or failed.
-- params: trace_id (text)
SELECT
    span_id,
    parent_span_id,
    name,
    kind,
    start_time,
    duration_ns / 1e6 AS duration_ms,
    status_code,
    status_message,
    operation_name,
    model,
    adapter_name,
    adapter_id,
    fallback,
    schema_attempts
FROM spans
WHERE trace_id = lower($trace_id)
ORDER BY start_time_unix_nano, span_id
