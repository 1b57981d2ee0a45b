-- name: schema_retry_traces
-- answers: The most recent generations of one adapter that needed more than one structured-output attempt in a window, and whether the last attempt validated.
-- params: adapter (text), since (timestamp, optional), until (timestamp, optional), limit (integer, default 50)
SELECT trace_id, span_id, start_time, adapter_id, cohort, schema_attempts, schema_valid
FROM generations
WHERE adapter_name = $adapter
  AND schema_attempts > 1
  AND start_time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
  AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
ORDER BY start_time DESC, trace_id, span_id
LIMIT $limit
