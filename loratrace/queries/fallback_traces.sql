-- name: fallback_traces
-- answers: The most recent requests of one adapter that fell back (usually to the base model) in a window, and why.
-- params: adapter (text), since (timestamp, optional), until (timestamp, optional), limit (integer, default 50)
SELECT trace_id, span_id, start_time, adapter_id, cohort, fallback_reason, status_code, error_type
FROM generations
WHERE adapter_name = $adapter
  AND fallback
  AND start_time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
  AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
ORDER BY start_time DESC, trace_id, span_id
LIMIT $limit
